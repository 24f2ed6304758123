"""lib/find_bit.c and lib/bitmap.c: searching and counting bits in an
array of unsigned longs, as for_each_set_bit(), find_first_bit() and
bitmap_weight() call them for bitmaps larger than one word.

Bits are numbered as Linux numbers them on x86-64: bit n is bit n % 64 of
the little-endian word n / 64.  Results are Linux's: the index of the bit
found, or `size` when there is none.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export

CHUNK_BITS = 1 << 15           # bits read from the guest at a time: any size is searched
                               # without reading more than it needs


def _chunks(ctx: Any, addr: int, size: int, start: int, invert: bool):
    """(first bit index, bits) of the bitmap from the word holding `start`,
    in chunks; bits past `size` are cleared."""
    first = start - start % 64
    while first < size:
        n = min(CHUNK_BITS, size - first)
        words = (n + 63) // 64
        value = int.from_bytes(ctx.mem.read(addr + first // 8, words * 8), "little")
        if invert:
            value = ~value
        yield first, value & ((1 << n) - 1)
        first += n


def _find(ctx: Any, addr: int, size: int, start: int, invert: bool = False) -> int:
    """find_next_bit()/find_next_zero_bit(): the first (clear) bit >= start, or size."""
    if start >= size:
        return size
    for first, value in _chunks(ctx, addr, size, start, invert):
        if first < start:
            value &= ~((1 << (start - first)) - 1)
        if value:
            return first + (value & -value).bit_length() - 1
    return size


@export("_find_next_bit", "unsigned long _find_next_bit(const unsigned long *addr, "
        "unsigned long nbits, unsigned long start)", nargs=3)
def _find_next_bit(ctx: Any, addr: int, nbits: int, start: int) -> int:
    return _find(ctx, addr, nbits, start)


@export("_find_next_zero_bit", "unsigned long _find_next_zero_bit(const unsigned long *addr, "
        "unsigned long nbits, unsigned long start)", nargs=3)
def _find_next_zero_bit(ctx: Any, addr: int, nbits: int, start: int) -> int:
    return _find(ctx, addr, nbits, start, invert=True)


@export("_find_first_bit", "unsigned long _find_first_bit(const unsigned long *addr, "
        "unsigned long size)", nargs=2)
def _find_first_bit(ctx: Any, addr: int, size: int) -> int:
    return _find(ctx, addr, size, 0)


@export("_find_first_zero_bit", "unsigned long _find_first_zero_bit(const unsigned long *addr, "
        "unsigned long size)", nargs=2)
def _find_first_zero_bit(ctx: Any, addr: int, size: int) -> int:
    return _find(ctx, addr, size, 0, invert=True)


@export("_find_last_bit", "unsigned long _find_last_bit(const unsigned long *addr, "
        "unsigned long size)", nargs=2)
def _find_last_bit(ctx: Any, addr: int, size: int) -> int:
    last = size
    for first, value in _chunks(ctx, addr, size, 0, False):
        if value:
            last = first + value.bit_length() - 1
    return last


@export("__bitmap_weight", "unsigned int __bitmap_weight(const unsigned long *bitmap, "
        "unsigned int bits)", nargs=2)
def __bitmap_weight(ctx: Any, bitmap: int, bits: int) -> int:
    return sum(value.bit_count() for _, value in _chunks(ctx, bitmap, bits & 0xFFFFFFFF, 0, False))
