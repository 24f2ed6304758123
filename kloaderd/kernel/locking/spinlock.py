"""kernel/locking/spinlock.c: the _bh, _irq and trylock spinlock variants
and reader/writer spinlocks (qrwlock), beside the plain ones in
kernel/api/sched.py.

As there: one emulated CPU never spins, but a held lock makes the task
atomic (sleeping is "scheduling while atomic").  Disabling bottom halves or
interrupts adds nothing observable here, since no softirq or interrupt
preempts a task; the irqsave variants return the EFLAGS of a task with
interrupts enabled.  A reader/writer lock keeps qrwlock's encoding in
guest memory: each reader adds _QR_BIAS (512) to `cnts`, a writer sets
_QW_LOCKED (0xff).
"""

from __future__ import annotations

from typing import Any

from ..api import export
from ..api.sched import _raw_spin_lock, _raw_spin_unlock

FLAGS_IRQS_ON = 0x246
_QR_BIAS, _QW_LOCKED = 1 << 9, 0xFF


def _atomic_enter(ctx: Any) -> None:
    ctx.task.preempt_count += 1


def _atomic_leave(ctx: Any) -> None:
    ctx.task.preempt_count = max(0, ctx.task.preempt_count - 1)


def _export_spin(suffix: str) -> None:
    """_raw_spin_lock{suffix}/_raw_spin_unlock{suffix}: the plain lock's
    effect (bottom halves and interrupts have nothing to preempt here)."""
    lock_name, unlock_name = f"_raw_spin_lock{suffix}", f"_raw_spin_unlock{suffix}"

    def lock(ctx: Any, lock_addr: int) -> None:
        _raw_spin_lock(ctx, lock_addr)

    def unlock(ctx: Any, lock_addr: int) -> None:
        _raw_spin_unlock(ctx, lock_addr)

    lock.__name__ = lock.__qualname__ = lock_name
    unlock.__name__ = unlock.__qualname__ = unlock_name
    export(lock_name, f"void {lock_name}(raw_spinlock_t *lock)", nargs=1)(lock)
    export(unlock_name, f"void {unlock_name}(raw_spinlock_t *lock)", nargs=1)(unlock)


_export_spin("_bh")
_export_spin("_irq")


def _try(ctx: Any, lock: int) -> int:
    if ctx.mem.read_u8(lock):
        return 0
    _raw_spin_lock(ctx, lock)
    return 1


@export("_raw_spin_trylock", "int _raw_spin_trylock(raw_spinlock_t *lock)", nargs=1)
def _raw_spin_trylock(ctx: Any, lock: int) -> int:
    return _try(ctx, lock)


@export("_raw_spin_trylock_bh", "int _raw_spin_trylock_bh(raw_spinlock_t *lock)", nargs=1)
def _raw_spin_trylock_bh(ctx: Any, lock: int) -> int:
    return _try(ctx, lock)


# --- reader/writer spinlocks -------------------------------------------------------

def _read_lock(ctx: Any, lock: int) -> int:
    ctx.mem.write_u32(lock, (ctx.mem.read_u32(lock) + _QR_BIAS) & 0xFFFFFFFF)
    _atomic_enter(ctx)
    return FLAGS_IRQS_ON


def _read_unlock(ctx: Any, lock: int) -> None:
    ctx.mem.write_u32(lock, max(0, ctx.mem.read_u32(lock) - _QR_BIAS))
    _atomic_leave(ctx)


def _write_lock(ctx: Any, lock: int) -> int:
    ctx.mem.write_u32(lock, ctx.mem.read_u32(lock) | _QW_LOCKED)
    _atomic_enter(ctx)
    return FLAGS_IRQS_ON


def _write_unlock(ctx: Any, lock: int) -> None:
    ctx.mem.write_u32(lock, ctx.mem.read_u32(lock) & ~_QW_LOCKED & 0xFFFFFFFF)
    _atomic_leave(ctx)


def _export_rw(kind: str, suffix: str) -> None:
    """_raw_{read,write}_lock{suffix} and its unlock (_irqsave pairs with
    _unlock_irqrestore, which takes the flags)."""
    lock_fn, unlock_fn = (_read_lock, _read_unlock) if kind == "read" else (_write_lock,
                                                                             _write_unlock)
    saves = suffix == "_irqsave"
    lock_name = f"_raw_{kind}_lock{suffix}"
    unlock_name = f"_raw_{kind}_unlock{'_irqrestore' if saves else suffix}"

    def lock(ctx: Any, lock_addr: int) -> int:
        flags = lock_fn(ctx, lock_addr)
        return flags if saves else 0

    def unlock(ctx: Any, lock_addr: int, *flags: int) -> None:
        unlock_fn(ctx, lock_addr)

    lock.__name__ = lock.__qualname__ = lock_name
    unlock.__name__ = unlock.__qualname__ = unlock_name
    export(lock_name, f"{'unsigned long' if saves else 'void'} {lock_name}(rwlock_t *lock)",
           nargs=1)(lock)
    export(unlock_name, f"void {unlock_name}(rwlock_t *lock"
                        f"{', unsigned long flags' if saves else ''})",
           nargs=2 if saves else 1)(unlock)


for _kind in ("read", "write"):
    for _suffix in ("", "_bh", "_irq", "_irqsave"):
        _export_rw(_kind, _suffix)
