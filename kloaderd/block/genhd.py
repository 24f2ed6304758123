"""block/genhd.c: block device major numbers (`__register_blkdev`).

As Linux 6.1: major 0 asks for a free one, searched from 254 down among the
255 hash buckets (major % 255) that are empty, "__register_blkdev: failed to
get major for NAME" and -EBUSY if none is; a major of 512 or more is
"…: major requested (M) is greater than the maximum (511) for NAME" and
-EINVAL; a major already taken is "register_blkdev: cannot get major M for
NAME" and -EBUSY.  The name is kept to 15 characters.  `unregister_blkdev`
of a major not registered, or under another name, is a WARN_ON.  The
kernel's own "blkext" (259) is registered from boot.  Majors are recorded
in the "blkdev" registry, so a major a freed module kept is reported and
released.
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export
from ..kernel.panic import warn
from ..kernel.printk import KERN_ERR, KERN_WARNING

BLKDEV_MAJOR_HASH_SIZE = 255
BLKDEV_MAJOR_MAX = 512
NAME_MAX = 16
BUILTIN = {259: "blkext"}


def _module(ctx: Any) -> str | None:
    return getattr(ctx.module, "name", None)


@export("__register_blkdev", "int __register_blkdev(unsigned int major, const char *name, "
        "void (*probe)(dev_t devt))", nargs=3)
def __register_blkdev(ctx: Any, major: int, name: int, probe: int) -> int:
    major &= 0xFFFFFFFF
    text = ctx.mem.read_cstr(name, 256).decode("utf-8", "replace")
    registry = ctx.kernel.registrations.registry("blkdev")
    taken = set(BUILTIN) | {entry.key for entry in registry.entries()}
    result = 0
    if major == 0:
        buckets = {m % BLKDEV_MAJOR_HASH_SIZE for m in taken}
        free = next((i for i in range(BLKDEV_MAJOR_HASH_SIZE - 1, 0, -1) if i not in buckets), 0)
        if not free:
            ctx.kernel.log.emit(KERN_WARNING, f"__register_blkdev: failed to get major for {text}",
                                _module(ctx))
            return -errno.EBUSY
        major = result = free
    if major >= BLKDEV_MAJOR_MAX:
        ctx.kernel.log.emit(KERN_ERR, f"__register_blkdev: major requested ({major}) is greater "
                                      f"than the maximum ({BLKDEV_MAJOR_MAX - 1}) for {text}",
                            _module(ctx))
        return -errno.EINVAL
    if major in taken:
        ctx.kernel.log.emit(KERN_WARNING, f"register_blkdev: cannot get major {major} for {text}",
                            _module(ctx))
        return -errno.EBUSY
    regs = ctx.kernel.registrations
    registry.add(major, f"block major {major} ({text[:NAME_MAX - 1]})",
                 owner=regs.module_at(name) or ctx.module, address=0, points_to=(probe,),
                 data=text[:NAME_MAX - 1])
    return result


@export("unregister_blkdev", "void unregister_blkdev(unsigned int major, const char *name)",
        nargs=2)
def unregister_blkdev(ctx: Any, major: int, name: int) -> None:
    major &= 0xFFFFFFFF
    text = ctx.mem.read_cstr(name, 256).decode("utf-8", "replace")
    registry = ctx.kernel.registrations.registry("blkdev")
    entry = registry.find(major)
    if entry is None or entry.data != text:          # strcmp with the truncated name
        warn(ctx, "", "block/genhd.c:295", "unregister_blkdev")
        return
    registry.remove(major)
