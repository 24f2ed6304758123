"""kernel/rcu/: read-side critical sections and grace periods, as
CONFIG_PREEMPT_RCU (Debian's kernels) gives them to modules.

`rcu_read_lock()` is `__rcu_read_lock()`: a per-task nesting count, which
does not make the task atomic (preemptible RCU readers may be preempted).
A grace period ends when every task that was inside a read-side critical
section has left it; on one CPU with the tasks the emulation runs, that is
"no live task has a nesting count".  So:

* `synchronize_rcu()` returns at once when no other task is a reader, and
  otherwise sleeps until they have all left;
* `kvfree_call_rcu()` (kfree_rcu/kvfree_rcu) frees at once when no task is a
  reader, else when the last reader leaves;
* `rcu_barrier()` waits for pending kfree_rcu frees (`call_rcu` callbacks
  are not emulated, so there is nothing else to wait for).

Where kloader differs: Linux's grace periods take milliseconds even when
idle; here an idle kernel's grace period is immediate.  Readers that died
(an oops inside rcu_read_lock) are forgotten, as the task is.
"""

from __future__ import annotations

from typing import Any

import trio

from .api import export


class Rcu:
    """The readers and the frees waiting for them, of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.nesting: dict[Any, int] = {}          # task -> rcu_read_lock_nesting
        self.pending: list[tuple[int, str | None]] = []   # (pointer, owner) to kfree
        self.idle = trio.Event()

    def readers(self, but: Any = None) -> int:
        live = self.kernel.machine.sched.tasks
        for task in [t for t in self.nesting if live.get(t.pid) is not t]:
            del self.nesting[task]                 # died inside a read-side section
        return sum(1 for task in self.nesting if task is not but)

    def quiescent(self) -> None:
        """A reader left (or a free was queued): wake the waiters to look
        again, and if no reader is left the grace period is over for every
        pending free."""
        if not self.readers():
            pending, self.pending = self.pending, []
            for ptr, owner in pending:
                self.kernel.slab.free(ptr, owner)
        self.idle.set()
        self.idle = trio.Event()


def _rcu(ctx: Any) -> Rcu:
    return ctx.kernel.subsystem(Rcu)


@export("__rcu_read_lock", "void __rcu_read_lock(void)", nargs=0)
def __rcu_read_lock(ctx: Any) -> None:
    rcu = _rcu(ctx)
    rcu.nesting[ctx.task] = rcu.nesting.get(ctx.task, 0) + 1


@export("__rcu_read_unlock", "void __rcu_read_unlock(void)", nargs=0)
def __rcu_read_unlock(ctx: Any) -> None:
    rcu = _rcu(ctx)
    depth = rcu.nesting.get(ctx.task, 0) - 1
    if depth > 0:
        rcu.nesting[ctx.task] = depth
        return
    rcu.nesting.pop(ctx.task, None)       # an unbalanced unlock is not counted below zero
    rcu.quiescent()


@export("synchronize_rcu", "void synchronize_rcu(void)", nargs=0)
def synchronize_rcu(ctx: Any) -> Any:
    rcu = _rcu(ctx)
    if not rcu.readers(but=ctx.task):
        return 0
    async def waiting() -> int:
        while rcu.readers(but=ctx.task):
            await rcu.idle.wait()
        return 0
    return waiting()


@export("kvfree_call_rcu", "void kvfree_call_rcu(struct rcu_head *head, rcu_callback_t func)",
        nargs=2)
def kvfree_call_rcu(ctx: Any, head: int, func: int) -> None:
    """kfree_rcu(ptr, field) passes &ptr->field and the field's offset;
    kvfree_rcu(ptr) passes NULL and the pointer itself."""
    ptr = func if head == 0 else (head - func) & ((1 << 64) - 1)
    rcu = _rcu(ctx)
    rcu.pending.append((ptr, getattr(ctx.module, "name", None)))
    rcu.quiescent()


@export("rcu_barrier", "void rcu_barrier(void)", nargs=0)
def rcu_barrier(ctx: Any) -> Any:
    return synchronize_rcu(ctx) if _rcu(ctx).pending else 0
