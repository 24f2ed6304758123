"""net/sched/cls_api.c: registering traffic classifiers
(`register_tcf_proto_ops`).

As Linux 6.1: a kind already on `tcf_proto_base` is -EEXIST; the ops are
linked at the tail through their `head` list (in guest memory).
Unregistering waits for RCU callbacks (rcu_barrier), unlinks, and WARNs
"unregister tc filter kind(%s) failed %d" when the ops were not registered.
The kernel builds no classifier in on Debian, so the list starts empty.
Layout (Linux 6.1 x86-64 `struct tcf_proto_ops`): head@0, kind@16
(16 bytes), owner@184.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.panic import warn
from ...kernel.rcu import rcu_barrier
from ...lib.list import GuestList

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

HEAD, KIND, OWNER = 0, 16, 184
IFNAMSIZ = 16


class Classifiers:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


def _kind(mem: Any, ops: int) -> str:
    return mem.read(ops + KIND, IFNAMSIZ).split(b"\0", 1)[0].decode("utf-8", "replace")


@export("register_tcf_proto_ops", "int register_tcf_proto_ops(struct tcf_proto_ops *ops)",
        nargs=1)
def register_tcf_proto_ops(ctx: Any, ops: int) -> int:
    mem, state = ctx.mem, ctx.kernel.subsystem(Classifiers)
    kind = _kind(mem, ops)
    if any(_kind(mem, node - HEAD) == kind for node in state.list):
        return -errno.EEXIST
    state.list.add_tail(ctx, ops + HEAD)
    regs = ctx.kernel.registrations
    owner = ctx.kernel.module_by_struct(mem.read_u64(ops + OWNER)) or regs.module_at(ops)
    regs.registry("tc_classifier").add(ops, f"tc classifier {kind}", owner=owner, address=ops,
                                       data=state, on_leftover=_unlink_leftover)
    return 0


@export("unregister_tcf_proto_ops", "void unregister_tcf_proto_ops(struct tcf_proto_ops *ops)",
        nargs=1)
def unregister_tcf_proto_ops(ctx: Any, ops: int) -> Any:
    state = ctx.kernel.subsystem(Classifiers)
    if any(node == ops + HEAD for node in state.list):
        state.list.delete(ctx, ops + HEAD)
        ctx.kernel.registrations.registry("tc_classifier").remove(ops)
    else:
        warn(ctx, f"unregister tc filter kind({_kind(ctx.mem, ops)}) failed {-errno.ENOENT}",
             "net/sched/cls_api.c:218", "unregister_tcf_proto_ops")
    return rcu_barrier(ctx)


def _unlink_leftover(entry: Any) -> None:
    entry.data.list.unlink_quietly(entry.address + HEAD)
