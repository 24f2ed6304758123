"""mm/page_alloc.c: whole pages by address (`__get_free_pages`,
`get_zeroed_page`, `free_pages`) and how many are free
(`nr_free_buffer_pages`).

Pages come from the kernel heap's buddy allocator, naturally aligned to
their order as Linux's are, accounted to the allocating module (so pages a
module keeps are its leak).  An order above MAX_ORDER (10) is NULL, as
Linux's WARN-less failure with __GFP_NOWARN; `alloc_pages` (which returns
a `struct page *`) is not emulated: there is no vmemmap.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import at_boot, export
from ..kernel.slab import MAX_ORDER, PAGE_SIZE

__GFP_ZERO = 0x100


@at_boot
def totalram_pages(kernel: Any) -> None:
    """`_totalram_pages` (a profile's data export): the RAM the machine has
    to give, which is what kmalloc may take in all (`heap_limit`), in pages."""
    symbol = kernel.symbols.get("_totalram_pages") if kernel.profile is not None else None
    if symbol is not None:
        kernel.mem.write_u64(symbol.address, kernel.options.heap_limit // PAGE_SIZE)


def _owner(ctx: Any) -> str | None:
    return getattr(ctx.module, "name", None)


@export("nr_free_buffer_pages", "unsigned long nr_free_buffer_pages(void)", nargs=0)
def nr_free_buffer_pages(ctx: Any) -> int:
    """The pages still free in the zones buffers come from (what IPVS and
    the TCP/UDP memory limits size themselves by): the machine's RAM
    (`heap_limit`, as `_totalram_pages`) less what the heap holds."""
    kernel = ctx.kernel
    return max(kernel.options.heap_limit - kernel.slab.total, 0) // PAGE_SIZE


@export("get_free_pages_noprof", "unsigned long get_free_pages_noprof(gfp_t gfp_mask, unsigned int order)",
        nargs=2)
@export("__get_free_pages", "unsigned long __get_free_pages(gfp_t gfp_mask, unsigned int order)",
        nargs=2)
def __get_free_pages(ctx: Any, gfp_mask: int, order: int) -> int:
    order &= 0xFFFFFFFF
    if order > MAX_ORDER:
        return 0
    return ctx.kernel.slab.alloc(PAGE_SIZE << order, _owner(ctx), zero=bool(gfp_mask & __GFP_ZERO))


@export("get_zeroed_page_noprof", "unsigned long get_zeroed_page_noprof(gfp_t gfp_mask)", nargs=1)
@export("get_zeroed_page", "unsigned long get_zeroed_page(gfp_t gfp_mask)", nargs=1)
def get_zeroed_page(ctx: Any, gfp_mask: int) -> int:
    return ctx.kernel.slab.alloc(PAGE_SIZE, _owner(ctx), zero=True)


@export("free_pages", "void free_pages(unsigned long addr, unsigned int order)", nargs=2)
def free_pages(ctx: Any, addr: int, order: int) -> None:
    if addr:
        ctx.kernel.slab.free(addr, _owner(ctx))
