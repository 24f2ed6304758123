"""lib/bitmap.c's allocators: `bitmap_alloc`, `bitmap_zalloc` (and their
`_node` forms: one node here) and `bitmap_free`, a bitmap of `nbits` in
whole unsigned longs from the heap, accounted to the caller.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.api.slab import __kmalloc, kfree
from ..mm.slab_common import __GFP_ZERO


def bitmap_bytes(nbits: int) -> int:
    """BITS_TO_LONGS(nbits) * sizeof(unsigned long)."""
    return -(-nbits // 64) * 8


@export("bitmap_alloc", "unsigned long *bitmap_alloc(unsigned int nbits, gfp_t flags)", nargs=2)
def bitmap_alloc(ctx: Any, nbits: int, flags: int) -> int:
    return __kmalloc(ctx, bitmap_bytes(nbits & 0xFFFFFFFF), flags)


@export("bitmap_zalloc", "unsigned long *bitmap_zalloc(unsigned int nbits, gfp_t flags)", nargs=2)
def bitmap_zalloc(ctx: Any, nbits: int, flags: int) -> int:
    return bitmap_alloc(ctx, nbits, flags | __GFP_ZERO)


@export("bitmap_alloc_node", "unsigned long *bitmap_alloc_node(unsigned int nbits, gfp_t flags, "
        "int node)", nargs=3)
def bitmap_alloc_node(ctx: Any, nbits: int, flags: int, node: int) -> int:
    return bitmap_alloc(ctx, nbits, flags)


@export("bitmap_zalloc_node", "unsigned long *bitmap_zalloc_node(unsigned int nbits, gfp_t flags, "
        "int node)", nargs=3)
def bitmap_zalloc_node(ctx: Any, nbits: int, flags: int, node: int) -> int:
    return bitmap_alloc(ctx, nbits, flags | __GFP_ZERO)


@export("bitmap_free", "void bitmap_free(const unsigned long *bitmap)", nargs=1)
def bitmap_free(ctx: Any, bitmap: int) -> int:
    return kfree(ctx, bitmap)
