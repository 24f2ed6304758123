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

`struct kthread_worker` and `struct kthread_work` are read at the
kernel's offsets (kernel/layouts.py).  Delayed works are not emulated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from ..kernel.api import export
from ..kernel.api.printk import format_guest
from ..kernel.callback import call_module_code
from ..kernel.layouts import struct
from ..kernel.panic import warn_once
from ..kernel.sched import TASK_COMM_LEN
from ..lib.list import GuestList, init_list_head
from .kthread import kthreads

KTHREAD_WORKER = struct("struct kthread_worker", "linux/kthread.h", "flags", "work_list", "delayed_work_list",
                        "task", "current_work")
KTHREAD_WORK = struct("struct kthread_work", "linux/kthread.h", "node", "func", "worker", "canceling")
STRUCTS = (KTHREAD_WORKER, KTHREAD_WORK)
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


def _layouts(kernel: Any) -> tuple[Any, Any]:
    """(struct kthread_worker, struct kthread_work) in this kernel."""
    return kernel.layouts[KTHREAD_WORKER], kernel.layouts[KTHREAD_WORK]


def _queued(ctx: Any, work: int) -> bool:
    """!list_empty(&work->node)."""
    node = work + ctx.kernel.layouts[KTHREAD_WORK].node
    return ctx.mem.read_u64(node) != node


@export("kthread_worker_fn", "int kthread_worker_fn(void *worker_ptr)", nargs=1, gpl=True)
def kthread_worker_fn(ctx: Any, worker_ptr: int) -> Any:
    """The worker thread: each work of the list in turn, until kthread_stop."""
    mem, thread_of = ctx.mem, kthreads(ctx.kernel).by_task.get
    kw, wk = _layouts(ctx.kernel)
    state = workers(ctx).of(worker_ptr)

    async def working() -> int:
        while True:
            thread = thread_of(ctx.task.current)
            if thread is None or thread.should_stop:
                mem.write_u64(worker_ptr + kw.task, 0)
                return 0
            head = worker_ptr + kw.work_list
            node = mem.read_u64(head)
            if node == head:
                ctx.task.wakeup = woken = trio.Event()
                await woken.wait()
                continue
            GuestList.delete(ctx, node, init=True)
            work = node - wk.node
            mem.write_u64(worker_ptr + kw.current_work, work)
            try:
                await call_module_code(ctx, mem.read_u64(work + wk.func), work)
            finally:
                mem.write_u64(worker_ptr + kw.current_work, 0)
                state.notify()
    return working()


@export("kthread_create_worker", "struct kthread_worker *kthread_create_worker(unsigned int flags, "
        "const char namefmt[], ...)", nargs=2, variadic=True)
def kthread_create_worker(ctx: Any, flags: int, namefmt: int) -> int:
    kernel, mem = ctx.kernel, ctx.mem
    kw = kernel.layouts[KTHREAD_WORKER]
    name = format_guest(ctx, namefmt, ctx.va(), room=TASK_COMM_LEN - 1)[0].decode(errors="replace")
    worker = kernel.slab.alloc(kw.size, None, zero=True)
    if not worker:
        return ENOMEM_PTR
    mem.write_u32(worker + kw.flags, flags & 0xFFFFFFFF)
    init_list_head(mem, worker + kw.work_list)
    init_list_head(mem, worker + kw.delayed_work_list)
    thread = kthreads(kernel).create(ctx.machine.kernel_symbols()["kthread_worker_fn"], worker, name,
                                     ctx.module)
    mem.write_u64(worker + kw.task, thread.task.current)
    table = workers(ctx)
    table.of(worker)
    table.registry.add(worker, f"kthread_worker {name}", owner=ctx.module, address=worker,
                       data=thread, on_leftover=lambda entry: _abandon(kernel, worker))
    kthreads(kernel).wake(thread)
    return worker


def _abandon(kernel: Any, worker: int) -> None:
    """A leftover: its thread is stopped where it sleeps, the worker freed."""
    table = kernel.subsystem(Workers)
    task = kernel.mem.read_u64(worker + kernel.layouts[KTHREAD_WORKER].task)
    entry_thread = kthreads(kernel).by_task.get(task)
    if entry_thread is not None and entry_thread.scope is not None:
        entry_thread.scope.cancel()
    table.by_address.pop(worker, None)
    kernel.slab.free(worker, None)


@export("kthread_queue_work", "bool kthread_queue_work(struct kthread_worker *worker, "
        "struct kthread_work *work)", nargs=2, gpl=True)
def kthread_queue_work(ctx: Any, worker: int, work: int) -> int:
    mem, (kw, wk) = ctx.mem, _layouts(ctx.kernel)
    if _queued(ctx, work) or mem.read_u32(work + wk.canceling):
        return 0
    owner = mem.read_u64(work + wk.worker)
    if owner and owner != worker:
        warn_once(ctx, None, "kernel/kthread.c:993", "kthread_queue_work")
    GuestList(ctx.kernel, worker + kw.work_list).add_tail(ctx, work + wk.node)
    mem.write_u64(work + wk.worker, worker)
    task = mem.read_u64(worker + kw.task)
    thread = kthreads(ctx.kernel).by_task.get(task)
    if not mem.read_u64(worker + kw.current_work) and thread is not None:
        ctx.machine.sched.wake_up(thread.task)
    return 1


async def _until(ctx: Any, worker: int, done: Any) -> None:
    state = workers(ctx).of(worker)
    while not done():
        await state.changed.wait()


@export("kthread_flush_work", "void kthread_flush_work(struct kthread_work *work)", nargs=1, gpl=True)
def kthread_flush_work(ctx: Any, work: int) -> Any:
    mem, (kw, wk) = ctx.mem, _layouts(ctx.kernel)
    worker = mem.read_u64(work + wk.worker)
    if not worker:
        return 0

    def done() -> bool:
        return not _queued(ctx, work) and mem.read_u64(worker + kw.current_work) != work

    async def flushing() -> int:
        await _until(ctx, worker, done)
        return 0
    return 0 if done() else flushing()


@export("kthread_cancel_work_sync", "bool kthread_cancel_work_sync(struct kthread_work *work)", nargs=1,
        gpl=True)
def kthread_cancel_work_sync(ctx: Any, work: int) -> Any:
    mem, (kw, wk) = ctx.mem, _layouts(ctx.kernel)
    worker = mem.read_u64(work + wk.worker)
    if not worker:
        return 0
    cancelled = _queued(ctx, work)
    if cancelled:
        GuestList.delete(ctx, work + wk.node, init=True)
    if mem.read_u64(worker + kw.current_work) != work:
        return int(cancelled)

    async def cancelling() -> int:
        mem.write_u32(work + wk.canceling, mem.read_u32(work + wk.canceling) + 1)
        await _until(ctx, worker, lambda: mem.read_u64(worker + kw.current_work) != work)
        mem.write_u32(work + wk.canceling, mem.read_u32(work + wk.canceling) - 1)
        return int(cancelled)
    return cancelling()


def _idle(ctx: Any, worker: int) -> bool:
    kw, mem = ctx.kernel.layouts[KTHREAD_WORKER], ctx.mem
    head = worker + kw.work_list
    return mem.read_u64(head) == head and not mem.read_u64(worker + kw.current_work)


@export("kthread_flush_worker", "void kthread_flush_worker(struct kthread_worker *worker)", nargs=1, gpl=True)
def kthread_flush_worker(ctx: Any, worker: int) -> Any:
    async def flushing() -> int:
        await _until(ctx, worker, lambda: _idle(ctx, worker))
        return 0
    return 0 if _idle(ctx, worker) else flushing()


@export("kthread_destroy_worker", "void kthread_destroy_worker(struct kthread_worker *worker)", nargs=1)
def kthread_destroy_worker(ctx: Any, worker: int) -> Any:
    kernel, mem = ctx.kernel, ctx.mem
    thread = kthreads(kernel).by_task.get(mem.read_u64(worker + kernel.layouts[KTHREAD_WORKER].task))
    if thread is None:
        warn_once(ctx, None, "kernel/kthread.c:1395", "kthread_destroy_worker")
        return 0

    async def destroying() -> int:
        await _until(ctx, worker, lambda: _idle(ctx, worker))
        await kthreads(kernel).stop(thread)
        table = workers(ctx)
        table.registry.remove(worker)
        table.by_address.pop(worker, None)
        kernel.slab.free(worker, None)
        return 0
    return destroying()
