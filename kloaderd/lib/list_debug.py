"""lib/list_debug.c: the CONFIG_DEBUG_LIST checks every list_add/list_del
of a module calls.

With CONFIG_DEBUG_LIST (Debian's kernels, and kloader's own) the inline
list_add() and list_del() of <linux/list.h> call `__list_add_valid` and
`__list_del_entry_valid` before touching the pointers (6.6 renamed them
`__list_add_valid_or_report` and `__list_del_entry_valid_or_report`, called
by the inline checks of the same names: the same functions).  A corrupted list is
reported with Linux's message; with CONFIG_BUG_ON_DATA_CORRUPTION (Debian's
choice, and kloader's) the report is followed by BUG(), so the calling task
oopses with "kernel BUG at lib/list_debug.c:N!".  Line numbers are Linux
6.1's as its oops reports show them.

Where kloader differs: an unreadable pointer (Linux would fault inside the
check) faults here too, as a page fault at the caller's call site.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.oops import KernelBug
from ..kernel.printk import KERN_ERR

POISON_POINTER_DELTA = 0xDEAD000000000000     # CONFIG_ILLEGAL_POINTER_VALUE
LIST_POISON1 = 0x100 + POISON_POINTER_DELTA
LIST_POISON2 = 0x122 + POISON_POINTER_DELTA
FILE = "lib/list_debug.c"


def _corrupt(ctx: Any, line: int, message: str) -> None:
    """CHECK_DATA_CORRUPTION under CONFIG_BUG_ON_DATA_CORRUPTION: pr_err, BUG()."""
    ctx.kernel.log.emit(KERN_ERR, message, getattr(ctx.module, "name", None))
    raise KernelBug(f"{FILE}:{line}")


@export("__list_add_valid_or_report",
        "bool __list_add_valid_or_report(struct list_head *new, struct list_head *prev, "
        "struct list_head *next)", nargs=3)
@export("__list_add_valid",
        "bool __list_add_valid(struct list_head *new, struct list_head *prev, "
        "struct list_head *next)", nargs=3)
def __list_add_valid(ctx: Any, new: int, prev: int, next_: int) -> int:
    mem = ctx.mem
    if prev == 0:
        _corrupt(ctx, 23, "list_add corruption. prev is NULL.")
    if next_ == 0:
        _corrupt(ctx, 25, "list_add corruption. next is NULL.")
    next_prev = mem.read_u64(next_ + 8)
    if next_prev != prev:
        _corrupt(ctx, 26, f"list_add corruption. next->prev should be prev ({prev:016x}), "
                          f"but was {next_prev:016x}. (next={next_:016x}).")
    prev_next = mem.read_u64(prev)
    if prev_next != next_:
        _corrupt(ctx, 29, f"list_add corruption. prev->next should be next ({next_:016x}), "
                          f"but was {prev_next:016x}. (prev={prev:016x}).")
    if new in (prev, next_):
        _corrupt(ctx, 32, f"list_add double add: new={new:016x}, prev={prev:016x}, "
                          f"next={next_:016x}.")
    return 1


@export("__list_del_entry_valid_or_report", "bool __list_del_entry_valid_or_report(struct list_head "
        "*entry)", nargs=1)
@export("__list_del_entry_valid", "bool __list_del_entry_valid(struct list_head *entry)",
        nargs=1)
def __list_del_entry_valid(ctx: Any, entry: int) -> int:
    mem = ctx.mem
    next_, prev = mem.read_u64(entry), mem.read_u64(entry + 8)
    if next_ == 0:
        _corrupt(ctx, 40, f"list_del corruption, {entry:016x}->next is NULL")
    if prev == 0:
        _corrupt(ctx, 42, f"list_del corruption, {entry:016x}->prev is NULL")
    if next_ == LIST_POISON1:
        _corrupt(ctx, 45, f"list_del corruption, {entry:016x}->next is LIST_POISON1 "
                          f"({LIST_POISON1:016x})")
    if prev == LIST_POISON2:
        _corrupt(ctx, 48, f"list_del corruption, {entry:016x}->prev is LIST_POISON2 "
                          f"({LIST_POISON2:016x})")
    prev_next = mem.read_u64(prev)
    if prev_next != entry:
        _corrupt(ctx, 51, f"list_del corruption. prev->next should be {entry:016x}, "
                          f"but was {prev_next:016x}. (prev={prev:016x})")
    next_prev = mem.read_u64(next_ + 8)
    if next_prev != entry:
        _corrupt(ctx, 54, f"list_del corruption. next->prev should be {entry:016x}, "
                          f"but was {next_prev:016x}. (next={next_:016x})")
    return 1
