"""lib/hweight.c: the software population counts behind hweight32() and
hweight64() (`__sw_hweight32`, `__sw_hweight64`, the two Linux exports).

An x86-64 kernel built without POPCNT assumed calls them from
__arch_hweight*() (arch/x86/include/asm/arch_hweight.h, an alternative
patched to `popcnt` at boot on CPUs that have it); kloader does not patch
alternatives, so the call always arrives here.  The answer is the number
of bits set in the low 32 or 64 bits of the argument.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export


def _weight(value: int, bits: int) -> int:
    return (value & ((1 << bits) - 1)).bit_count()


@export("__sw_hweight32", "unsigned int __sw_hweight32(unsigned int w)", nargs=1)
def __sw_hweight32(ctx: Any, w: int) -> int:
    return _weight(w, 32)


@export("__sw_hweight64", "unsigned long __sw_hweight64(__u64 w)", nargs=1)
def __sw_hweight64(ctx: Any, w: int) -> int:
    return _weight(w, 64)
