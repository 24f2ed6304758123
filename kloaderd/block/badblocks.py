"""block/badblocks.c: a disk's bad-block table (`badblocks_init`,
`badblocks_exit`), as null_blk and the md/nvdimm drivers keep one.

`badblocks_init` clears the table, sets `shift` to 0 when enabled and -1
(bad-block tracking disabled) when not, and allocates the one page of
64-bit entries Linux keeps them in (-ENOMEM if it cannot); the page is
the calling module's memory, so a table its module never exits is
reported as that module's leak.  `badblocks_exit` frees the page (NULL
does nothing).  Marking, clearing and checking blocks
(`badblocks_set`, `_clear`, `_check`, `_show`) are not emulated: they
answer I/O, which kloader does not emulate.
"""

from __future__ import annotations

import errno
from typing import Any

from ..config import PAGE_SIZE
from ..kernel.api import export
from ..kernel.layouts import struct

BADBLOCKS = struct("struct badblocks", "linux/badblocks.h", "dev", "count", "unacked_exist", "shift", "page",
                   "changed", "lock", "sector", "size")
STRUCTS = (BADBLOCKS,)


@export("badblocks_init", "int badblocks_init(struct badblocks *bb, int enable)", nargs=2)
def badblocks_init(ctx: Any, bb: int, enable: int) -> int:
    mem, off = ctx.mem, ctx.kernel.layouts[BADBLOCKS]
    mem.write_u64(bb + off.dev, 0)
    mem.write_u32(bb + off.count, 0)
    mem.write_u32(bb + off.shift, 0 if enable & 0xFFFFFFFF else 0xFFFFFFFF)
    page = ctx.kernel.slab.alloc(PAGE_SIZE, getattr(ctx.module, "name", None), zero=True)
    mem.write_u64(bb + off.page, page)
    if not page:
        return -errno.ENOMEM
    mem.write_u64(bb + off.lock, 0)                    # seqlock_init: sequence and spinlock 0
    return 0


@export("badblocks_exit", "void badblocks_exit(struct badblocks *bb)", nargs=1)
def badblocks_exit(ctx: Any, bb: int) -> None:
    if not bb:
        return
    mem, off = ctx.mem, ctx.kernel.layouts[BADBLOCKS]
    page = mem.read_u64(bb + off.page)
    if page:
        ctx.kernel.slab.free(page, getattr(ctx.module, "name", None))
    mem.write_u64(bb + off.page, 0)
