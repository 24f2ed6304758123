"""Timers (Linux's kernel/time/timer.c): `struct timer_list`, driven by jiffies.

A pending timer is kept in Python, keyed by the address of its `struct
timer_list`, and marked pending in guest memory the way Linux does
(`entry.pprev` non-NULL), so the header's inline `timer_pending()` is
right.  One kernel thread per kernel (the timer softirq) sleeps until the
earliest `expires`, then runs each expired timer's function in softirq
context: atomic, so sleeping there is "BUG: scheduling while atomic", and a
Golden Rule entry is allowed (nothing sleeps in the module).

`timer_delete_sync()` waits for a running callback to finish, as Linux's
does.  A timer still pending when the memory holding it is kfreed (at any
offset in the object: debugobjects' `debug_check_no_obj_freed`), or when it
or its function is freed with a module, is reported as debugobjects reports it —
`ODEBUG: free active (active state 0) object: ... object type: timer_list
hint: fn+0x0/0x...` — and disarmed.

Differences from Linux: no timer wheel granularity (a timer fires as soon as
jiffies reaches `expires`); callbacks run one at a time in `swapper/0`'s
name; an oops in a callback is logged and the softirq goes on (Linux
panics: "Fatal exception in interrupt").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from ..config import HZ
from ..errors import KernelError
from ..irq.softirq import SOFTIRQ_OFFSET, tasklets
from ..kernel.api import export
from ..kernel.api.sched import _warn

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel
    from ..kernel.module import Module

# struct timer_list (include/linux/timer.h)
TIMER_ENTRY_PPREV = 8
TIMER_EXPIRES = 16
TIMER_FUNCTION = 24
TIMER_FLAGS = 32
TIMER_SIZE = 40
_PENDING_MARK = 0x122             # what entry.pprev holds while pending (LIST_POISON2)
_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


@dataclass(eq=False)
class Running:
    """A callback being run: timer_delete_sync waits for `done`."""
    done: trio.Event = field(default_factory=trio.Event)


class Timers:
    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.pending: dict[int, int] = {}          # timer address -> expires (jiffies)
        self.running: dict[int, Running] = {}
        self._changed = trio.Event()
        self._thread: trio.CancelScope | None = None
        kernel.sanitizer.leftover_checks.append(self._module_freed)
        kernel.sanitizer.watch_frees(self.pending, self._memory_freed)

    # -- arming ------------------------------------------------------------------

    def arm(self, timer: int, expires: int) -> bool:
        """__mod_timer: (re)arm; True if it was pending.  A timer shut down
        (its function NULL) is not armed again, silently."""
        mem = self.kernel.mem
        was = timer in self.pending
        if not mem.read_u64(timer + TIMER_FUNCTION):
            return was
        mem.write_u64(timer + TIMER_EXPIRES, expires & _MASK64)
        mem.write_u64(timer + TIMER_ENTRY_PPREV, _PENDING_MARK)
        self.pending[timer] = expires & _MASK64
        self._kick()
        return was

    def disarm(self, timer: int) -> bool:
        """detach_if_pending: True if it was pending."""
        if self.pending.pop(timer, None) is None:
            return False
        try:
            self.kernel.mem.write_u64(timer + TIMER_ENTRY_PPREV, 0)
        except Exception:
            pass                       # its memory is gone already
        self._kick()
        return True

    def _kick(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
        if self._thread is None:
            self._thread = self.kernel.spawn(self._softirq, name="timer softirq")

    # -- the softirq ---------------------------------------------------------------

    async def _softirq(self) -> None:
        machine = self.kernel.machine
        while True:
            changed = self._changed
            now = machine.jiffies()
            due = sorted((t for t, exp in self.pending.items() if _signed(exp - now) <= 0),
                         key=lambda t: _signed(self.pending[t] - now))
            for timer in due:
                if self.pending.get(timer) is not None:
                    await self._expire(timer)
            if due:
                # TASKLET_SOFTIRQ, raised by the callbacks, in the same pass.
                await tasklets(self.kernel).run_pending()
                continue
            wait = min((_signed(exp - now) for exp in self.pending.values()), default=None)
            with trio.move_on_after(math.inf if wait is None else wait / HZ):
                await changed.wait()

    async def _expire(self, timer: int) -> None:
        """Run one expired timer.  It stays pending until the softirq holds
        the CPU and its callback starts (`call_deferred`): deleted, re-armed
        for later, or freed with its module (reported) meanwhile, it does not run."""
        running = Running()

        def claim() -> tuple[int, int] | None:
            expires = self.pending.get(timer)
            if expires is None or _signed(expires - self.kernel.machine.jiffies()) > 0:
                return None
            self.disarm(timer)
            self.running[timer] = running
            return self.kernel.mem.read_u64(timer + TIMER_FUNCTION), timer
        try:
            await self.kernel.sanitizer.call_deferred(claim, via="call_timer_fn", comm="swapper/0",
                                                      preempt_count=SOFTIRQ_OFFSET)
        except KernelError:
            pass                       # the oops is logged; the softirq goes on
        finally:
            if self.running.get(timer) is running:
                del self.running[timer]
            running.done.set()

    async def wait_running(self, timer: int, task: Any) -> None:
        running = self.running.get(timer)
        while running is not None:
            await running.done.wait()
            running = self.running.get(timer)

    # -- a module going ---------------------------------------------------------------

    def _module_freed(self, mod: "Module") -> None:
        sanitizer = self.kernel.sanitizer
        for timer in list(self.pending):
            if sanitizer.belongs_to(mod, timer) or sanitizer.belongs_to(mod, self._function(timer)):
                self._free_active(timer)

    def _memory_freed(self, start: int, end: int) -> None:
        """kfree of [start, end): debug_check_no_obj_freed for timers."""
        for timer in [t for t in self.pending if start <= t < end]:
            self._free_active(timer)

    def _function(self, timer: int) -> int:
        try:
            return self.kernel.mem.read_u64(timer + TIMER_FUNCTION)
        except Exception:
            return 0

    def _free_active(self, timer: int) -> None:
        """ODEBUG: free active, then timer_fixup_free: the timer is deactivated."""
        kernel = self.kernel
        kernel.sanitizer.report_odebug(timer, "timer_list", kernel.machine.symbol_name(self._function(timer)))
        self.disarm(timer)


def timers(kernel: "Kernel") -> Timers:
    return kernel.subsystem(Timers)


@export("init_timer_key",
        "void init_timer_key(struct timer_list *timer, void (*func)(struct timer_list *), "
        "unsigned int flags, const char *name, struct lock_class_key *key)", nargs=5)
def init_timer_key(ctx: Any, timer: int, func: int, flags: int, name: int, key: int) -> None:
    timers(ctx.kernel).disarm(timer)
    mem = ctx.mem
    mem.write(timer, bytes(TIMER_SIZE))
    mem.write_u64(timer + TIMER_FUNCTION, func)
    mem.write_u32(timer + TIMER_FLAGS, flags & 0xFFFFFFFF)


@export("mod_timer", "int mod_timer(struct timer_list *timer, unsigned long expires)", nargs=2)
def mod_timer(ctx: Any, timer: int, expires: int) -> int:
    return int(timers(ctx.kernel).arm(timer, expires))


@export("add_timer", "void add_timer(struct timer_list *timer)", nargs=1)
def add_timer(ctx: Any, timer: int) -> None:
    base = timers(ctx.kernel)
    if timer in base.pending:
        _warn(ctx, "WARN_ON_ONCE(timer_pending(timer))", "kernel/time/timer.c:1160 add_timer+0x2a/0x40")
        return
    base.arm(timer, ctx.mem.read_u64(timer + TIMER_EXPIRES))


@export("timer_delete", "int timer_delete(struct timer_list *timer)", nargs=1)
def timer_delete(ctx: Any, timer: int) -> int:
    return int(timers(ctx.kernel).disarm(timer))


@export("timer_shutdown", "int timer_shutdown(struct timer_list *timer)", nargs=1)
def timer_shutdown(ctx: Any, timer: int) -> int:
    """timer_delete, and the timer can never be armed again (function NULL)."""
    was = timer_delete(ctx, timer)
    ctx.mem.write_u64(timer + TIMER_FUNCTION, 0)
    return was


@export("timer_shutdown_sync", "int timer_shutdown_sync(struct timer_list *timer)", nargs=1)
def timer_shutdown_sync(ctx: Any, timer: int) -> Any:
    """timer_delete_sync, and the timer can never be armed again."""
    ctx.mem.write_u64(timer + TIMER_FUNCTION, 0)   # a running callback has read it already
    return timer_delete_sync(ctx, timer)


@export("timer_delete_sync", "int timer_delete_sync(struct timer_list *timer)", nargs=1)
def timer_delete_sync(ctx: Any, timer: int) -> Any:
    base = timers(ctx.kernel)
    was = int(base.disarm(timer))
    if timer not in base.running or ctx.task.preempt_count:
        return was                     # from its own callback (softirq) it cannot wait
    async def waiting() -> int:
        # __timer_delete_sync's loop: wait for the callback, then detach
        # again — a callback that re-armed its timer leaves it not pending.
        nonlocal was
        while timer in base.running:
            await base.wait_running(timer, ctx.task)
            was = int(base.disarm(timer))
        return was
    return waiting()
