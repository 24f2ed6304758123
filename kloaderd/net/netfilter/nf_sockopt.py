"""net/netfilter/nf_sockopt.c: the socket options a netfilter module
serves (`nf_register_sockopt`), what iptables' and ebtables' tools get and
set through getsockopt/setsockopt.

As Linux 6.1: ops of a protocol family whose set or get range overlaps
ops already registered for that family are -EBUSY; the ops go at the head
of `nf_sockopts` through their `list` (in guest memory); unregistering is
list_del, and unregistering ops that are not registered is Linux's
`list_del corruption` BUG.  No socket option call ever reaches them:
kloader has no user-space sockets.  Layout (Linux 6.1 x86-64):
nf_sockopt_ops {list@0, pf@16 (u8), set_optmin@20, set_optmax@24,
get_optmin@40, get_optmax@44, owner@56}.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.registry import record_listed
from ...lib.list import GuestList

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

LIST, PF, SET_MIN, SET_MAX, GET_MIN, GET_MAX, OWNER = 0, 16, 20, 24, 40, 44, 56


class Sockopts:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


def _ranges(mem: Any, ops: int) -> tuple[int, tuple[int, int], tuple[int, int]]:
    def s32(address: int) -> int:
        return mem.read_s32(address)
    return (mem.read(ops + PF, 1)[0], (s32(ops + SET_MIN), s32(ops + SET_MAX)),
            (s32(ops + GET_MIN), s32(ops + GET_MAX)))


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[1] > b[0] and a[0] < b[1]


@export("nf_register_sockopt", "int nf_register_sockopt(struct nf_sockopt_ops *reg)", nargs=1)
def nf_register_sockopt(ctx: Any, reg: int) -> int:
    mem, state = ctx.mem, ctx.kernel.subsystem(Sockopts)
    pf, sets, gets = _ranges(mem, reg)
    for node in state.list:
        other_pf, other_sets, other_gets = _ranges(mem, node - LIST)
        if other_pf == pf and (_overlap(other_sets, sets) or _overlap(other_gets, gets)):
            return -errno.EBUSY
    state.list.add(ctx, reg + LIST)
    record_listed(ctx.kernel, "nf_sockopt", reg,
                  f"netfilter sockopts pf {pf} set {sets[0]}-{sets[1]} get {gets[0]}-{gets[1]}",
                  state.list, LIST, mem.read_u64(reg + OWNER))
    return 0


@export("nf_unregister_sockopt", "void nf_unregister_sockopt(struct nf_sockopt_ops *reg)", nargs=1)
def nf_unregister_sockopt(ctx: Any, reg: int) -> None:
    ctx.kernel.subsystem(Sockopts).list.delete(ctx, reg + LIST)
    ctx.kernel.registrations.registry("nf_sockopt").remove(reg)
