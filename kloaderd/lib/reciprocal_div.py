"""lib/math/reciprocal_div.c: `reciprocal_value`, the multiplier and shifts
that let `reciprocal_divide()` (inline) divide by a runtime constant with a
multiply (bonding's transmit hash, flow dissectors, BPF maps).

As Linux: for a divisor d, l = fls(d - 1), m = 2^32 * (2^l - d) / d + 1
(kept to 32 bits), sh1 = min(l, 1), sh2 = max(l - 1, 0).  The returned
`struct reciprocal_value {u32 m; u8 sh1, sh2;}` is 8 bytes, so it comes back
in RAX (m in the low half, sh1 and sh2 above it), as the x86-64 ABI
returns it.  A divisor of 0 is Linux's divide error; here an oops of the
caller in reciprocal_value.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export


def reciprocal(d: int) -> tuple[int, int, int]:
    """(m, sh1, sh2) for the u32 divisor `d`."""
    d &= 0xFFFFFFFF
    shift = ((d - 1) & 0xFFFFFFFF).bit_length()               # fls(d - 1)
    m = ((1 << 32) * ((1 << shift) - d) // d + 1) & 0xFFFFFFFF
    return m, min(shift, 1), max(shift - 1, 0)


@export("reciprocal_value", "struct reciprocal_value reciprocal_value(u32 d)", nargs=1)
def reciprocal_value(ctx: Any, d: int) -> int:
    m, sh1, sh2 = reciprocal(d)
    return m | sh1 << 32 | sh2 << 40
