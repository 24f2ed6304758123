"""request_module() for module code: __request_module (Linux's kernel/module/kmod.c).

The name is formatted like printk's arguments, then the kernel's modprobe
(kernel/kmod.py) resolves and loads it while the calling task sleeps, as
Linux's caller sleeps while the usermode modprobe runs.  The result is
Linux's: 0, a negative errno (-ENAMETOOLONG, -ETIME when kmod is busy), or
modprobe's wait status (256: modprobe exited 1, e.g. nothing by that name).
"""

from __future__ import annotations

import errno

from ..kmod import MODULE_NAME_LEN
from .printk import format_guest
from . import export


@export("__request_module", "int __request_module(bool wait, const char *fmt, ...)",
        nargs=2, variadic=True)
def __request_module(ctx, wait: int, fmt: int):
    kmod = ctx.kernel.kmod
    text, length = format_guest(ctx, fmt, ctx.va(), room=MODULE_NAME_LEN)
    if length >= MODULE_NAME_LEN:          # vsnprintf(module_name, MODULE_NAME_LEN, ...)
        return -errno.ENAMETOOLONG & 0xFFFFFFFF
    name = text.decode("utf-8", "replace")

    async def requesting() -> int:
        return await kmod.request_module(name) & 0xFFFFFFFF
    return requesting()
