"""lib/lockref.c: a spinlock and a count in one word (`struct lockref`),
what a dentry's references are counted in (`dget` is `lockref_get`).

kloader runs one CPU at a time, so the lock is never contended and the
count is changed in place."""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.layouts import struct

LOCKREF = struct("struct lockref", "linux/lockref.h", "count")
STRUCTS = (LOCKREF,)           # what these functions read at the kernel's offsets


@export("lockref_get", "void lockref_get(struct lockref *lockref)", nargs=1)
def lockref_get(ctx: Any, lockref: int) -> None:
    at = lockref + ctx.kernel.layouts[LOCKREF].count
    ctx.mem.write_u32(at, ctx.mem.read_u32(at) + 1)
