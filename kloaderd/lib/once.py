"""lib/once.c: DO_ONCE(), the once-only initialisation helper.

`__do_once_start` takes the once lock and says whether the work is still to
do; `__do_once_done` marks it done and drops the lock.  Linux then disables
the DO_ONCE static key through a work item (patching the module's code);
kloader does not patch code, so the key stays enabled and later DO_ONCE
calls come back to `__do_once_start`, which answers false: the same
behaviour, a few instructions slower.  The lock is the saved-flags word the
caller passes; one CPU never contends for it.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export


@export("__do_once_start", "bool __do_once_start(bool *done, unsigned long *flags)", nargs=2)
def __do_once_start(ctx: Any, done: int, flags: int) -> int:
    ctx.mem.write_u64(flags, 0x246)                  # spin_lock_irqsave's saved EFLAGS
    if ctx.mem.read(done, 1)[0]:
        return 0
    ctx.task.preempt_count += 1                      # the once lock is held until done
    return 1


@export("__do_once_done", "void __do_once_done(bool *done, struct static_key_true *once_key, "
        "unsigned long *flags, struct module *mod)", nargs=4)
def __do_once_done(ctx: Any, done: int, once_key: int, flags: int, mod: int) -> None:
    ctx.mem.write(done, b"\x01")
    ctx.task.preempt_count = max(0, ctx.task.preempt_count - 1)
