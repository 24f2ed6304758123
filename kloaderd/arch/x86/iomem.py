"""Copies to and from device memory (Linux's arch/x86/lib/iomem.c):
`memcpy_fromio`, `memcpy_toio`, `memset_io`.  On kloader's machine an
ioremap'd range is backed by nothing (arch/x86/ioremap.py): a copy from it
is all ones, a copy or fill to it goes nowhere.  Any other address is
copied as memory, and an unmapped one faults as the copy would.

Bound: one call moves at most `IO_COPY_MAX` bytes; a longer one is refused
with a KERN_ERR line and moves nothing.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.printk import KERN_ERR

IO_COPY_MAX = 16 << 20


def _bounded(ctx: Any, n: int, function: str) -> bool:
    if n <= IO_COPY_MAX:
        return n > 0
    ctx.kernel.log.emit(KERN_ERR, f"{function}: kloader moves at most {IO_COPY_MAX} bytes, not {n}",
                        getattr(ctx.module, "name", None))
    return False


def _copy(ctx: Any, to: int, src: int, n: int, function: str) -> None:
    if _bounded(ctx, n, function):
        ctx.mem.write(to, ctx.mem.read(src, n))


@export("memcpy_fromio", "void memcpy_fromio(void *to, const volatile void __iomem *from, size_t n)", nargs=3)
def memcpy_fromio(ctx: Any, to: int, src: int, n: int) -> None:
    _copy(ctx, to, src, n, "memcpy_fromio")


@export("memcpy_toio", "void memcpy_toio(volatile void __iomem *to, const void *from, size_t n)", nargs=3)
def memcpy_toio(ctx: Any, to: int, src: int, n: int) -> None:
    _copy(ctx, to, src, n, "memcpy_toio")


@export("memset_io", "void memset_io(volatile void __iomem *a, int b, size_t c)", nargs=3)
def memset_io(ctx: Any, addr: int, value: int, n: int) -> None:
    if _bounded(ctx, n, "memset_io"):
        ctx.mem.write(addr, bytes([value & 0xFF]) * n)
