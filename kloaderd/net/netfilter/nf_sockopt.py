"""net/netfilter/nf_sockopt.c: the socket options a netfilter module
serves (`nf_register_sockopt`), what iptables' and ebtables' tools get and
set through getsockopt/setsockopt.

As Linux 6.1: ops of a protocol family whose set or get range overlaps
ops already registered for that family are -EBUSY; the ops go at the head
of `nf_sockopts` through their `list` (in guest memory); unregistering is
list_del, and unregistering ops that are not registered is Linux's
`list_del corruption` BUG.  No socket option call ever reaches them:
kloader has no user-space sockets.  nf_sockopt_ops {list, pf (u8),
set_optmin, set_optmax, get_optmin, get_optmax, owner} is read at the
running kernel's offsets.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.registry import record_listed
from ...lib.list import GuestList

OPS = struct("struct nf_sockopt_ops", "linux/netfilter.h", "list", "pf", "set_optmin", "set_optmax",
             "get_optmin", "get_optmax", "owner")
STRUCTS = (OPS,)           # what these functions read at the kernel's offsets


class Sockopts:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


def _ranges(ctx: Any, ops: int) -> tuple[int, tuple[int, int], tuple[int, int]]:
    mem, o = ctx.mem, ctx.kernel.layouts[OPS]

    def s32(member: int) -> int:
        return mem.read_s32(ops + member)
    return (mem.read(ops + o.pf, 1)[0], (s32(o.set_optmin), s32(o.set_optmax)),
            (s32(o.get_optmin), s32(o.get_optmax)))


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[1] > b[0] and a[0] < b[1]


@export("nf_register_sockopt", "int nf_register_sockopt(struct nf_sockopt_ops *reg)", nargs=1)
def nf_register_sockopt(ctx: Any, reg: int) -> int:
    mem, state, o = ctx.mem, ctx.kernel.subsystem(Sockopts), ctx.kernel.layouts[OPS]
    pf, sets, gets = _ranges(ctx, reg)
    for node in state.list:
        other_pf, other_sets, other_gets = _ranges(ctx, node - o.list)
        if other_pf == pf and (_overlap(other_sets, sets) or _overlap(other_gets, gets)):
            return -errno.EBUSY
    state.list.add(ctx, reg + o.list)
    record_listed(ctx.kernel, "nf_sockopt", reg,
                  f"netfilter sockopts pf {pf} set {sets[0]}-{sets[1]} get {gets[0]}-{gets[1]}",
                  state.list, o.list, mem.read_u64(reg + o.owner))
    return 0


@export("nf_unregister_sockopt", "void nf_unregister_sockopt(struct nf_sockopt_ops *reg)", nargs=1)
def nf_unregister_sockopt(ctx: Any, reg: int) -> None:
    ctx.kernel.subsystem(Sockopts).list.delete(ctx, reg + ctx.kernel.layouts[OPS].list)
    ctx.kernel.registrations.registry("nf_sockopt").remove(reg)
