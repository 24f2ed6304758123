"""drivers/char/random.c: the kernel's random numbers for modules.

`get_random_bytes` and `get_random_u8/u16/u32/u64` draw from the host's
CSPRNG (os.urandom), as Linux's draw from its ChaCha CRNG: unpredictable,
never "not yet seeded" (the emulated kernel's CRNG is ready from boot).
`get_random_bytes` writes in bounded pieces, faulting at the first unmapped
page as a memcpy into a bad buffer would.
"""

from __future__ import annotations

import os
from typing import Any

from ...kernel.api import export

PIECE = 1 << 16


@export("get_random_bytes", "void get_random_bytes(void *buf, size_t len)", nargs=2)
def get_random_bytes(ctx: Any, buf: int, length: int) -> None:
    for offset in range(0, length, PIECE):
        ctx.mem.write(buf + offset, os.urandom(min(PIECE, length - offset)))


def _export_u(bits: int) -> None:
    name = f"get_random_u{bits}"

    def impl(ctx: Any) -> int:
        return int.from_bytes(os.urandom(bits // 8), "little")
    impl.__name__ = impl.__qualname__ = name
    export(name, f"u{bits} {name}(void)", nargs=0)(impl)


for _bits in (8, 16, 32, 64):
    _export_u(_bits)
