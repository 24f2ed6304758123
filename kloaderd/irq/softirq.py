"""Tasklets (Linux's kernel/softirq.c): a function run soon, in softirq
context, once per `tasklet_schedule` however often it was scheduled.

Scheduling sets `TASKLET_STATE_SCHED` (the header's inline
`tasklet_schedule` does, then calls `__tasklet_schedule`); the tasklet
softirq — a kernel thread of this kernel — clears it, sets
`TASKLET_STATE_RUN`, and calls `func(data)` or `callback(t)` with the task
atomic (`preempt_count` SOFTIRQ_OFFSET): try_module_get and module_put are
fine there, sleeping is "BUG: scheduling while atomic".  `tasklet_kill`
waits until the tasklet is neither scheduled nor running.  A tasklet of a
module still scheduled when the module is freed is reported and dropped.

Tasklets scheduled from a timer callback run before the timer softirq looks
for the next expired timer, as `__do_softirq()` runs TASKLET_SOFTIRQ, raised
by the timer callback, in the same pass after TIMER_SOFTIRQ: a timer that
re-arms itself for the next jiffy and schedules a tasklet each time gets
the tasklet run each time, however late the host lets the softirq run (a
busy host once made the timer fire twice before the tasklet thread ran, and
the second schedule was, rightly, a no-op).  One tasklet runs at a time,
whichever softirq runs it.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from ..errors import KernelError
from ..kernel.api import export
from ..kernel.printk import KERN_ERR, Problem

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel
    from ..kernel.module import Module

# struct tasklet_struct (include/linux/interrupt.h)
T_STATE = 8
T_COUNT = 16
T_USE_CALLBACK = 20
T_FUNC = 24
T_DATA = 32
T_SIZE = 40
TASKLET_STATE_SCHED = 1 << 0
TASKLET_STATE_RUN = 1 << 1
SOFTIRQ_OFFSET = 0x100            # preempt_count while a softirq runs (include/linux/preempt.h)


class Tasklets:
    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.queue: deque[int] = deque()
        self._changed = trio.Event()
        self._thread: Any = None
        self._running = trio.Lock()      # held while tasklets run: one at a time
        kernel.sanitizer.leftover_checks.append(self._module_freed)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def schedule(self, t: int) -> None:
        if t not in self.queue:
            self.queue.append(t)
        self._notify()
        if self._thread is None:
            self._thread = self.kernel.spawn(self._softirq, name="tasklet softirq")

    def _state(self, t: int, set_: int = 0, clear: int = 0) -> int:
        mem = self.kernel.mem
        state = mem.read_u64(t + T_STATE)
        mem.write_u64(t + T_STATE, (state | set_) & ~clear)
        return state

    async def _softirq(self) -> None:
        while True:
            while not self.queue:
                await self._changed.wait()
            await self.run_pending()

    async def run_pending(self) -> None:
        """tasklet_action(): run the tasklets scheduled now, in softirq
        context; one scheduled meanwhile waits for the next pass, as Linux
        takes the list before running it."""
        async with self._running:
            for _ in range(len(self.queue)):
                if self.queue:           # a freed module's are dropped meanwhile
                    await self._run_next()

    async def _run_next(self) -> None:
        """The first scheduled tasklet, taken off the queue once the softirq
        holds the CPU (`call_deferred`): one dropped meanwhile with its
        freed module (reported) does not run."""
        kernel = self.kernel
        taken: list[int] = []

        def claim() -> tuple[int, int] | None:
            if not self.queue:
                return None
            t = self.queue.popleft()
            taken.append(t)
            self._state(t, set_=TASKLET_STATE_RUN, clear=TASKLET_STATE_SCHED)
            mem = kernel.mem
            return mem.read_u64(t + T_FUNC), t if mem.read_u8(t + T_USE_CALLBACK) else mem.read_u64(t + T_DATA)
        try:
            await kernel.sanitizer.call_deferred(claim, via="tasklet_action", comm="ksoftirqd/0",
                                                 preempt_count=SOFTIRQ_OFFSET)
        except (KernelError, Exception):
            pass                  # an oops is logged; the softirq goes on
        finally:
            for t in taken:
                try:
                    self._state(t, clear=TASKLET_STATE_RUN)
                except Exception:
                    pass
            self._notify()

    async def kill(self, t: int) -> None:
        while t in self.queue or self._state(t) & TASKLET_STATE_RUN:
            await self._changed.wait()

    def _module_freed(self, mod: "Module") -> None:
        kernel = self.kernel
        for t in list(self.queue):
            try:
                fn = kernel.mem.read_u64(t + T_FUNC)
            except Exception:
                fn = 0
            if kernel.sanitizer.belongs_to(mod, t) or kernel.sanitizer.belongs_to(mod, fn):
                kernel.log.emit(KERN_ERR, f"BUG: module {mod.name} freed with tasklet {t:#x} "
                                          f"({kernel.machine.symbol_name(fn)}) still scheduled; "
                                          "it was dropped (tasklet_kill it in the module's exit)", None,
                                problem=Problem.OOPS)
                self.queue.remove(t)


def tasklets(kernel: "Kernel") -> Tasklets:
    return kernel.subsystem(Tasklets)


@export("tasklet_init", "void tasklet_init(struct tasklet_struct *t, void (*func)(unsigned long), "
                        "unsigned long data)", nargs=3)
def tasklet_init(ctx: Any, t: int, func: int, data: int) -> None:
    ctx.mem.write(t, bytes(T_SIZE))
    ctx.mem.write_u64(t + T_FUNC, func)
    ctx.mem.write_u64(t + T_DATA, data)


@export("tasklet_setup", "void tasklet_setup(struct tasklet_struct *t, "
                         "void (*callback)(struct tasklet_struct *))", nargs=2)
def tasklet_setup(ctx: Any, t: int, callback: int) -> None:
    ctx.mem.write(t, bytes(T_SIZE))
    ctx.mem.write_u8(t + T_USE_CALLBACK, 1)
    ctx.mem.write_u64(t + T_FUNC, callback)


@export("__tasklet_schedule", "void __tasklet_schedule(struct tasklet_struct *t)", nargs=1)
def __tasklet_schedule(ctx: Any, t: int) -> None:
    tasklets(ctx.kernel).schedule(t)


@export("tasklet_kill", "void tasklet_kill(struct tasklet_struct *t)", nargs=1)
def tasklet_kill(ctx: Any, t: int) -> Any:
    subsystem = tasklets(ctx.kernel)
    if t not in subsystem.queue and not subsystem._state(t) & TASKLET_STATE_RUN:
        subsystem._state(t, clear=TASKLET_STATE_SCHED)
        return 0
    async def waiting() -> int:
        await subsystem.kill(t)
        subsystem._state(t, clear=TASKLET_STATE_SCHED)
        return 0
    return waiting()
