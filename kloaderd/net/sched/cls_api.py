"""net/sched/cls_api.c: registering traffic classifiers
(`register_tcf_proto_ops`).

As Linux 6.1: a kind already on `tcf_proto_base` is -EEXIST; the ops are
linked at the tail through their `head` list (in guest memory).
Unregistering waits for RCU callbacks (rcu_barrier), unlinks, and WARNs
"unregister tc filter kind(%s) failed %d" when the ops were not registered.
The kernel builds no classifier in on Debian, so the list starts empty.
`struct tcf_proto_ops` {head, kind (16 bytes), owner} is read at the
running kernel's offsets.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.panic import warn
from ...kernel.rcu import rcu_barrier
from ...lib.list import GuestList

PROTO_OPS = struct("struct tcf_proto_ops", "net/sch_generic.h", "head", "kind", "owner")
STRUCTS = (PROTO_OPS,)     # what these functions read at the kernel's offsets
IFNAMSIZ = 16


class Classifiers:
    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.list = GuestList(kernel)


def _kind(ctx: Any, ops: int) -> str:
    return ctx.mem.read(ops + ctx.kernel.layouts[PROTO_OPS].kind, IFNAMSIZ).split(b"\0", 1)[0].decode("utf-8", "replace")


@export("register_tcf_proto_ops", "int register_tcf_proto_ops(struct tcf_proto_ops *ops)",
        nargs=1)
def register_tcf_proto_ops(ctx: Any, ops: int) -> int:
    mem, state, p = ctx.mem, ctx.kernel.subsystem(Classifiers), ctx.kernel.layouts[PROTO_OPS]
    kind = _kind(ctx, ops)
    if any(_kind(ctx, node - p.head) == kind for node in state.list):
        return -errno.EEXIST
    state.list.add_tail(ctx, ops + p.head)
    regs = ctx.kernel.registrations
    owner = ctx.kernel.module_by_struct(mem.read_u64(ops + p.owner)) or regs.module_at(ops)
    regs.registry("tc_classifier").add(ops, f"tc classifier {kind}", owner=owner, address=ops,
                                       data=state, on_leftover=_unlink_leftover)
    return 0


@export("unregister_tcf_proto_ops", "void unregister_tcf_proto_ops(struct tcf_proto_ops *ops)",
        nargs=1)
def unregister_tcf_proto_ops(ctx: Any, ops: int) -> Any:
    state, head = ctx.kernel.subsystem(Classifiers), ctx.kernel.layouts[PROTO_OPS].head
    if any(node == ops + head for node in state.list):
        state.list.delete(ctx, ops + head)
        ctx.kernel.registrations.registry("tc_classifier").remove(ops)
    else:
        warn(ctx, f"unregister tc filter kind({_kind(ctx, ops)}) failed {-errno.ENOENT}",
             "net/sched/cls_api.c:218", "unregister_tcf_proto_ops")
    return rcu_barrier(ctx)


def _unlink_leftover(entry: Any) -> None:
    state = entry.data
    state.list.unlink_quietly(entry.address + state.kernel.layouts[PROTO_OPS].head)
