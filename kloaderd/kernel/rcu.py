"""kernel/rcu/: read-side critical sections, grace periods and RCU
callbacks, as CONFIG_PREEMPT_RCU (Debian's kernels) gives them to modules.

`rcu_read_lock()` is `__rcu_read_lock()`: a per-task nesting count, which
does not make the task atomic (preemptible RCU readers may be preempted).
Each reader remembers the grace-period sequence number current when its
outermost `rcu_read_lock` began.  Every `synchronize_rcu`, `call_rcu` and
`kfree_rcu` starts a grace period of its own (the sequence number goes up);
it ends when no reader that began before it is still inside — readers that
began after do not hold it up, as Linux's do not.  So:

* `synchronize_rcu()` (and `synchronize_rcu_expedited()`) returns at once
  when no earlier reader is inside, else sleeps until they have all left;
* `call_rcu(head, func)` queues the callback; the RCU softirq (a kernel
  thread of this kernel, started by the first callback) calls `func(head)`
  once its grace period has ended, in softirq context (`ksoftirqd/0`,
  atomic: sleeping there is "BUG: scheduling while atomic"), one callback at
  a time in the order they were queued — never from inside `call_rcu`;
* `kvfree_call_rcu()` (kfree_rcu, kvfree_rcu) queues a free in the same
  queue: the memory is the kernel's from then on (the module freed it), and
  the softirq kvfrees it when its grace period ends;
* `rcu_barrier()` sleeps until every callback and free queued before it
  has run, which is why modules call it in their exit.

Debugging as Debian's kernels would report it with CONFIG_DEBUG_OBJECTS_RCU_HEAD:
an `rcu_head` queued twice is Linux's "Double-freed CB" error (the second
is leaked, as Linux leaks it); one still queued when the memory holding it
is kfreed, or when its memory or its callback's code goes with a module (a
module that did not `rcu_barrier()` in its exit), is debugobjects'
`ODEBUG: free active ... object type: rcu_head` and is dropped, so the
callback never runs into freed code.

Where kloader differs: Linux's grace periods take milliseconds even when
idle; here a grace period with no earlier reader is over at once (the
callback still waits for the softirq to get the CPU).  The `rcu_head`'s
own fields are not written (the queue is kept in Python).  The ODEBUG
hint names the callback (Linux's rcu_head has no hint and prints 0x0).
Readers that died (an oops inside rcu_read_lock) are forgotten, as the task
is.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from ..errors import KernelError
from ..irq.softirq import SOFTIRQ_OFFSET
from .api import export
from .printk import KERN_ERR, Problem

if TYPE_CHECKING:
    from .module import Module
    from .sched import Task

KVFREE_RCU_OFFSET_MAX = 4096      # __is_kvfree_rcu_offset(): below this, kfree_rcu passed an offset


@dataclass(eq=False, slots=True)
class Callback:
    """One queued rcu_head: `func(head)` to call, or (`func` 0) `ptr` to
    kvfree, once grace period `gp` is over."""
    serial: int                   # queue order: rcu_barrier waits up to one
    gp: int                       # readers that began before this hold it up
    head: int
    func: int
    ptr: int = 0
    owner: str | None = None      # who queued it, for a bad free's report


class Rcu:
    """The readers, the grace periods and the callback queue of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.nesting: dict["Task", int] = {}          # task -> rcu_read_lock_nesting
        self.since: dict["Task", int] = {}            # task -> gp_seq when it began reading
        self.gp_seq = 0
        self.serial = 0
        self.callbacks: deque[Callback] = deque()     # in queue order, so in gp order
        self.invoking: Callback | None = None
        self.changed = trio.Event()
        self._thread: trio.CancelScope | None = None
        kernel.sanitizer.leftover_checks.append(self._module_freed)
        kernel.sanitizer.watch_frees(self.callbacks, self._memory_freed)

    # -- readers and grace periods -------------------------------------------------

    def read_lock(self, task: "Task") -> None:
        depth = self.nesting.get(task, 0)
        if not depth:
            self.since[task] = self.gp_seq
        self.nesting[task] = depth + 1

    def read_unlock(self, task: "Task") -> None:
        depth = self.nesting.get(task, 0) - 1
        if depth > 0:
            self.nesting[task] = depth
            return
        self.nesting.pop(task, None)     # an unbalanced unlock is not counted below zero
        self.since.pop(task, None)
        self.notify()

    def start_gp(self) -> int:
        """A new grace period: it waits for the readers inside now."""
        self.gp_seq += 1
        return self.gp_seq

    def completed(self, gp: int, but: "Task | None" = None) -> bool:
        """No reader that began before grace period `gp` started is still
        inside (`but`, the caller, aside)."""
        live = self.kernel.machine.sched.tasks
        for task in [t for t in self.since if live.get(t.pid) is not t]:
            del self.since[task]                       # died inside a read-side section
            self.nesting.pop(task, None)
        return all(since >= gp for task, since in self.since.items() if task is not but)

    def notify(self) -> None:
        """Something a waiter (the softirq, synchronize_rcu, rcu_barrier)
        may be waiting for changed; with nobody waiting, nothing to do (a
        reader leaving is frequent)."""
        if self.changed.statistics().tasks_waiting:
            self.changed.set()
            self.changed = trio.Event()

    async def synchronize(self, gp: int, task: "Task | None") -> None:
        while True:
            changed = self.changed
            if self.completed(gp, but=task):
                return
            await changed.wait()

    # -- the callback queue -----------------------------------------------------------

    def queue(self, head: int, func: int, ptr: int = 0, owner: str | None = None) -> None:
        self.serial += 1
        self.callbacks.append(Callback(self.serial, self.start_gp(), head, func, ptr, owner))
        self.notify()
        if self._thread is None:
            self._thread = self.kernel.spawn(self._softirq, name="rcu softirq")

    def queued(self, head: int) -> Callback | None:
        return next((cb for cb in self.callbacks if cb.head == head), None) if head else None

    async def barrier(self) -> None:
        """rcu_barrier: until every callback queued so far has run."""
        last = self.serial
        while True:
            changed = self.changed
            if not ((self.callbacks and self.callbacks[0].serial <= last) or
                    (self.invoking is not None and self.invoking.serial <= last)):
                return
            await changed.wait()

    async def _softirq(self) -> None:
        """RCU_SOFTIRQ's rcu_do_batch: the callbacks whose grace period is
        over, oldest first (grace periods end in queue order)."""
        while True:
            changed = self.changed
            if self.callbacks and self.completed(self.callbacks[0].gp):
                await self._invoke(self.callbacks[0])
            else:
                await changed.wait()

    async def _invoke(self, cb: Callback) -> None:
        if not cb.func:
            self.callbacks.popleft()
            self._kvfree(cb)
            self.notify()
            return

        def claim() -> tuple[int, int] | None:
            # Dropped with its module (reported) while this waited for the CPU: not run.
            if not self.callbacks or self.callbacks[0] is not cb:
                return None
            self.callbacks.popleft()
            self.invoking = cb
            return cb.func, cb.head
        try:
            await self.kernel.sanitizer.call_deferred(claim, via="rcu_do_batch", comm="ksoftirqd/0",
                                                      preempt_count=SOFTIRQ_OFFSET)
        except KernelError:
            pass                       # the oops is logged; the softirq goes on
        finally:
            if self.invoking is cb:
                self.invoking = None
            self.notify()

    def _kvfree(self, cb: Callback) -> None:
        """kvfree(ptr), with no caller: vmalloc'd memory leaves its area list."""
        from ..mm.vmalloc import VmallocAreas
        self.kernel.subsystem(VmallocAreas).areas.pop(cb.ptr, None)
        self.kernel.slab.free(cb.ptr, cb.owner)

    # -- debugobjects --------------------------------------------------------------------

    def double_queued(self, cb: Callback, head: int) -> None:
        """__call_rcu_common's report for an rcu_head queued again; the
        second callback is leaked."""
        symbol = self.kernel.machine.symbol_name
        was = symbol(cb.func) if cb.func else f"{cb.head - cb.ptr:#x}"   # kfree_rcu: its offset
        self.kernel.log.emit(KERN_ERR, f"__call_rcu_common(): Double-freed CB {head:016x}->{was}()!!!",
                             None, problem=Problem.SANITIZER)

    def _module_freed(self, mod: "Module") -> None:
        """A callback into the module's code, or an rcu_head in its image
        or its heap, would be used after the module is freed: reported and
        dropped.  But heap the module's task allocated, retired to another
        module's callback (ip_vs_ftp's exit unregisters an app incarnation
        ip_vs allocated, which ip_vs's callback kfrees), is not the module's
        leak: the kernel holds it until that callback frees it, as Linux does."""
        sanitizer, slab = self.kernel.sanitizer, self.kernel.slab
        for cb in [cb for cb in self.callbacks if cb.func]:
            if sanitizer.belongs_to(mod, cb.func):
                self._free_active(cb)
            elif slab.holds(cb.head, mod.name):
                self._retire(slab.containing(cb.head) or 0, mod.name)
            elif sanitizer.belongs_to(mod, cb.head):
                self._free_active(cb)

    def _retire(self, start: int, owner: str) -> None:
        """Hand the allocation at `start` to the kernel, with the owner's
        allocations it points to (one level): the callback frees those
        too, as svcauth_gss_domain_release_rcu kfrees a gss domain's
        kstrdup'd name with it (rpcsec_gss_krb5's exit retires domains
        auth_rpcgss's callback frees)."""
        slab = self.kernel.slab
        slab.give_to_kernel(start)
        data = self.kernel.mem.read(start, slab.ksize(start))
        for offset in range(0, len(data) - 7, 8):
            pointer = int.from_bytes(data[offset:offset + 8], "little")
            if pointer != start and slab.owns(pointer, owner):
                slab.give_to_kernel(pointer)

    def _memory_freed(self, start: int, end: int) -> None:
        """kfree of [start, end): debug_check_no_obj_freed for rcu_heads."""
        for cb in [cb for cb in self.callbacks if start <= (cb.head or cb.ptr) < end]:
            self._free_active(cb)

    def _free_active(self, cb: Callback) -> None:
        kernel = self.kernel
        hint = kernel.machine.symbol_name(cb.func) if cb.func else "kvfree_call_rcu"
        kernel.sanitizer.report_odebug(cb.head or cb.ptr, "rcu_head", hint)
        self.callbacks.remove(cb)
        self.notify()


def _rcu(ctx: Any) -> Rcu:
    return ctx.kernel.subsystem(Rcu)


@export("__rcu_read_lock", "void __rcu_read_lock(void)", nargs=0)
def __rcu_read_lock(ctx: Any) -> None:
    _rcu(ctx).read_lock(ctx.task)


@export("__rcu_read_unlock", "void __rcu_read_unlock(void)", nargs=0)
def __rcu_read_unlock(ctx: Any) -> None:
    _rcu(ctx).read_unlock(ctx.task)


@export("synchronize_rcu_expedited", "void synchronize_rcu_expedited(void)", nargs=0)
@export("synchronize_rcu", "void synchronize_rcu(void)", nargs=0)
def synchronize_rcu(ctx: Any) -> Any:
    """Expedited or not, the same wait: for the readers inside now."""
    rcu = _rcu(ctx)
    gp = rcu.start_gp()
    if rcu.completed(gp, but=ctx.task):
        return 0
    async def waiting() -> int:
        await rcu.synchronize(gp, ctx.task)
        return 0
    return waiting()


@export("call_rcu_hurry", "void call_rcu_hurry(struct rcu_head *head, rcu_callback_t func)", nargs=2)
@export("call_rcu", "void call_rcu(struct rcu_head *head, rcu_callback_t func)", nargs=2)
def call_rcu(ctx: Any, head: int, func: int) -> None:
    """call_rcu_hurry is call_rcu without CONFIG_RCU_LAZY's batching, which
    kloader does not do: the same."""
    rcu = _rcu(ctx)
    queued = rcu.queued(head)
    if queued is not None:
        rcu.double_queued(queued, head)
        return
    rcu.queue(head, func, owner=getattr(ctx.module, "name", None))


@export("kvfree_call_rcu", "void kvfree_call_rcu(struct rcu_head *head, rcu_callback_t func)",
        nargs=2)
def kvfree_call_rcu(ctx: Any, head: int, func: int) -> None:
    """kfree_rcu(ptr, field) passes &ptr->field and, up to 6.2 (and in
    kloader's headers), the field's offset as `func`
    (`__is_kvfree_rcu_offset`), from 6.3 the pointer itself;
    kvfree_rcu(ptr) passes NULL and the pointer."""
    ptr = (head - func) & ((1 << 64) - 1) if head and func < KVFREE_RCU_OFFSET_MAX else func
    rcu = _rcu(ctx)
    queued = rcu.queued(head)
    if queued is not None:
        rcu.double_queued(queued, head)
        return
    ctx.kernel.slab.give_to_kernel(ptr)
    rcu.queue(head, 0, ptr, getattr(ctx.module, "name", None))


@export("rcu_barrier", "void rcu_barrier(void)", nargs=0)
def rcu_barrier(ctx: Any) -> Any:
    rcu = _rcu(ctx)
    if not rcu.callbacks and rcu.invoking is None:
        return 0
    async def waiting() -> int:
        await rcu.barrier()
        return 0
    return waiting()
