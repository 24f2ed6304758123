"""net/sched/sch_api.c: registering queueing disciplines (`register_qdisc`).

As Linux 6.1: an id already on `qdisc_base` is -EEXIST; a qdisc with a
dequeue but no peek is -EINVAL, as is one whose class ops lack find, walk
or leaf, or that has a tcf_block without bind_tcf/unbind_tcf; a missing
enqueue or dequeue is defaulted; the ops are appended with `next` = NULL.
`unregister_qdisc` of ops not registered is -ENOENT.  The chain of
module-registered ops is kept in guest memory through `next`, after the
kernel's built-in qdiscs (pfifo_fast, pfifo, bfifo, pfifo_head_drop, mq,
noqueue, blackhole, and fq_codel when the profile's .config builds it in),
which are known here by id only.

Where kloader differs: the noop qdisc functions Linux puts in a missing
enqueue/peek/dequeue do not exist here, so those pointers stay NULL.
Qdisc_ops {next, cl_ops, id (16 bytes), dequeue, peek, owner} and
Qdisc_class_ops {leaf, find, walk, tcf_block, bind_tcf, unbind_tcf} are
read at the running kernel's offsets.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct

QDISC_OPS = struct("struct Qdisc_ops", "net/sch_generic.h", "next", "cl_ops", "id", "dequeue", "peek",
                   "owner")
CLASS_OPS = struct("struct Qdisc_class_ops", "net/sch_generic.h", "leaf", "find", "walk", "tcf_block",
                   "bind_tcf", "unbind_tcf")
STRUCTS = (QDISC_OPS, CLASS_OPS)       # what these functions read at the kernel's offsets
IFNAMSIZ = 16
BUILTIN = ("pfifo_fast", "pfifo", "bfifo", "pfifo_head_drop", "mq", "noqueue", "blackhole")


class Qdiscs:
    """qdisc_base of one kernel: built-in ids, then module ops in order."""

    def __init__(self, kernel: Any) -> None:
        self.builtin = set(BUILTIN)
        if kernel.builds_in("NET_SCH_FQ_CODEL"):
            self.builtin.add("fq_codel")
        self.ops: list[int] = []


def _id(ctx: Any, ops: int) -> str:
    return ctx.mem.read(ops + ctx.kernel.layouts[QDISC_OPS].id, IFNAMSIZ).split(b"\0", 1)[0].decode("utf-8", "replace")


def _relink(ctx: Any, state: Qdiscs) -> None:
    next_ = ctx.kernel.layouts[QDISC_OPS].next
    for ops, after in zip(state.ops, state.ops[1:] + [0]):
        ctx.mem.write_u64(ops + next_, after)


@export("register_qdisc", "int register_qdisc(struct Qdisc_ops *qops)", nargs=1)
def register_qdisc(ctx: Any, qops: int) -> int:
    mem, state = ctx.mem, ctx.kernel.subsystem(Qdiscs)
    q, c = ctx.kernel.layouts[QDISC_OPS], ctx.kernel.layouts[CLASS_OPS]
    name = _id(ctx, qops)
    if name in state.builtin or any(_id(ctx, other) == name for other in state.ops):
        return -errno.EEXIST
    if not mem.read_u64(qops + q.peek) and mem.read_u64(qops + q.dequeue):
        return -errno.EINVAL
    cops = mem.read_u64(qops + q.cl_ops)
    if cops:
        if not all(mem.read_u64(cops + off) for off in (c.find, c.walk, c.leaf)):
            return -errno.EINVAL
        if mem.read_u64(cops + c.tcf_block) and not (
                mem.read_u64(cops + c.bind_tcf) and mem.read_u64(cops + c.unbind_tcf)):
            return -errno.EINVAL
    state.ops.append(qops)
    _relink(ctx, state)
    regs = ctx.kernel.registrations
    owner = ctx.kernel.module_by_struct(mem.read_u64(qops + q.owner)) or regs.module_at(qops)
    regs.registry("qdisc").add(qops, f"qdisc {name}", owner=owner, address=qops,
                               data=(ctx.kernel, state), on_leftover=_unlink_leftover)
    return 0


@export("unregister_qdisc", "int unregister_qdisc(struct Qdisc_ops *qops)", nargs=1)
def unregister_qdisc(ctx: Any, qops: int) -> int:
    state = ctx.kernel.subsystem(Qdiscs)
    if qops not in state.ops:
        return -errno.ENOENT
    _remove(ctx.kernel, state, qops)
    ctx.kernel.registrations.registry("qdisc").remove(qops)
    return 0


def _remove(kernel: Any, state: Qdiscs, qops: int) -> None:
    """*qp = q->next; q->next = NULL."""
    mem, next_ = kernel.mem, kernel.layouts[QDISC_OPS].next
    index = state.ops.index(qops)
    state.ops.remove(qops)
    if index:
        mem.write_u64(state.ops[index - 1] + next_, state.ops[index] if index < len(state.ops) else 0)
    mem.write_u64(qops + next_, 0)


def _unlink_leftover(entry: Any) -> None:
    kernel, state = entry.data
    _remove(kernel, state, entry.address)
