"""Time, sleeping and locking: what kernel/time/, kernel/sched/ and
kernel/locking/ export to modules.

Functions that may block return a coroutine only when they actually have to
wait (a contended mutex, a completion not yet done): the uncontended case
stays a plain kernel call.  Blocking gives the CPU to other tasks; spinning
(`udelay`) keeps it.  Waiters on a mutex or a completion are kept in
Python, keyed by the object's guest address (docs/architecture.md).
"""

from __future__ import annotations

import math
import time
from typing import Any

import trio
from unicorn.x86_const import UC_X86_REG_RAX

from ...config import HZ
from ..oops import KernelBug
from ..printk import KERN_ERR, KERN_WARNING, Problem
from ..sched import BusyWait
from . import export, export_object

export_object("jiffies", "extern unsigned long volatile jiffies", 8, writable=True)

UINT_MAX = 0xFFFFFFFF
LONG_MAX = (1 << 63) - 1
MAX_SCHEDULE_TIMEOUT = LONG_MAX
USECS_PER_XLOOP = 1_000_000 / (1 << 32)   # __const_udelay(usecs * 0x10c7): 0x10c7 = 2^32 / 10^6
_SPIN_IN_PLACE = 0.001                     # shorter busy-waits don't stop the emulation
_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


def _sleep(seconds: float) -> Any:
    async def sleeping() -> int:
        await trio.sleep(seconds)
        return 0
    return sleeping()


def _busy_wait(seconds: float) -> Any:
    if seconds <= 0:
        return 0
    if seconds < _SPIN_IN_PLACE:
        time.sleep(seconds)
        return 0
    return BusyWait(seconds)


def _warn(ctx: Any, condition: str, where: str) -> None:
    """A WARN() splat: the lines Linux logs and the W taint it leaves."""
    from ..panic import warn
    warn(ctx, condition, where)


# --- time and sleeping -------------------------------------------------------

@export("msleep", "void msleep(unsigned int msecs)", nargs=1)
def msleep(ctx: Any, msecs: int) -> Any:
    return _sleep((msecs & UINT_MAX) / 1000)


@export("msleep_interruptible", "unsigned long msleep_interruptible(unsigned int msecs)", nargs=1)
def msleep_interruptible(ctx: Any, msecs: int) -> Any:
    # No signals reach emulated kernel threads: the whole time elapses, 0 is left.
    return _sleep((msecs & UINT_MAX) / 1000)


@export("usleep_range_state",
        "void usleep_range_state(unsigned long min, unsigned long max, unsigned int state)", nargs=3)
def usleep_range_state(ctx: Any, min_us: int, max_us: int, state: int) -> Any:
    return _sleep(min_us / 1_000_000)


def _wakeable(ctx: Any, jiffies: float) -> Any:
    """Sleep up to `jiffies` unless wake_up_process() ends it first; the
    jiffies left, as schedule_timeout returns them."""
    async def sleeping() -> int:
        task = ctx.task
        task.wakeup = event = trio.Event()
        deadline = trio.current_time() + jiffies / HZ
        try:
            with trio.move_on_at(deadline):
                await event.wait()
        finally:
            task.wakeup = None
        if jiffies == math.inf:
            return MAX_SCHEDULE_TIMEOUT
        return max(0, math.ceil((deadline - trio.current_time()) * HZ))
    return sleeping()


@export("schedule", "void schedule(void)", nargs=0)
def schedule(ctx: Any) -> Any:
    return _sleep(0)


@export("schedule_timeout", "long schedule_timeout(long timeout)", nargs=1)
def schedule_timeout(ctx: Any, timeout: int) -> Any:
    timeout = _signed(timeout)
    if timeout == MAX_SCHEDULE_TIMEOUT:
        return _wakeable(ctx, math.inf)
    if timeout < 0:
        ctx.kernel.log.emit(KERN_ERR, f"schedule_timeout: wrong timeout value {timeout & _MASK64:x}",
                            getattr(ctx.module, "name", None))
        return 0
    return _wakeable(ctx, timeout)


def _cond_resched(ctx: Any) -> Any:
    """__cond_resched: give the CPU up when somebody waits for it
    (should_resched: need_resched with preemption enabled) and say so (1);
    0, staying on the CPU, in atomic context or when nobody waits."""
    if ctx.task.preempt_count or not ctx.machine.sched.cpu.waiting:
        return 0

    async def rescheduled() -> int:
        await trio.lowlevel.checkpoint()
        return 1
    return rescheduled()


def preempt_model(ctx: Any) -> str:
    """The preemption model dynamic preemption starts in (sched_dynamic_mode
    of CONFIG_PREEMPT_NONE/_VOLUNTARY/_PREEMPT's default): "none",
    "voluntary" or "full".  kloader's own kernel is "full" (its vermagic says
    preempt, and its cond_resched() is a no-op)."""
    kernel = ctx.kernel
    if kernel.builds_in("PREEMPT"):
        return "full"
    return "voluntary" if kernel.builds_in("PREEMPT_VOLUNTARY") else "none"


@export("__cond_resched", "int __cond_resched(void)", nargs=0)
def __cond_resched(ctx: Any) -> Any:
    return _cond_resched(ctx)


# CONFIG_PREEMPT_DYNAMIC: cond_resched(), might_resched() (might_sleep()'s
# first half) and preempt_enable()'s slow path call through static call
# trampolines that sched_dynamic_update() points at a function, at "return
# 0" or at a bare "ret" (a NULL static call), by the model.  A module calls
# the trampoline; it runs whatever the model made of it.
@export("__SCT__cond_resched", "int __SCT__cond_resched(void)", nargs=0)
def __SCT__cond_resched(ctx: Any) -> Any:
    return 0 if preempt_model(ctx) == "full" else _cond_resched(ctx)


@export("__SCT__might_resched", "int __SCT__might_resched(void)", nargs=0)
def __SCT__might_resched(ctx: Any) -> Any:
    return _cond_resched(ctx) if preempt_model(ctx) == "voluntary" else 0


def _preempt_schedule(ctx: Any) -> Any:
    """preempt_schedule_thunk where the model is full (elsewhere the
    trampoline is a bare ret): preempt_enable() dropped the count to zero
    with a reschedule pending, so the CPU goes to whoever waits for it.
    The call is inline asm that declares no clobbers (the thunk saves every
    register), so %rax comes back as the caller left it."""
    rax = ctx.machine.uc.reg_read(UC_X86_REG_RAX)
    rescheduling = _cond_resched(ctx) if preempt_model(ctx) == "full" else 0
    if not rescheduling:
        return rax

    async def rescheduled() -> int:
        await rescheduling
        return rax
    return rescheduled()


@export("__SCT__preempt_schedule", "void __SCT__preempt_schedule(void)", nargs=0)
def __SCT__preempt_schedule(ctx: Any) -> Any:
    return _preempt_schedule(ctx)


@export("__SCT__preempt_schedule_notrace", "void __SCT__preempt_schedule_notrace(void)", nargs=0)
def __SCT__preempt_schedule_notrace(ctx: Any) -> Any:
    return _preempt_schedule(ctx)


def _set_policy(ctx: Any, task_struct: int) -> None:
    """The CPU goes to tasks in the order they ask for it, with no
    scheduling classes or priorities (docs/semantics.md): a real-time
    policy changes nothing here.  The task must be one (Linux would fault)."""
    if ctx.machine.sched.task_at(task_struct) is None:
        raise KernelBug("kernel/sched/core.c:7466")


@export("sched_set_fifo", "void sched_set_fifo(struct task_struct *p)", nargs=1, gpl=True)
def sched_set_fifo(ctx: Any, p: int) -> None:
    _set_policy(ctx, p)


@export("sched_set_fifo_low", "void sched_set_fifo_low(struct task_struct *p)", nargs=1, gpl=True)
def sched_set_fifo_low(ctx: Any, p: int) -> None:
    _set_policy(ctx, p)


@export("__udelay", "void __udelay(unsigned long usecs)", nargs=1)
def __udelay(ctx: Any, usecs: int) -> Any:
    return _busy_wait(usecs / 1_000_000)


@export("__const_udelay", "void __const_udelay(unsigned long xloops)", nargs=1)
def __const_udelay(ctx: Any, xloops: int) -> Any:
    return _busy_wait(xloops * USECS_PER_XLOOP / 1_000_000)


@export("ktime_get", "ktime_t ktime_get(void)", nargs=0, gpl=True)
def ktime_get(ctx: Any) -> int:
    return int(ctx.machine.uptime() * 1_000_000_000)


# --- mutexes: struct mutex { unsigned long owner; ... }, 0 when unlocked --------

@export("__mutex_init",
        "void __mutex_init(struct mutex *lock, const char *name, struct lock_class_key *key)", nargs=3)
def __mutex_init(ctx: Any, lock: int, name: int, key: int) -> None:
    ctx.mem.write_u64(lock, 0)
    if name:
        ctx.machine.sched.lock_names[lock] = ctx.mem.read_cstr(name, 64).decode("utf-8", "replace")


def _mutex_try(ctx: Any, lock: int) -> bool:
    if ctx.mem.read_u64(lock) == 0:
        ctx.mem.write_u64(lock, ctx.task.current)
        ctx.task.held_locks[lock] = ctx.caller
        return True
    return False


def _lock_name(ctx: Any, lock: int) -> str:
    """The lock class lockdep prints: __mutex_init's name ("&dev->lock"), or
    a DEFINE_MUTEX's symbol."""
    name = ctx.machine.sched.lock_names.get(lock)
    symbol = ctx.kernel.symbolize(lock, False)            # "relock_mutex [relock]"
    return name or (symbol.split(" [")[0] if symbol else f"{lock:#x}")


def _recursive_locking(ctx: Any, lock: int) -> KernelBug:
    """lockdep's print_deadlock_bug() for a mutex its owner locks again
    (Linux would sleep for ever), then the task's death."""
    task, machine = ctx.task, ctx.machine
    name = _lock_name(ctx, lock)

    def held(which: int, at: int) -> str:
        """print_lock(): address, class, usage bits, wait types, where taken."""
        return (f"{which:016x} ({_lock_name(ctx, which)}){{+.+.}}-{{3:3}}, "
                f"at: {machine.symbol_name(at)}")

    tainted, release = ctx.kernel.taint_string(), ctx.kernel.release
    lines = ["", "============================================",
             "WARNING: possible recursive locking detected",
             f"{release} #1 {tainted}".strip(),
             "--------------------------------------------",
             f"{task.comm}/{task.pid} is trying to acquire lock:", held(lock, ctx.caller), "",
             "but task is already holding lock:", held(lock, task.held_locks.get(lock, ctx.caller)),
             "",
             "other info that might help us debug this:",
             " Possible unsafe locking scenario:", "", "       CPU0", "       ----",
             f"  lock({name});", f"  lock({name});", "", " *** DEADLOCK ***", "",
             " May be due to missing lock nesting notation", "",
             f"{len(task.held_locks)} lock{'s' if len(task.held_locks) != 1 else ''} held by "
             f"{task.comm}/{task.pid}:"]
    lines += [f" #{i}: {held(other, at)}" for i, (other, at) in enumerate(task.held_locks.items())]
    module = getattr(ctx.module, "name", None)
    for line in lines:
        ctx.kernel.log.emit(KERN_WARNING, line, module,
                            problem=Problem.WARNING if line.startswith("WARNING") else None)
    ctx.kernel.log.emit(KERN_ERR, f"kloader: {task.comm}/{task.pid} would sleep for ever on "
                                  f"mutex {name}, which it holds: the task dies instead", module)
    return KernelBug("mutex_lock")


def _mutex_wait(ctx: Any, lock: int) -> Any:
    """Sleep until an unlock hands the mutex over (see mutex_unlock)."""
    async def waiting() -> int:
        queue = ctx.machine.sched.waitqueue
        try:
            while ctx.mem.read_u64(lock) != ctx.task.current:
                await queue.wait(lock, ctx.task)
            ctx.task.held_locks[lock] = ctx.caller
        except BaseException:
            # The task is going away (cancelled) after the mutex was handed
            # to it: pass it on rather than leave it owned by nobody alive.
            if ctx.mem.read_u64(lock) == ctx.task.current:
                _mutex_release(ctx, lock)
            raise
        return 0
    return waiting()


def _mutex_release(ctx: Any, lock: int) -> None:
    """Hand the mutex to the longest waiter, as the MUTEX_FLAG_HANDOFF path does."""
    ctx.task.held_locks.pop(lock, None)
    woken = ctx.machine.sched.waitqueue.wake(lock, 1)
    ctx.mem.write_u64(lock, woken[0].task.current if woken else 0)


def _mutex_lock(ctx: Any, lock: int) -> Any:
    if _mutex_try(ctx, lock):
        return 0
    if ctx.mem.read_u64(lock) == ctx.task.current:
        raise _recursive_locking(ctx, lock)
    return _mutex_wait(ctx, lock)


@export("mutex_lock", "void mutex_lock(struct mutex *lock)", nargs=1)
def mutex_lock(ctx: Any, lock: int) -> Any:
    return _mutex_lock(ctx, lock)


@export("mutex_lock_interruptible", "int mutex_lock_interruptible(struct mutex *lock)", nargs=1)
@export("mutex_lock_killable", "int mutex_lock_killable(struct mutex *lock)", nargs=1)
def mutex_lock_interruptible(ctx: Any, lock: int) -> Any:
    # Without signals the wait is never interrupted (nor killed): it returns
    # 0 like mutex_lock.
    return _mutex_lock(ctx, lock)


@export("mutex_trylock", "int mutex_trylock(struct mutex *lock)", nargs=1)
def mutex_trylock(ctx: Any, lock: int) -> int:
    return int(_mutex_try(ctx, lock))


@export("mutex_unlock", "void mutex_unlock(struct mutex *lock)", nargs=1)
def mutex_unlock(ctx: Any, lock: int) -> None:
    if ctx.mem.read_u64(lock) != ctx.task.current:
        _warn(ctx, "DEBUG_LOCKS_WARN_ON(__owner_task(owner) != current)",
              "kernel/locking/mutex.c:941 __mutex_unlock_slowpath+0x2c5/0x2f0")
    _mutex_release(ctx, lock)


@export("mutex_is_locked", "bool mutex_is_locked(struct mutex *lock)", nargs=1)
def mutex_is_locked(ctx: Any, lock: int) -> int:
    return int(ctx.mem.read_u64(lock) != 0)


# --- completions: struct completion { unsigned int done; ... } -----------------

def _completion_take(ctx: Any, x: int) -> bool:
    done = ctx.mem.read_u32(x)
    if not done:
        return False
    if done != UINT_MAX:            # complete_all() leaves it done for everyone
        ctx.mem.write_u32(x, done - 1)
    return True


def _completion_wait(ctx: Any, x: int, timeout: int) -> Any:
    """Wait up to `timeout` jiffies; the result is what do_wait_for_common
    returns: the jiffies left (at least 1) when done, 0 when timed out."""
    if _completion_take(ctx, x):
        return timeout or 1
    async def waiting() -> int:
        queue = ctx.machine.sched.waitqueue
        deadline = trio.current_time() + (math.inf if timeout == MAX_SCHEDULE_TIMEOUT else timeout / HZ)
        while not _completion_take(ctx, x):
            left = deadline - trio.current_time()
            if left <= 0:
                return 0
            await queue.wait(x, ctx.task, left)
        if timeout == MAX_SCHEDULE_TIMEOUT:
            return timeout
        return max(1, math.ceil((deadline - trio.current_time()) * HZ))
    return waiting()


@export("complete", "void complete(struct completion *x)", nargs=1)
def complete(ctx: Any, x: int) -> None:
    done = ctx.mem.read_u32(x)
    if done != UINT_MAX:
        ctx.mem.write_u32(x, done + 1)
    ctx.machine.sched.waitqueue.wake(x, 1)


@export("complete_all", "void complete_all(struct completion *x)", nargs=1)
def complete_all(ctx: Any, x: int) -> None:
    ctx.mem.write_u32(x, UINT_MAX)
    ctx.machine.sched.waitqueue.wake(x, None)


@export("wait_for_completion", "void wait_for_completion(struct completion *x)", nargs=1)
def wait_for_completion(ctx: Any, x: int) -> Any:
    return _completion_wait(ctx, x, MAX_SCHEDULE_TIMEOUT)


@export("wait_for_completion_timeout",
        "unsigned long wait_for_completion_timeout(struct completion *x, unsigned long timeout)",
        nargs=2)
def wait_for_completion_timeout(ctx: Any, x: int, timeout: int) -> Any:
    return _completion_wait(ctx, x, min(timeout, MAX_SCHEDULE_TIMEOUT))


@export("wait_for_completion_interruptible",
        "int wait_for_completion_interruptible(struct completion *x)", nargs=1)
def wait_for_completion_interruptible(ctx: Any, x: int) -> Any:
    waited = _completion_wait(ctx, x, MAX_SCHEDULE_TIMEOUT)
    if isinstance(waited, int):
        return 0
    async def uninterrupted() -> int:     # no signals: only completion ends the wait
        await waited
        return 0
    return uninterrupted()


@export("try_wait_for_completion", "bool try_wait_for_completion(struct completion *x)", nargs=1)
def try_wait_for_completion(ctx: Any, x: int) -> int:
    return int(_completion_take(ctx, x))


@export("completion_done", "bool completion_done(struct completion *x)", nargs=1)
def completion_done(ctx: Any, x: int) -> int:
    return int(ctx.mem.read_u32(x) != 0)


# --- spinlocks: no-ops on one CPU, but they make the task atomic ----------------

@export("_raw_spin_lock", "void _raw_spin_lock(raw_spinlock_t *lock)", nargs=1)
def _raw_spin_lock(ctx: Any, lock: int) -> None:
    ctx.mem.write_u8(lock, 1)
    ctx.task.preempt_count += 1


@export("_raw_spin_unlock", "void _raw_spin_unlock(raw_spinlock_t *lock)", nargs=1)
def _raw_spin_unlock(ctx: Any, lock: int) -> None:
    ctx.mem.write_u8(lock, 0)
    ctx.task.preempt_count = max(0, ctx.task.preempt_count - 1)


@export("_raw_spin_lock_irqsave", "unsigned long _raw_spin_lock_irqsave(raw_spinlock_t *lock)", nargs=1)
def _raw_spin_lock_irqsave(ctx: Any, lock: int) -> int:
    _raw_spin_lock(ctx, lock)
    return 0x246                    # the saved EFLAGS: interrupts were enabled


@export("_raw_spin_unlock_irqrestore",
        "void _raw_spin_unlock_irqrestore(raw_spinlock_t *lock, unsigned long flags)", nargs=2)
def _raw_spin_unlock_irqrestore(ctx: Any, lock: int, flags: int) -> None:
    _raw_spin_unlock(ctx, lock)
