"""crypto/memneq.c: `__crypto_memneq`, the comparison of secrets whose time
does not depend on where they differ (`crypto_memneq()` tests it against 0).

Here the time a Python comparison takes is not the guest's to measure; the
result is Linux's contract: 0 when the `size` bytes are equal, nonzero
when they are not.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export


@export("__crypto_memneq", "unsigned long __crypto_memneq(const void *a, const void *b, size_t size)",
        nargs=3)
def __crypto_memneq(ctx: Any, a: int, b: int, size: int) -> int:
    return int(ctx.mem.read(a, size) != ctx.mem.read(b, size))
