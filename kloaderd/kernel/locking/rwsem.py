"""kernel/locking/rwsem.c: reader/writer semaphores.

`struct rw_semaphore` (Linux 6.1 x86-64: count@0, owner@8, wait_lock@20,
wait_list@24, 40 bytes) keeps Linux's encoding in guest memory: bit 0 of
`count` is RWSEM_WRITER_LOCKED and each reader adds RWSEM_READER_BIAS (256);
`owner` is the writing task.  Waiters sleep in the kernel's wait queue keyed
by the semaphore's address (as mutexes do), readers waking together and a
writer alone; a writer waiting holds new readers back, as Linux's handoff
does.  Unlocking a semaphore the caller does not hold is Linux's
DEBUG_RWSEMS_WARN_ON.

Where kloader differs: no optimistic spinning, and the wait list in guest
memory stays empty (the waiters are kept in Python).
"""

from __future__ import annotations

from typing import Any

from ..api import export
from ..panic import warn

COUNT, OWNER, WAIT_LOCK, WAIT_LIST = 0, 8, 20, 24
RWSEM_WRITER_LOCKED = 1
RWSEM_READER_BIAS = 1 << 8
_MASK64 = (1 << 64) - 1


class Rwsems:
    """Writers waiting, per semaphore, so readers queue behind them."""

    def __init__(self, kernel: Any) -> None:
        self.writers_waiting: dict[int, int] = {}


def init_rwsem(mem: Any, sem: int) -> None:
    """An unlocked semaphore with an empty wait list (DECLARE_RWSEM, init_rwsem)."""
    mem.write(sem, bytes(WAIT_LIST))
    mem.write_u64(sem + WAIT_LIST, sem + WAIT_LIST)
    mem.write_u64(sem + WAIT_LIST + 8, sem + WAIT_LIST)


@export("__init_rwsem", "void __init_rwsem(struct rw_semaphore *sem, const char *name, "
        "struct lock_class_key *key)", nargs=3)
def __init_rwsem(ctx: Any, sem: int, name: int, key: int) -> None:
    init_rwsem(ctx.mem, sem)


def _try_read(ctx: Any, sem: int) -> bool:
    count = ctx.mem.read_u64(sem + COUNT)
    if count & RWSEM_WRITER_LOCKED or ctx.kernel.subsystem(Rwsems).writers_waiting.get(sem):
        return False
    ctx.mem.write_u64(sem + COUNT, (count + RWSEM_READER_BIAS) & _MASK64)
    return True


def _try_write(ctx: Any, sem: int) -> bool:
    if ctx.mem.read_u64(sem + COUNT):
        return False
    ctx.mem.write_u64(sem + COUNT, RWSEM_WRITER_LOCKED)
    ctx.mem.write_u64(sem + OWNER, ctx.task.current)
    return True


def _wait(ctx: Any, sem: int, writer: bool) -> Any:
    waiting = ctx.kernel.subsystem(Rwsems).writers_waiting

    async def sleeping() -> int:
        queue = ctx.machine.sched.waitqueue
        if writer:
            waiting[sem] = waiting.get(sem, 0) + 1
        try:
            while True:
                if writer:
                    waiting[sem] -= 1
                    got = _try_write(ctx, sem)
                    waiting[sem] += 1
                else:
                    got = _try_read(ctx, sem)
                if got:
                    return 0
                await queue.wait(sem, ctx.task)
        finally:
            if writer:
                waiting[sem] -= 1
                if not waiting[sem]:
                    del waiting[sem]
    return sleeping()


def _down(ctx: Any, sem: int, writer: bool) -> Any:
    if (_try_write if writer else _try_read)(ctx, sem):
        return 0
    return _wait(ctx, sem, writer)


@export("down_read", "void down_read(struct rw_semaphore *sem)", nargs=1)
def down_read(ctx: Any, sem: int) -> Any:
    return _down(ctx, sem, writer=False)


@export("down_read_killable", "int down_read_killable(struct rw_semaphore *sem)", nargs=1)
def down_read_killable(ctx: Any, sem: int) -> Any:
    return _down(ctx, sem, writer=False)      # no signals reach emulated tasks


@export("down_read_trylock", "int down_read_trylock(struct rw_semaphore *sem)", nargs=1)
def down_read_trylock(ctx: Any, sem: int) -> int:
    return int(_try_read(ctx, sem))


@export("down_write", "void down_write(struct rw_semaphore *sem)", nargs=1)
def down_write(ctx: Any, sem: int) -> Any:
    return _down(ctx, sem, writer=True)


@export("down_write_killable", "int down_write_killable(struct rw_semaphore *sem)", nargs=1)
def down_write_killable(ctx: Any, sem: int) -> Any:
    return _down(ctx, sem, writer=True)


@export("down_write_trylock", "int down_write_trylock(struct rw_semaphore *sem)", nargs=1)
def down_write_trylock(ctx: Any, sem: int) -> int:
    return int(_try_write(ctx, sem))


@export("up_read", "void up_read(struct rw_semaphore *sem)", nargs=1)
def up_read(ctx: Any, sem: int) -> None:
    count = ctx.mem.read_u64(sem + COUNT)
    if count < RWSEM_READER_BIAS:
        warn(ctx, "DEBUG_RWSEMS_WARN_ON(tmp < 0)", "kernel/locking/rwsem.c:1339", "up_read")
        return
    ctx.mem.write_u64(sem + COUNT, count - RWSEM_READER_BIAS)
    ctx.machine.sched.waitqueue.wake(sem, None)


@export("up_write", "void up_write(struct rw_semaphore *sem)", nargs=1)
def up_write(ctx: Any, sem: int) -> None:
    mem = ctx.mem
    if not mem.read_u64(sem + COUNT) & RWSEM_WRITER_LOCKED or \
            mem.read_u64(sem + OWNER) != ctx.task.current:
        warn(ctx, "DEBUG_RWSEMS_WARN_ON((rwsem_owner(sem) != current) && "
                  "!rwsem_test_oflags(sem, RWSEM_NONSPINNABLE))",
             "kernel/locking/rwsem.c:1357", "up_write")
    mem.write_u64(sem + OWNER, 0)
    mem.write_u64(sem + COUNT, mem.read_u64(sem + COUNT) & ~RWSEM_WRITER_LOCKED & _MASK64)
    ctx.machine.sched.waitqueue.wake(sem, None)


@export("downgrade_write", "void downgrade_write(struct rw_semaphore *sem)", nargs=1)
def downgrade_write(ctx: Any, sem: int) -> None:
    mem = ctx.mem
    mem.write_u64(sem + OWNER, 0)
    mem.write_u64(sem + COUNT, RWSEM_READER_BIAS)
    ctx.machine.sched.waitqueue.wake(sem, None)
