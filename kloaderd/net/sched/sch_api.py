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
Layouts (Linux 6.1 x86-64): Qdisc_ops {next@0, cl_ops@8, id@16 (16 bytes),
enqueue@40, dequeue@48, peek@56, owner@168}; Qdisc_class_ops {leaf@24,
find@40, walk@64, tcf_block@72, bind_tcf@80, unbind_tcf@88}.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

NEXT, CL_OPS, ID, DEQUEUE, PEEK, OWNER = 0, 8, 16, 48, 56, 168
CL_LEAF, CL_FIND, CL_WALK, CL_TCF_BLOCK, CL_BIND, CL_UNBIND = 24, 40, 64, 72, 80, 88
IFNAMSIZ = 16
BUILTIN = ("pfifo_fast", "pfifo", "bfifo", "pfifo_head_drop", "mq", "noqueue", "blackhole")


class Qdiscs:
    """qdisc_base of one kernel: built-in ids, then module ops in order."""

    def __init__(self, kernel: Any) -> None:
        self.builtin = set(BUILTIN)
        if kernel.builds_in("NET_SCH_FQ_CODEL"):
            self.builtin.add("fq_codel")
        self.ops: list[int] = []


def _id(mem: Any, ops: int) -> str:
    return mem.read(ops + ID, IFNAMSIZ).split(b"\0", 1)[0].decode("utf-8", "replace")


def _relink(mem: Any, state: Qdiscs) -> None:
    for ops, after in zip(state.ops, state.ops[1:] + [0]):
        mem.write_u64(ops + NEXT, after)


@export("register_qdisc", "int register_qdisc(struct Qdisc_ops *qops)", nargs=1)
def register_qdisc(ctx: Any, qops: int) -> int:
    mem, state = ctx.mem, ctx.kernel.subsystem(Qdiscs)
    name = _id(mem, qops)
    if name in state.builtin or any(_id(mem, q) == name for q in state.ops):
        return -errno.EEXIST
    if not mem.read_u64(qops + PEEK) and mem.read_u64(qops + DEQUEUE):
        return -errno.EINVAL
    cops = mem.read_u64(qops + CL_OPS)
    if cops:
        if not all(mem.read_u64(cops + off) for off in (CL_FIND, CL_WALK, CL_LEAF)):
            return -errno.EINVAL
        if mem.read_u64(cops + CL_TCF_BLOCK) and not (
                mem.read_u64(cops + CL_BIND) and mem.read_u64(cops + CL_UNBIND)):
            return -errno.EINVAL
    state.ops.append(qops)
    _relink(mem, state)
    regs = ctx.kernel.registrations
    owner = ctx.kernel.module_by_struct(mem.read_u64(qops + OWNER)) or regs.module_at(qops)
    regs.registry("qdisc").add(qops, f"qdisc {name}", owner=owner, address=qops,
                               data=(mem, state), on_leftover=_unlink_leftover)
    return 0


@export("unregister_qdisc", "int unregister_qdisc(struct Qdisc_ops *qops)", nargs=1)
def unregister_qdisc(ctx: Any, qops: int) -> int:
    state = ctx.kernel.subsystem(Qdiscs)
    if qops not in state.ops:
        return -errno.ENOENT
    _remove(ctx.mem, state, qops)
    ctx.kernel.registrations.registry("qdisc").remove(qops)
    return 0


def _remove(mem: Any, state: Qdiscs, qops: int) -> None:
    """*qp = q->next; q->next = NULL."""
    index = state.ops.index(qops)
    state.ops.remove(qops)
    if index:
        mem.write_u64(state.ops[index - 1] + NEXT, state.ops[index] if index < len(state.ops) else 0)
    mem.write_u64(qops + NEXT, 0)


def _unlink_leftover(entry: Any) -> None:
    mem, state = entry.data
    _remove(mem, state, entry.address)
