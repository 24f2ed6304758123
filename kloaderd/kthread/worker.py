"""kthread workers (Linux's kernel/kthread.c): a kernel thread of its own
that runs a module's `struct kthread_work` items one at a time, in the
order queued (the watchdog core's "watchdogd", drivers that need a
real-time thread for their work).

`kthread_create_worker` allocates and initialises the `struct
kthread_worker` (Linux's layout: the work list, `task`, `current_work`)
and starts a kthread running `kthread_worker_fn(worker)` — a kernel
function, so a module may also start one itself with `kthread_run`.
Works are linked on the worker's list in guest memory as Linux links them
(`kthread_init_work` and `queuing_blocked`'s `list_empty(&work->node)`
are inline in modules); queueing a work already queued, or being
cancelled, returns false.  `kthread_flush_work` waits until the work is
neither queued nor running, `kthread_cancel_work_sync` takes it off the
list (true) and waits for a running instance, `kthread_flush_worker`
waits for every queued work, `kthread_destroy_worker` flushes, stops the
thread and frees the worker.  A worker a module created and never
destroyed is a leaked registration: its thread is stopped.

Layouts (6.1, 6.12): kthread_worker {flags@0, lock@4, work_list@8,
delayed_work_list@24, task@40, current_work@48} 56 bytes; kthread_work
{node@0, func@16, worker@24, canceling@32} 40.  Delayed works are not
emulated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from ..kernel.api import export
from ..kernel.api.printk import format_guest
from ..kernel.callback import call_module_code
from ..kernel.panic import warn_once
from ..kernel.sched import TASK_COMM_LEN
from ..lib.list import GuestList, init_list_head
from .kthread import kthreads

LAYOUTS = ((6, 1), (6, 12))

KW_WORK_LIST, KW_DELAYED_WORK_LIST, KW_TASK, KW_CURRENT_WORK = 8, 24, 40, 48
KW_SIZE = 56
WORK_NODE, WORK_FUNC, WORK_WORKER, WORK_CANCELING = 0, 16, 24, 32
ENOMEM_PTR = (-12) & ((1 << 64) - 1)


@dataclass(eq=False)
class Worker:
    """What the kernel keeps of a worker beside its structure: who waits."""
    address: int
    changed: trio.Event = field(default_factory=trio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class Workers:
    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.by_address: dict[int, Worker] = {}
        self.registry = kernel.registrations.registry("kthread_worker")

    def of(self, address: int) -> Worker:
        return self.by_address.setdefault(address, Worker(address))


def workers(ctx: Any) -> Workers:
    return ctx.kernel.subsystem(Workers)


def _queued(mem: Any, work: int) -> bool:
    """!list_empty(&work->node)."""
    return mem.read_u64(work + WORK_NODE) != work + WORK_NODE


@export("kthread_worker_fn", "int kthread_worker_fn(void *worker_ptr)", nargs=1, gpl=True)
def kthread_worker_fn(ctx: Any, worker_ptr: int) -> Any:
    """The worker thread: each work of the list in turn, until kthread_stop."""
    mem, thread_of = ctx.mem, kthreads(ctx.kernel).by_task.get
    state = workers(ctx).of(worker_ptr)

    async def working() -> int:
        while True:
            thread = thread_of(ctx.task.current)
            if thread is None or thread.should_stop:
                mem.write_u64(worker_ptr + KW_TASK, 0)
                return 0
            head = worker_ptr + KW_WORK_LIST
            work = mem.read_u64(head)
            if work == head:
                ctx.task.wakeup = woken = trio.Event()
                await woken.wait()
                continue
            GuestList.delete(ctx, work, init=True)
            mem.write_u64(worker_ptr + KW_CURRENT_WORK, work)
            try:
                await call_module_code(ctx, mem.read_u64(work + WORK_FUNC), work)
            finally:
                mem.write_u64(worker_ptr + KW_CURRENT_WORK, 0)
                state.notify()
    return working()


@export("kthread_create_worker", "struct kthread_worker *kthread_create_worker(unsigned int flags, "
        "const char namefmt[], ...)", nargs=2, variadic=True)
def kthread_create_worker(ctx: Any, flags: int, namefmt: int) -> int:
    kernel, mem = ctx.kernel, ctx.mem
    name = format_guest(ctx, namefmt, ctx.va(), room=TASK_COMM_LEN - 1)[0].decode(errors="replace")
    worker = kernel.slab.alloc(KW_SIZE, None, zero=True)
    if not worker:
        return ENOMEM_PTR
    mem.write_u32(worker, flags & 0xFFFFFFFF)
    init_list_head(mem, worker + KW_WORK_LIST)
    init_list_head(mem, worker + KW_DELAYED_WORK_LIST)
    thread = kthreads(kernel).create(ctx.machine.kernel_symbols()["kthread_worker_fn"], worker, name,
                                     ctx.module)
    mem.write_u64(worker + KW_TASK, thread.task.current)
    table = workers(ctx)
    table.of(worker)
    table.registry.add(worker, f"kthread_worker {name}", owner=ctx.module, address=worker,
                       data=thread, on_leftover=lambda entry: _abandon(kernel, worker))
    kthreads(kernel).wake(thread)
    return worker


def _abandon(kernel: Any, worker: int) -> None:
    """A leftover: its thread is stopped where it sleeps, the worker freed."""
    table = kernel.subsystem(Workers)
    entry_thread = kthreads(kernel).by_task.get(kernel.mem.read_u64(worker + KW_TASK))
    if entry_thread is not None and entry_thread.scope is not None:
        entry_thread.scope.cancel()
    table.by_address.pop(worker, None)
    kernel.slab.free(worker, None)


@export("kthread_queue_work", "bool kthread_queue_work(struct kthread_worker *worker, "
        "struct kthread_work *work)", nargs=2, gpl=True)
def kthread_queue_work(ctx: Any, worker: int, work: int) -> int:
    mem = ctx.mem
    if _queued(mem, work) or mem.read_u32(work + WORK_CANCELING):
        return 0
    owner = mem.read_u64(work + WORK_WORKER)
    if owner and owner != worker:
        warn_once(ctx, None, "kernel/kthread.c:993", "kthread_queue_work")
    GuestList(ctx.kernel, worker + KW_WORK_LIST).add_tail(ctx, work + WORK_NODE)
    mem.write_u64(work + WORK_WORKER, worker)
    task = mem.read_u64(worker + KW_TASK)
    thread = kthreads(ctx.kernel).by_task.get(task)
    if not mem.read_u64(worker + KW_CURRENT_WORK) and thread is not None:
        ctx.machine.sched.wake_up(thread.task)
    return 1


async def _until(ctx: Any, worker: int, done: Any) -> None:
    state = workers(ctx).of(worker)
    while not done():
        await state.changed.wait()


@export("kthread_flush_work", "void kthread_flush_work(struct kthread_work *work)", nargs=1, gpl=True)
def kthread_flush_work(ctx: Any, work: int) -> Any:
    mem = ctx.mem
    worker = mem.read_u64(work + WORK_WORKER)
    if not worker:
        return 0

    def done() -> bool:
        return not _queued(mem, work) and mem.read_u64(worker + KW_CURRENT_WORK) != work

    async def flushing() -> int:
        await _until(ctx, worker, done)
        return 0
    return 0 if done() else flushing()


@export("kthread_cancel_work_sync", "bool kthread_cancel_work_sync(struct kthread_work *work)", nargs=1,
        gpl=True)
def kthread_cancel_work_sync(ctx: Any, work: int) -> Any:
    mem = ctx.mem
    worker = mem.read_u64(work + WORK_WORKER)
    if not worker:
        return 0
    cancelled = _queued(mem, work)
    if cancelled:
        GuestList.delete(ctx, work + WORK_NODE, init=True)
    if mem.read_u64(worker + KW_CURRENT_WORK) != work:
        return int(cancelled)

    async def cancelling() -> int:
        mem.write_u32(work + WORK_CANCELING, mem.read_u32(work + WORK_CANCELING) + 1)
        await _until(ctx, worker, lambda: mem.read_u64(worker + KW_CURRENT_WORK) != work)
        mem.write_u32(work + WORK_CANCELING, mem.read_u32(work + WORK_CANCELING) - 1)
        return int(cancelled)
    return cancelling()


def _idle(mem: Any, worker: int) -> bool:
    head = worker + KW_WORK_LIST
    return mem.read_u64(head) == head and not mem.read_u64(worker + KW_CURRENT_WORK)


@export("kthread_flush_worker", "void kthread_flush_worker(struct kthread_worker *worker)", nargs=1, gpl=True)
def kthread_flush_worker(ctx: Any, worker: int) -> Any:
    async def flushing() -> int:
        await _until(ctx, worker, lambda: _idle(ctx.mem, worker))
        return 0
    return 0 if _idle(ctx.mem, worker) else flushing()


@export("kthread_destroy_worker", "void kthread_destroy_worker(struct kthread_worker *worker)", nargs=1)
def kthread_destroy_worker(ctx: Any, worker: int) -> Any:
    kernel, mem = ctx.kernel, ctx.mem
    thread = kthreads(kernel).by_task.get(mem.read_u64(worker + KW_TASK))
    if thread is None:
        warn_once(ctx, None, "kernel/kthread.c:1395", "kthread_destroy_worker")
        return 0

    async def destroying() -> int:
        await _until(ctx, worker, lambda: _idle(mem, worker))
        await kthreads(kernel).stop(thread)
        table = workers(ctx)
        table.registry.remove(worker)
        table.by_address.pop(worker, None)
        kernel.slab.free(worker, None)
        return 0
    return destroying()
