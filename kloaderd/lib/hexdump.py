"""Hex conversion (Linux's lib/hexdump.c): `bin2hex` writes lowercase
digits and returns the end of what it wrote; `hex2bin` stops at the first
character that is not a hex digit with -EINVAL.
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export

HEX_DIGITS = "0123456789abcdefABCDEF"


@export("bin2hex", "char *bin2hex(char *dst, const void *src, size_t count)", nargs=3)
def bin2hex(ctx: Any, dst: int, src: int, count: int) -> int:
    data = ctx.mem.read(src, count) if count else b""
    ctx.mem.write(dst, data.hex().encode())
    return dst + 2 * count


@export("hex2bin", "int hex2bin(u8 *dst, const char *src, size_t count)", nargs=3)
def hex2bin(ctx: Any, dst: int, src: int, count: int) -> int:
    """count bytes from 2 * count digits; -EINVAL at the first non-digit
    (the bytes before it written, as Linux writes them one by one)."""
    text = ctx.mem.read(src, 2 * count) if count else b""
    out = bytearray()
    for i in range(count):
        pair = text[2 * i:2 * i + 2]
        if not all(chr(c) in HEX_DIGITS for c in pair):
            if out:
                ctx.mem.write(dst, bytes(out))
            return -errno.EINVAL
        out.append(int(pair, 16))
    if out:
        ctx.mem.write(dst, bytes(out))
    return 0
