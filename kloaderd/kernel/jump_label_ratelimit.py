"""include/linux/jump_label_ratelimit.h: a static key whose last user's
decrement waits `timeout` jiffies (a delayed work on `system_wq`) before
the key goes off and its sites are patched, so a key flapping on and off
is patched at most once a timeout (KVM's).  The work is queued only by
`__static_key_slow_dec_deferred`, which is handed the key and the work,
so `jump_label_update_timeout` finds the key without the structure's
layout (kernel/jump_label.c's container_of).
"""

from __future__ import annotations

from typing import Any

from ..workqueue.workqueue import flush_delayed_work, queue_delayed_work_on
from .api import export
from .jump_label import dec_not_one, jump_labels, static_key_slow_dec_cpuslocked


class Deferred:
    """The key each queued deferred decrement belongs to, by its work."""

    def __init__(self, kernel: Any) -> None:
        self.key_of: dict[int, int] = {}


@export("__static_key_slow_dec_deferred", "void __static_key_slow_dec_deferred(struct static_key *key, "
        "struct delayed_work *work, unsigned long timeout)", nargs=3, gpl=True)
def __static_key_slow_dec_deferred(ctx: Any, key: int, work: int, timeout: int) -> int:
    """Not the last user: -1 now.  The last: the decrement (and the patch)
    comes `timeout` jiffies later, from the work, so a key flapping on and
    off is patched at most once a timeout."""
    if dec_not_one(ctx, jump_labels(ctx.kernel), key):
        return 0
    ctx.kernel.subsystem(Deferred).key_of[work] = key
    system_wq = ctx.mem.read_u64(ctx.machine.kernel_symbols()["system_wq"])
    queue_delayed_work_on(ctx, 0, system_wq, work, timeout)
    return 0


@export("__static_key_deferred_flush", "void __static_key_deferred_flush(void *key, "
        "struct delayed_work *work)", nargs=2, gpl=True)
def __static_key_deferred_flush(ctx: Any, key: int, work: int) -> Any:
    return flush_delayed_work(ctx, work)


@export("jump_label_update_timeout", "void jump_label_update_timeout(struct work_struct *work)",
        nargs=1, gpl=True)
def jump_label_update_timeout(ctx: Any, work: int) -> Any:
    """The deferred decrement: __static_key_slow_dec(&key->key)."""
    key = ctx.kernel.subsystem(Deferred).key_of.pop(work, None)
    if key is None:
        return 0
    return static_key_slow_dec_cpuslocked(ctx, key)
