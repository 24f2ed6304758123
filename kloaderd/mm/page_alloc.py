"""mm/page_alloc.c: whole pages, by address (`__get_free_pages`,
`get_zeroed_page`, `free_pages`) or by `struct page` (`alloc_pages`,
`__alloc_pages`, `__free_pages`, 6.10's `_noprof` names), and how many
are free (`nr_free_buffer_pages`, `si_meminfo`).

Pages come from the kernel heap's buddy allocator, naturally aligned to
their order as Linux's are, accounted to the allocating module (so pages a
module keeps are its leak).  An order above MAX_ORDER (10) is NULL, as
Linux's WARN-less failure with __GFP_NOWARN.

The memmap: every page of the heap has its `struct page` where x86-64's
`virt_to_page()` looks for it — `vmemmap_base + pfn * sizeof(struct page)`,
the pfn being the page's offset in the direct map (`page_offset_base`,
`phys_base` 0) — backed, zeroed, as the heap maps its memory.  So a
module's inline `virt_to_page`, `page_address`, `page_to_pfn` and
`get_page`/`put_page` agree with `alloc_pages` and `__get_free_pages`.
`alloc_pages` sets the page's `_refcount` to 1; `__free_pages` drops it
and frees the block when it reaches 0, as Linux's `put_page_testzero`.
Where kloader differs: the memmap's flags stay 0 (no zone, node or LRU
bits: one node, one zone), and a compound page (`__GFP_COMP`) is not
marked as one.
"""

from __future__ import annotations

from typing import Any

from ..config import PAGE_OFFSET, PAGE_SHIFT, VMEMMAP_START
from ..kernel.api import at_boot, export, export_object
from ..kernel.layouts import struct
from ..kernel.slab import MAX_ORDER, PAGE_SIZE

PAGE = struct("struct page", "linux/mm_types.h", "flags", "_refcount")

# Where x86-64's __pa()/__va() and virt_to_page() find the direct map and the memmap.
export_object("page_offset_base", "unsigned long page_offset_base", 8, PAGE_OFFSET.to_bytes(8, "little"))
export_object("vmemmap_base", "unsigned long vmemmap_base", 8, VMEMMAP_START.to_bytes(8, "little"))

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


def _free_pages(kernel: Any) -> int:
    """The machine's RAM (`heap_limit`, as `_totalram_pages`) less what the heap holds, in pages."""
    return max(kernel.options.heap_limit - kernel.slab.total, 0) // PAGE_SIZE


@export("nr_free_buffer_pages", "unsigned long nr_free_buffer_pages(void)", nargs=0)
def nr_free_buffer_pages(ctx: Any) -> int:
    """The pages still free in the zones buffers come from (what IPVS and
    the TCP/UDP memory limits size themselves by)."""
    return _free_pages(ctx.kernel)


# struct sysinfo (include/uapi/linux/sysinfo.h): user ABI, the same in every release.
_SYSINFO_RAM = 32             # totalram, freeram, sharedram, bufferram: after uptime and loads[3]
_SYSINFO_HIGH = 88            # totalhigh, freehigh: after the swap pair, procs and pad
_SYSINFO_MEM_UNIT = 104


@export("si_meminfo", "void si_meminfo(struct sysinfo *val)", nargs=1)
def si_meminfo(ctx: Any, val: int) -> None:
    """The RAM figures of sysinfo(2), in pages (`mem_unit` is the page size):
    IPVS's defense timer reads them every second to decide when to drop
    connections.  No page cache is shared or buffers block devices, and
    x86-64 has no high memory; uptime, loads, swap and procs are left as
    the caller had them, as Linux's si_meminfo leaves them."""
    kernel = ctx.kernel
    mem = kernel.mem
    for i, value in enumerate((kernel.options.heap_limit // PAGE_SIZE, _free_pages(kernel), 0, 0)):
        mem.write_u64(val + _SYSINFO_RAM + 8 * i, value)
    mem.write_u64(val + _SYSINFO_HIGH, 0)
    mem.write_u64(val + _SYSINFO_HIGH + 8, 0)
    mem.write_u32(val + _SYSINFO_MEM_UNIT, PAGE_SIZE)


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


# -- the memmap and struct page --------------------------------------------------------

class Memmap:
    """The struct pages of the heap, backed as the heap is mapped."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.page_size = kernel.layouts[PAGE].size
        self.mapped: set[int] = set()                  # the memmap's own pages, by number
        kernel.slab.on_map(self.back)

    def back(self, start: int, size: int) -> None:
        first = self.page_of(start) >> PAGE_SHIFT
        last = (self.page_of(start + size - PAGE_SIZE) + self.page_size - 1) >> PAGE_SHIFT
        run: int | None = None
        for vpn in range(first, last + 2):
            missing = vpn <= last and vpn not in self.mapped
            if missing and run is None:
                run = vpn
            elif not missing and run is not None:
                self.kernel.mem.map(run << PAGE_SHIFT, (vpn - run) << PAGE_SHIFT, "rw-")
                self.mapped.update(range(run, vpn))
                run = None

    def page_of(self, address: int) -> int:
        """virt_to_page() of a direct-map address."""
        return VMEMMAP_START + ((address - PAGE_OFFSET) >> PAGE_SHIFT) * self.page_size

    def address_of(self, page: int) -> int:
        """page_address()."""
        return PAGE_OFFSET + ((page - VMEMMAP_START) // self.page_size << PAGE_SHIFT)


@at_boot
def _memmap(kernel: Any) -> None:
    if kernel.layouts.has(PAGE):
        kernel.subsystem(Memmap)


def memmap(ctx: Any) -> Memmap:
    return ctx.kernel.subsystem(Memmap)


@export("alloc_pages_noprof", "struct page *alloc_pages_noprof(gfp_t gfp, unsigned int order)", nargs=2,
        structs=(PAGE,))
@export("alloc_pages", "struct page *alloc_pages(gfp_t gfp, unsigned int order)", nargs=2, structs=(PAGE,))
def alloc_pages(ctx: Any, gfp_mask: int, order: int) -> int:
    address = __get_free_pages(ctx, gfp_mask, order)
    if not address:
        return 0
    table, off = memmap(ctx), ctx.kernel.layouts[PAGE]
    page = table.page_of(address)
    for n in range(1 << (order & 0xFFFFFFFF)):
        ctx.mem.write_u64(page + n * table.page_size + off.flags, 0)
    ctx.mem.write_u32(page + off._refcount, 1)                 # set_page_refcounted
    return page


@export("__alloc_pages_noprof", "struct page *__alloc_pages_noprof(gfp_t gfp, unsigned int order, "
        "int preferred_nid, nodemask_t *nodemask)", nargs=4, structs=(PAGE,))
@export("__alloc_pages", "struct page *__alloc_pages(gfp_t gfp, unsigned int order, int preferred_nid, "
        "nodemask_t *nodemask)", nargs=4, structs=(PAGE,))
def __alloc_pages(ctx: Any, gfp_mask: int, order: int, nid: int, nodemask: int) -> int:
    return alloc_pages(ctx, gfp_mask, order)                  # one node


@export("__free_pages", "void __free_pages(struct page *page, unsigned int order)", nargs=2, structs=(PAGE,))
def __free_pages(ctx: Any, page: int, order: int) -> None:
    """put_page_testzero: the block goes when the last reference does."""
    off = ctx.kernel.layouts[PAGE]
    count = (ctx.mem.read_u32(page + off._refcount) - 1) & 0xFFFFFFFF
    ctx.mem.write_u32(page + off._refcount, count)
    if not count:
        free_pages(ctx, memmap(ctx).address_of(page), order)
