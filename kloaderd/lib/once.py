"""lib/once.c: DO_ONCE(), the once-only initialisation helper.

The macro's fast path is a static branch on the call site's own key,
defined true: `__do_once_start` takes the once lock and says whether the
work is still to do; `__do_once_done` marks it done, drops the lock and,
as Linux's `once_disable_jump()`, queues a work item on `system_wq` (with a
reference on the module, `__module_get`) whose function, `once_deferred`,
disables the key — patching the site (kernel/jump_label.py), so the
module's later DO_ONCE()s skip the call — and puts the reference.  Until
that work has run, the module cannot be removed (its refcount is 1: rmmod
answers EWOULDBLOCK, as Linux's does in the same window), and DO_ONCE()
still reaches `__do_once_start`, which answers false.

The lock is the saved-flags word the caller passes; one CPU never
contends for it.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.jump_label import disable_locked, jump_labels
from ..kernel.oops import KernelBug
from ..workqueue.workqueue import WORK_SIZE, init_work, schedule_work

# struct once_work {struct work_struct work; struct static_key_true *key; struct module *module;}
ONCE_KEY = WORK_SIZE
ONCE_MODULE = WORK_SIZE + 8
ONCE_WORK_SIZE = WORK_SIZE + 16


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
    once_disable_jump(ctx, once_key, mod)


def once_disable_jump(ctx: Any, key: int, mod: int) -> None:
    """The key goes off from process context: a GFP_ATOMIC once_work, and
    nothing (the key stays on) when that allocation fails, as in Linux."""
    kernel = ctx.kernel
    work = kernel.slab.alloc(ONCE_WORK_SIZE, None)
    if not work:
        return
    init_work(ctx.mem, work, ctx.machine.kernel_symbols()["once_deferred"])
    ctx.mem.write_u64(work + ONCE_KEY, key)
    ctx.mem.write_u64(work + ONCE_MODULE, mod)
    owner = kernel.module_by_struct(mod) if mod else None
    if owner is not None:
        kernel.module_get(owner, kernel.kernel_owner, unconditional=True)
    schedule_work(ctx, work)


@export("once_deferred", "void once_deferred(struct work_struct *w)", nargs=1)
def once_deferred(ctx: Any, work: int) -> Any:
    """The work: BUG if the key is already off, disable it, put the module."""
    key = ctx.mem.read_u64(work + ONCE_KEY)
    mod = ctx.mem.read_u64(work + ONCE_MODULE)
    if jump_labels(ctx.kernel).count(key) <= 0:
        raise KernelBug("lib/once.c:18")

    async def disabling() -> int:
        kernel = ctx.kernel
        disable_locked(ctx, key)
        owner = kernel.module_by_struct(mod) if mod else None
        if owner is not None:
            kernel.module_put_from_code(owner, kernel.kernel_owner)
        kernel.slab.free(work, None)
        return 0
    return disabling()
