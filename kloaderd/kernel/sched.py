"""Tasks on the one emulated CPU: stacks, the CPU lock, sleeping and waking.

The machine is a uniprocessor.  Exactly one task runs guest code at a time;
the others wait for the CPU in a FIFO (`StrictFIFOLock`), so a task that
computes for long yields between slices and every task gets its turn, just
as a preemptible kernel time-slices its threads.  A task *sleeps* when a
kernel function blocks (msleep, a contended mutex, wait_for_completion): it
gives the CPU up for the duration and, as in Linux, sleeping is what resets
the soft-lockup watchdog.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import trio

from ..config import PAGE_SIZE, THREAD_SIZE, VMALLOC_END, VMALLOC_START
from .memory import AddressSpace, RegionAllocator
from .printk import KERN_ERR, Problem

TASK_COMM_LEN = 16
# Where task_structs live: a slot of TASK_STRUCT_SIZE each, of which only the
# first page is memory (kernel/task_struct.py fills what kloader knows there).
TASK_STRUCT_BASE = 0xFFFF888A00000000
TASK_STRUCT_SIZE = 0x2000
TASK_STRUCT_SLOTS = 1 << 20
# A slot is reused only after this many others have been freed since: a
# stale pointer to a dead task (a mutex it still "owns") stays foreign to
# the tasks that follow it for that long, as a freed object sits on a slab
# freelist behind others.
TASK_STRUCT_QUARANTINE = 256


@dataclass(eq=False, slots=True)
class Task:
    """A kernel thread running one `Machine.call`."""
    pid: int
    comm: str
    module: Any                        # the kernel's Module whose code was entered, or None
    stack_base: int                    # lowest mapped byte of the stack (a guard page lies below)
    context: Any = None                # Unicorn context saved while off the CPU
    rip: int = 0                       # where it resumes: %rip when its last slice ended
    preempt_count: int = 0             # spinlocks held: sleeping now is a bug
    runtime: float = 0.0               # seconds on the CPU since it last slept (the watchdog's clock)
    held_locks: dict[int, int] = field(default_factory=dict)   # sleeping lock -> where taken (lockdep's)
    holds_cpu: bool = False
    wakeup: trio.Event | None = None   # set by wake_up_process while it sleeps in schedule_timeout
    cred: int = 0                      # its struct cred (guest address); 0: init_cred's (kernel/cred.py)
    real_cred: int = 0
    _current: int = 0
    _sched: "Scheduler | None" = field(default=None, repr=False)

    @property
    def stack_top(self) -> int:
        return self.stack_base + THREAD_SIZE

    @property
    def current(self) -> int:
        """The value `current` has in guest memory (a mutex's owner field):
        its task_struct, a slot reused only long after the task is gone.
        Given at first use: most tasks are one call into a module that
        returns at once, and never take a lock or show `current` to a module
        (a kernel with a per-CPU `current` asks for it as the task starts)."""
        if not self._current:
            assert self._sched is not None
            self._current = self._sched.give_task_struct(self)
        return self._current


@dataclass(eq=False)
class Waiter:
    task: Task | None
    event: trio.Event = field(default_factory=trio.Event)


class WaitQueue:
    """Tasks waiting on guest objects, keyed by the object's address (the
    kernel keeps a mutex's or a completion's waiters in Python)."""

    def __init__(self) -> None:
        self._queues: dict[int, deque[Waiter]] = {}

    async def wait(self, key: int, task: Task | None, timeout: float = math.inf) -> bool:
        """Sleep until woken (True) or until `timeout` seconds pass (False)."""
        waiter = Waiter(task)
        queue = self._queues.setdefault(key, deque())
        queue.append(waiter)
        try:
            with trio.move_on_after(timeout):
                await waiter.event.wait()
            return waiter.event.is_set()
        except BaseException:
            # Cancelled just after being woken: pass the wakeup on, or the
            # next waiter would sleep through a complete().
            if waiter.event.is_set():
                self.wake(key, 1)
            raise
        finally:
            if not waiter.event.is_set():
                queue.remove(waiter)
                if not queue:
                    del self._queues[key]

    def wake(self, key: int, n: int | None = 1) -> list[Waiter]:
        """Wake the first `n` waiters on key (all with None), oldest first."""
        queue = self._queues.get(key)
        woken: list[Waiter] = []
        while queue and (n is None or len(woken) < n):
            waiter = queue.popleft()
            waiter.event.set()
            woken.append(waiter)
        if queue is not None and not queue:
            del self._queues[key]
        return woken

    def waiters(self, key: int) -> int:
        return len(self._queues.get(key, ()))

    def sleepers(self, key: int) -> list[Task]:
        """The tasks waiting on `key`, oldest first."""
        return [w.task for w in self._queues.get(key, ()) if w.task is not None]


class BusyWait:
    """Returned by a kernel function that spins (udelay): the task keeps the
    CPU for `seconds`, the daemon's event loop still runs, nothing sleeps."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class CpuLock:
    """The one CPU, handed to waiters first come, first served.

    `trio.StrictFIFOLock`'s discipline (a release hands the CPU to the
    oldest waiter, so a task that yields at the end of its slice queues
    behind the others) without its per-call bookkeeping: a trio lock belongs
    to a trio task and registers with the deadlock detector on every
    acquire, which cost as much as the rest of entering guest code.  Who
    holds the CPU is the kloader `Task`'s `holds_cpu`; the lock only orders.
    """

    __slots__ = ("_busy", "_lot")

    def __init__(self) -> None:
        self._busy = False
        self._lot = trio.lowlevel.ParkingLot()

    @property
    def waiting(self) -> int:
        """Tasks queued for the CPU."""
        return len(self._lot)

    def try_acquire(self) -> bool:
        """Take the CPU if it is free and nobody queues for it."""
        if self._busy or self._lot:
            return False
        self._busy = True
        return True

    async def wait(self) -> None:
        """Queue for the CPU; return holding it.  Woken only by release(),
        which hands the CPU over still busy: nobody can take it between the
        wake-up and this task running."""
        await self._lot.park()

    def release(self) -> None:
        if self._lot:
            self._lot.unpark(count=1)     # handed over: still busy
        else:
            self._busy = False


class KernelLog(Protocol):
    def emit(self, level: int, text: str, module: str | None = None, *,
             problem: Problem | None = None) -> Any: ...


class SchedulerKernel(Protocol):
    """What the scheduler tells the kernel: its log lines and the taint a
    BUG leaves (Kernel is one; tests hand a smaller one)."""

    @property
    def log(self) -> KernelLog: ...

    def add_taint(self, flag: str) -> None: ...


class Scheduler:
    """Owns the tasks, their kernel stacks and the CPU lock."""

    def __init__(self, kernel: SchedulerKernel, mem: AddressSpace) -> None:
        self.kernel = kernel
        self.mem = mem
        self.cpu = CpuLock()
        self.waitqueue = WaitQueue()
        self.tasks: dict[int, Task] = {}
        self._stacks = RegionAllocator(VMALLOC_START, VMALLOC_END)
        self._spare_stacks: list[int] = []
        self.lock_names: dict[int, str] = {}        # lock address -> __mutex_init's class name
        # Sleeping locks whose holder is gone (died in an oops, or returned
        # still holding them): as in Linux nobody will ever unlock them, so
        # whoever takes one next sleeps for ever.  lock -> "comm/pid".
        self.orphaned_locks: dict[int, str] = {}
        self._next_pid = 100
        self._task_structs = RegionAllocator(TASK_STRUCT_BASE, TASK_STRUCT_BASE + TASK_STRUCT_SLOTS * TASK_STRUCT_SIZE)
        self._spare_task_structs: deque[int] = deque()
        self._by_current: dict[int, Task] = {}
        # Fills a new task's task_struct page (kernel/task_struct.py; None: left zeroed).
        self.on_new_task: Callable[[Task], None] | None = None

    # --- tasks ----------------------------------------------------------------

    def new_task(self, comm: str, module: Any = None) -> Task:
        pid = self._next_pid
        self._next_pid += 1
        task = Task(pid, comm[:TASK_COMM_LEN - 1], module, self._new_stack(), _sched=self)
        self.tasks[pid] = task
        if self.on_new_task is not None:
            self.on_new_task(task)
        return task

    def task_at(self, task_struct: int) -> Task | None:
        """The live task whose `current` is `task_struct`."""
        return self._by_current.get(task_struct)

    def give_task_struct(self, task: Task) -> int:
        """A task_struct slot for `task`, its first page mapped; recycled
        (oldest first, after TASK_STRUCT_QUARANTINE), so a task costs no
        mapping once the daemon has run that many (the page is rewritten
        for each)."""
        if len(self._spare_task_structs) > TASK_STRUCT_QUARANTINE:
            slot = self._spare_task_structs.popleft()
        else:
            slot = self._task_structs.alloc(TASK_STRUCT_SIZE)
            self.mem.map(slot, PAGE_SIZE, "rw-")
        self._by_current[slot] = task
        return slot

    def wake_up(self, task: Task) -> bool:
        """try_to_wake_up: end a wakeable sleep (schedule, schedule_timeout) now."""
        if task.wakeup is None or task.wakeup.is_set():
            return False
        task.wakeup.set()
        return True

    def exit_task(self, task: Task) -> None:
        """The task is gone: give the CPU back if it held it, recycle its stack.
        The sleeping locks it still holds stay held (`orphaned_locks`)."""
        if task.held_locks:
            self.orphaned_locks.update(dict.fromkeys(task.held_locks, f"{task.comm}/{task.pid}"))
        if task.holds_cpu:
            self.release(task)
        if self.tasks.pop(task.pid, None) is not None:
            self._spare_stacks.append(task.stack_base)
            if task._current:
                del self._by_current[task._current]
                self._spare_task_structs.append(task._current)

    def _new_stack(self) -> int:
        """A THREAD_SIZE stack above an unmapped guard page (CONFIG_VMAP_STACK).

        Stacks are recycled rather than unmapped: mapping costs more than a
        short kernel call, and a stale stack holds nothing a module may keep.
        """
        if self._spare_stacks:
            return self._spare_stacks.pop()
        region = self._stacks.alloc(PAGE_SIZE + THREAD_SIZE)
        self.mem.map(region + PAGE_SIZE, THREAD_SIZE, "rw-")
        return region + PAGE_SIZE

    def stack_guard(self, address: int) -> Task | None:
        """The task whose stack guard page holds `address`, if any."""
        for task in self.tasks.values():
            if task.stack_base - PAGE_SIZE <= address < task.stack_base:
                return task
        return None

    # --- the CPU --------------------------------------------------------------

    async def acquire(self, task: Task) -> None:
        """Take the CPU for `task`; when it is free and nobody queues for it
        without a trip through the scheduler (entering guest code costs what
        emu_start costs), but still noticing a cancellation."""
        await trio.lowlevel.checkpoint_if_cancelled()
        cpu = self.cpu
        if not cpu.try_acquire():
            await cpu.wait()
        task.holds_cpu = True

    def release(self, task: Task) -> None:
        task.holds_cpu = False
        self.cpu.release()

    async def yield_cpu(self, task: Task) -> None:
        """End of a time slice: let the event loop run, and other tasks if
        any wait for the CPU (they go first: the lock is FIFO) — unless the
        task is atomic (a softirq, a hardirq, a spinlock held): Linux never
        preempts that, so a timer's callback runs to its end before the
        process it interrupted (a module's exit, about to free the module)
        goes on, as the Golden Rule's "removal waits for the CPU" assumes.
        The watchdog still ends one that spins for ever."""
        if self.cpu.waiting and not task.preempt_count:
            self.release(task)
            await self.acquire(task)
        else:
            await trio.lowlevel.checkpoint()

    def schedule_out(self, task: Task) -> None:
        """The task is about to sleep: what __schedule checks first."""
        if task.preempt_count:
            # schedule_debug(): preempt_count() includes __schedule's own disable.
            self._log(KERN_ERR, f"BUG: scheduling while atomic: {task.comm}/{task.pid}/"
                                f"0x{task.preempt_count + 1:08x}", task, Problem.OOPS)
            self.kernel.add_taint("W")
        task.runtime = 0.0

    def _log(self, level: int, text: str, task: Task, problem: Problem | None = None) -> None:
        module = getattr(task.module, "name", None)
        self.kernel.log.emit(level, text, module, problem=problem)
