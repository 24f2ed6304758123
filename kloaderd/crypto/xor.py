"""crypto/algapi.c's `__crypto_xor`: dst = src1 ^ src2 over `len` bytes
(`crypto_xor()` and `crypto_xor_cpy()` are header inlines over it; libchacha's
chacha_crypt_generic XORs its keystream in with it).

`len` is an unsigned int, as Linux's; dst may be src1 (the in-place
`crypto_xor`).  Any release: no kernel structure is read.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export


@export("__crypto_xor", "void __crypto_xor(u8 *dst, const u8 *src1, const u8 *src2, unsigned int len)",
        nargs=4)
def __crypto_xor(ctx: Any, dst: int, src1: int, src2: int, size: int) -> None:
    size &= 0xFFFFFFFF
    if size:
        mem = ctx.mem
        a = int.from_bytes(mem.read(src1, size), "little")
        b = int.from_bytes(mem.read(src2, size), "little")
        mem.write(dst, (a ^ b).to_bytes(size, "little"))
