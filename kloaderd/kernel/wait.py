"""kernel/sched/wait.c and swait.c: initialising wait queue heads.

`__init_waitqueue_head` and `__init_swait_queue_head` are what
init_waitqueue_head()/DECLARE_WAIT_QUEUE_HEAD in a function and
init_swait_queue_head() (inside init_completion on some configs) call: an
unlocked spinlock and an empty list, in guest memory (Linux 6.1 x86-64:
lock@0, list@8).  Waiting and waking on them (prepare_to_wait_event,
__wake_up, finish_wait) are not emulated yet.
"""

from __future__ import annotations

from typing import Any

from ..lib.list import init_list_head
from .api import export

LOCK, HEAD = 0, 8


@export("__init_waitqueue_head", "void __init_waitqueue_head(struct wait_queue_head *wq_head, "
        "const char *name, struct lock_class_key *key)", nargs=3)
def __init_waitqueue_head(ctx: Any, wq_head: int, name: int, key: int) -> None:
    ctx.mem.write_u32(wq_head + LOCK, 0)
    init_list_head(ctx.mem, wq_head + HEAD)


@export("__init_swait_queue_head", "void __init_swait_queue_head(struct swait_queue_head *q, "
        "const char *name, struct lock_class_key *key)", nargs=3)
def __init_swait_queue_head(ctx: Any, q: int, name: int, key: int) -> None:
    ctx.mem.write_u32(q + LOCK, 0)
    init_list_head(ctx.mem, q + HEAD)
