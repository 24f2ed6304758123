"""Workqueues (Linux's kernel/workqueue.c): work items run in a kworker, in
process context, where they may sleep.

A queued `struct work_struct` is marked pending in guest memory as Linux
marks it (bit 0 of `data`: the header's `work_pending()` reads it) and kept
in its workqueue's queue in Python.  Each workqueue's pool (a kernel thread
of this kernel) starts its items in queue order, each in a kworker task of
its own, up to `max_active` at once (`alloc_workqueue`'s argument; 0 is
`WQ_DFL_ACTIVE`, 256, as for `system_wq`), so one item sleeping does not hold
up the next; an ordered workqueue (`alloc_ordered_workqueue`, or
`max_active` 1) runs one at a time.  As in Linux a work item never runs
concurrently with itself: requeued while it runs, it starts again after.
The pending bit is cleared just before the function runs, so the function
may queue itself again.  `flush_work`, `cancel_work_sync`, `__flush_workqueue`
and `destroy_workqueue` wait as Linux's do.  Delayed work is a timer whose
function is `delayed_work_timer_fn`, a kernel function: the timer softirq
calls it like any timer function, and it queues the work.

`system_wq` and the other system workqueues (`system_unbound_wq`,
`system_power_efficient_wq`, ...) are allocated at boot.  Work still queued (or a delayed work's
timer still pending) when the memory holding it or its function is freed
with a module is reported as debugobjects reports it —
`ODEBUG: free active (active state 0) object: ... object type: work_struct
hint: fn+0x0/0x...` — and dropped; a workqueue the module allocated and
never destroyed is a leaked registration.

Differences from Linux: one CPU and no worker pools shared between
workqueues, so `max_active` is the only limit (Linux also bounds a per-CPU
workqueue by its CPU's concurrency management: a CPU-bound item holds the
next back until it sleeps; here every item may run until it sleeps).
"""

from __future__ import annotations

import errno
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from ..errors import KernelError
from ..kernel.api import at_boot, export, export_object
from ..kernel.api.printk import format_guest
from ..kernel.printk import KERN_WARNING
from ..time.timer import TIMER_FUNCTION, timers

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel
    from ..kernel.module import Module

# struct work_struct / struct delayed_work (include/linux/workqueue.h)
WORK_DATA = 0
WORK_ENTRY = 8
WORK_FUNC = 24
WORK_SIZE = 32
DWORK_TIMER = 32
DWORK_WQ = 72
DWORK_CPU = 80
# struct workqueue_struct is opaque to modules: a handle is an address in the
# direct map where nothing is mapped, one per workqueue, never reused;
# dereferencing it faults.
WQ_HANDLE_BASE = 0xFFFF888B00000000
WQ_HANDLE_STEP = 0x200
WQ_NAME_LEN = 24
# include/linux/workqueue.h
WQ_UNBOUND = 1 << 1
__WQ_ORDERED = 1 << 17
WQ_MAX_ACTIVE = 512
WQ_DFL_ACTIVE = WQ_MAX_ACTIVE // 2
# WORK_DATA_INIT(): WORK_OFFQ_POOL_NONE << WORK_OFFQ_POOL_SHIFT (no debugobjects)
WORK_STRUCT_NO_POOL = ((1 << 31) - 1) << 5

# workqueue_init_early's system workqueues: (variable, name, max_active).
# One CPU and no freezer, so high priority, power efficiency and
# freezability change nothing here but the name; WQ_UNBOUND_MAX_ACTIVE is
# max(WQ_MAX_ACTIVE, 4 * possible CPUs).
SYSTEM_WORKQUEUES = (("system_wq", "events", WQ_DFL_ACTIVE),
                     ("system_highpri_wq", "events_highpri", WQ_DFL_ACTIVE),
                     ("system_long_wq", "events_long", WQ_DFL_ACTIVE),
                     ("system_unbound_wq", "events_unbound", WQ_MAX_ACTIVE),
                     ("system_freezable_wq", "events_freezable", WQ_DFL_ACTIVE),
                     ("system_power_efficient_wq", "events_power_efficient", WQ_DFL_ACTIVE),
                     ("system_freezable_power_efficient_wq", "events_freezable_power_efficient",
                      WQ_DFL_ACTIVE))
for _variable, _name, _active in SYSTEM_WORKQUEUES:
    export_object(_variable, f"extern struct workqueue_struct *{_variable}", 8, writable=True,
                  gpl=_variable != "system_wq")


@dataclass(eq=False)
class Workqueue:
    address: int
    name: str
    module: Any
    max_active: int = WQ_DFL_ACTIVE                          # items run at once (1: ordered)
    queue: deque[int] = field(default_factory=deque)       # work_struct addresses, in order
    running: set[int] = field(default_factory=set)         # the works being run
    changed: trio.Event = field(default_factory=trio.Event)
    worker: Any = None

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class Workqueues:
    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.by_address: dict[int, Workqueue] = {}
        self.queued: dict[int, Workqueue] = {}      # work_struct -> the workqueue it waits on
        self._handles = 0
        self.registry = kernel.registrations.registry("workqueue")
        symbols = kernel.machine.kernel_symbols()
        for variable, name, max_active in SYSTEM_WORKQUEUES:
            wq = self.create(name, None, max_active)
            kernel.mem.write_u64(symbols[variable], wq.address)
        kernel.sanitizer.leftover_checks.append(self._module_freed)
        kernel.sanitizer.watch_frees(self.queued, self._memory_freed)

    def create(self, name: str, module: Any, max_active: int) -> Workqueue:
        address = WQ_HANDLE_BASE + self._handles * WQ_HANDLE_STEP
        self._handles += 1
        wq = Workqueue(address, name, module, max_active)
        self.by_address[address] = wq
        if module is not None:
            self.registry.add(address, f'workqueue "{name}" (destroy_workqueue)', owner=module,
                              address=address, on_leftover=lambda entry: self._drop(wq))
        return wq

    def _drop(self, wq: Workqueue) -> None:
        for work in list(wq.queue):
            self._clear_pending(work)
            del self.queued[work]
        wq.queue.clear()
        if wq.worker is not None:
            wq.worker.cancel()
        self.by_address.pop(wq.address, None)

    def find(self, address: int) -> Workqueue:
        wq = self.by_address.get(address)
        if wq is None:
            raise KernelError(errno.EINVAL, f"no workqueue at {address:#x}")
        return wq

    # -- pending bits ------------------------------------------------------------

    def _set_pending(self, work: int) -> bool:
        """test_and_set_bit(WORK_STRUCT_PENDING_BIT): False if already pending."""
        data = self.kernel.mem.read_u64(work + WORK_DATA)
        if data & 1:
            return False
        self.kernel.mem.write_u64(work + WORK_DATA, data | 1)
        return True

    def _clear_pending(self, work: int) -> None:
        try:
            data = self.kernel.mem.read_u64(work + WORK_DATA)
            self.kernel.mem.write_u64(work + WORK_DATA, data & ~1)
        except Exception:
            pass                            # its memory is gone

    def queued_on(self, work: int) -> Workqueue | None:
        return self.queued.get(work)

    def running_on(self, work: int) -> Workqueue | None:
        return next((wq for wq in self.by_address.values() if work in wq.running), None)

    # -- queueing and running ---------------------------------------------------------

    def queue(self, wq: Workqueue, work: int) -> None:
        """__queue_work: the pending bit is already set (so it is queued on no other)."""
        wq.queue.append(work)
        self.queued[work] = wq
        wq.notify()
        if wq.worker is None:
            wq.worker = self.kernel.spawn(self._worker, wq, name=f"kworker {wq.name}")

    def _next(self, wq: Workqueue) -> int | None:
        """The first queued work that may start now: below max_active, and
        not already running (a work item is non-reentrant)."""
        if len(wq.running) >= wq.max_active:
            return None
        return next((w for w in wq.queue if w not in wq.running), None)

    async def _worker(self, wq: Workqueue) -> None:
        """The workqueue's pool: each item in a kworker of its own.  An item
        handed to a kworker counts as running (max_active, non-reentrancy)
        but stays queued and pending until its kworker holds the CPU."""
        async with trio.open_nursery() as kworkers:
            while True:
                work = self._next(wq)
                if work is None:
                    await wq.changed.wait()
                    continue
                wq.running.add(work)
                kworkers.start_soon(self._process_one_work, wq, work, f"kworker/0:{len(wq.running)}")

    async def _process_one_work(self, wq: Workqueue, work: int, comm: str) -> None:
        """process_one_work: the item comes off the queue, its pending bit
        cleared, in the step that calls it (`call_deferred`): cancelled, or
        freed with its module (reported), while the kworker waited for the
        CPU, it does not run."""
        kernel = self.kernel

        def claim() -> tuple[int, int] | None:
            if work not in wq.queue:
                return None
            self._dequeue(wq, work)
            return kernel.mem.read_u64(work + WORK_FUNC), work
        try:
            await kernel.sanitizer.call_deferred(claim, via="process_one_work", comm=comm)
        except KernelError:
            pass                         # an oops: logged; the pool goes on
        finally:
            wq.running.discard(work)
            wq.notify()

    async def flush_work(self, work: int) -> bool:
        """Wait until `work` is neither queued nor running: True if it had to."""
        waited = False
        while True:
            wq = self.queued_on(work) or self.running_on(work)
            if wq is None:
                return waited
            waited = True
            await wq.changed.wait()

    def cancel(self, work: int) -> bool:
        wq = self.queued_on(work)
        if wq is None:
            return False
        self._dequeue(wq, work)
        wq.notify()
        return True

    def _dequeue(self, wq: Workqueue, work: int) -> None:
        wq.queue.remove(work)
        del self.queued[work]
        self._clear_pending(work)

    async def flush(self, wq: Workqueue) -> None:
        while wq.queue or wq.running:
            await wq.changed.wait()

    # -- a module going -------------------------------------------------------------------

    def _module_freed(self, mod: "Module") -> None:
        kernel, sanitizer = self.kernel, self.kernel.sanitizer
        for wq in list(self.by_address.values()):
            for work in list(wq.queue):
                func = _read(kernel, work + WORK_FUNC)
                if sanitizer.belongs_to(mod, work) or sanitizer.belongs_to(mod, func):
                    self._free_active(wq, work, func)

    def _memory_freed(self, start: int, end: int) -> None:
        """kfree of [start, end): debug_check_no_obj_freed for queued work."""
        for work, wq in [(w, q) for w, q in self.queued.items() if start <= w < end]:
            self._free_active(wq, work, _read(self.kernel, work + WORK_FUNC))

    def _free_active(self, wq: Workqueue, work: int, func: int) -> None:
        """ODEBUG: free active, then work_fixup_free: the work is cancelled."""
        self.kernel.sanitizer.report_odebug(work, "work_struct", self.kernel.machine.symbol_name(func))
        self._dequeue(wq, work)
        wq.notify()


def init_work(mem: Any, work: int, func: int) -> None:
    """INIT_WORK(work, func), as the header's inline does it: the kernel's
    own work items (an rhashtable's resize) are set up the same way."""
    mem.write_u64(work + WORK_DATA, WORK_STRUCT_NO_POOL)
    mem.write_u64(work + WORK_ENTRY, work + WORK_ENTRY)
    mem.write_u64(work + WORK_ENTRY + 8, work + WORK_ENTRY)
    mem.write_u64(work + WORK_FUNC, func)


def schedule_work(ctx: Any, work: int) -> int:
    """schedule_work(): queue_work(system_wq, work) (on the one CPU)."""
    system_wq = ctx.mem.read_u64(ctx.kernel.machine.kernel_symbols()["system_wq"])
    return queue_work_on(ctx, 0, system_wq, work)


def _read(kernel: "Kernel", address: int) -> int:
    try:
        return kernel.mem.read_u64(address)
    except Exception:
        return 0


@at_boot
def workqueues(kernel: "Kernel") -> Workqueues:
    return kernel.subsystem(Workqueues)


def _wq(ctx: Any, address: int) -> Workqueue:
    return workqueues(ctx.kernel).find(address)


@export("alloc_workqueue",
        "struct workqueue_struct *alloc_workqueue(const char *fmt, unsigned int flags, int max_active, ...)",
        nargs=3, variadic=True)
def alloc_workqueue(ctx: Any, fmt: int, flags: int, max_active: int) -> int:
    name = format_guest(ctx, fmt, ctx.va(), room=WQ_NAME_LEN)[0].decode(errors="replace")
    return workqueues(ctx.kernel).create(name, ctx.module,
                                         _max_active(ctx, name, flags, max_active)).address


def _max_active(ctx: Any, name: str, flags: int, max_active: int) -> int:
    """wq_clamp_max_active: 0 is the default; out of range is clamped, with
    Linux's warning.  An ordered workqueue runs one item at a time."""
    max_active &= 0xFFFFFFFF
    max_active = max_active - (1 << 32) if max_active >> 31 else max_active
    if flags & __WQ_ORDERED:
        return 1
    if not max_active:
        return WQ_DFL_ACTIVE
    if not 1 <= max_active <= WQ_MAX_ACTIVE:
        ctx.kernel.log.emit(KERN_WARNING, f"workqueue: max_active {max_active} requested for {name} "
                                          f"is out of range, clamping between 1 and {WQ_MAX_ACTIVE}",
                            getattr(ctx.module, "name", None))
        return min(max(max_active, 1), WQ_MAX_ACTIVE)
    return max_active


@export("destroy_workqueue", "void destroy_workqueue(struct workqueue_struct *wq)", nargs=1)
def destroy_workqueue(ctx: Any, address: int) -> Any:
    subsystem = workqueues(ctx.kernel)
    wq = subsystem.find(address)
    async def draining() -> int:
        await subsystem.flush(wq)                 # drain_workqueue
        subsystem.registry.remove(address)
        subsystem._drop(wq)
        return 0
    return draining()


@export("queue_work_on", "bool queue_work_on(int cpu, struct workqueue_struct *wq, struct work_struct *work)",
        nargs=3)
def queue_work_on(ctx: Any, cpu: int, wq: int, work: int) -> int:
    subsystem = workqueues(ctx.kernel)
    target = subsystem.find(wq)
    if not subsystem._set_pending(work):
        return 0
    subsystem.queue(target, work)
    return 1


@export("delayed_work_timer_fn", "void delayed_work_timer_fn(struct timer_list *t)", nargs=1)
def delayed_work_timer_fn(ctx: Any, timer: int) -> None:
    dwork = timer - DWORK_TIMER
    subsystem = workqueues(ctx.kernel)
    subsystem.queue(subsystem.find(ctx.mem.read_u64(dwork + DWORK_WQ)), dwork)


@export("queue_delayed_work_on",
        "bool queue_delayed_work_on(int cpu, struct workqueue_struct *wq, struct delayed_work *work, "
        "unsigned long delay)", nargs=4)
def queue_delayed_work_on(ctx: Any, cpu: int, wq: int, dwork: int, delay: int) -> int:
    subsystem = workqueues(ctx.kernel)
    target = subsystem.find(wq)
    if not subsystem._set_pending(dwork):
        return 0
    if not delay:
        subsystem.queue(target, dwork)
        return 1
    mem = ctx.mem
    mem.write_u64(dwork + DWORK_WQ, wq)
    mem.write_u32(dwork + DWORK_CPU, cpu & 0xFFFFFFFF)
    mem.write_u64(dwork + DWORK_TIMER + TIMER_FUNCTION,
                  ctx.kernel.machine.kernel_symbols()["delayed_work_timer_fn"])
    timers(ctx.kernel).arm(dwork + DWORK_TIMER, ctx.machine.jiffies() + delay)
    return 1


@export("flush_work", "bool flush_work(struct work_struct *work)", nargs=1)
def flush_work(ctx: Any, work: int) -> Any:
    subsystem = workqueues(ctx.kernel)
    if subsystem.queued_on(work) is None and subsystem.running_on(work) is None:
        return 0
    return subsystem.flush_work(work)


@export("cancel_work_sync", "bool cancel_work_sync(struct work_struct *work)", nargs=1)
def cancel_work_sync(ctx: Any, work: int) -> Any:
    subsystem = workqueues(ctx.kernel)
    was = subsystem.cancel(work)
    if subsystem.running_on(work) is None:
        return int(was)
    async def waiting() -> int:
        await subsystem.flush_work(work)
        return int(was)
    return waiting()


def _cancel_delayed(ctx: Any, dwork: int) -> bool:
    subsystem = workqueues(ctx.kernel)
    if timers(ctx.kernel).disarm(dwork + DWORK_TIMER):
        subsystem._clear_pending(dwork)
        return True
    return subsystem.cancel(dwork)


@export("cancel_delayed_work", "bool cancel_delayed_work(struct delayed_work *dwork)", nargs=1)
def cancel_delayed_work(ctx: Any, dwork: int) -> int:
    return int(_cancel_delayed(ctx, dwork))


@export("cancel_delayed_work_sync", "bool cancel_delayed_work_sync(struct delayed_work *dwork)", nargs=1)
def cancel_delayed_work_sync(ctx: Any, dwork: int) -> Any:
    was = _cancel_delayed(ctx, dwork)
    subsystem = workqueues(ctx.kernel)
    if subsystem.running_on(dwork) is None:
        return int(was)
    async def waiting() -> int:
        await subsystem.flush_work(dwork)
        return int(was)
    return waiting()


@export("flush_delayed_work", "bool flush_delayed_work(struct delayed_work *dwork)", nargs=1)
def flush_delayed_work(ctx: Any, dwork: int) -> Any:
    subsystem = workqueues(ctx.kernel)
    if timers(ctx.kernel).disarm(dwork + DWORK_TIMER):
        subsystem.queue(subsystem.find(ctx.mem.read_u64(dwork + DWORK_WQ)), dwork)
    return flush_work(ctx, dwork)


@export("__flush_workqueue", "void __flush_workqueue(struct workqueue_struct *wq)", nargs=1)
def __flush_workqueue(ctx: Any, address: int) -> Any:
    wq = _wq(ctx, address)
    if not wq.queue and not wq.running:
        return 0
    async def flushing() -> int:
        await workqueues(ctx.kernel).flush(wq)
        return 0
    return flushing()
