"""lib/scatterlist.c: scatterlists over the direct map, and the mapping
iterator (`sg_miter_*`) that walks one page at a time.

An entry's `page_link` is a `struct page *` in the memmap (mm/page_alloc.py:
`vmemmap_base + pfn * sizeof(struct page)`, the pfn the page's offset in the
direct map) with Linux's two low bits, SG_CHAIN (the entry points at the
next array) and SG_END (the last entry).  So `sg_init_one(sg, buf, len)`
describes a kmalloc'd or page buffer exactly as Linux does, and a module's
inline `sg_virt()`, `sg_page()`, `sg_next()` and `for_each_sg()` agree with
these functions.  As in Linux a buffer must be in the direct map (not on a
vmalloc'd stack): elsewhere its page is meaningless.

`sg_miter_start/next/stop` follow Linux's iterator field by field: each
`sg_miter_next` maps the next piece of at most a page (`addr`, `length`,
`consumed`), `sg_miter_stop` moves past what was consumed.  With
SG_MITER_ATOMIC the mapping holds preemption off until the stop, as
`kmap_atomic` does.  Where kloader differs: Linux's WARN_ONs for a miter
started with neither direction or consumed past its length are not
reproduced (the iterator goes on as Linux's does after them), and the
page-fault-disable half of `kmap_atomic` is not modelled.
Structures are read at the running kernel's offsets (kernel/layouts.py).
"""

from __future__ import annotations

from typing import Any, Iterator

from ..config import PAGE_OFFSET, PAGE_SHIFT, PAGE_SIZE, VMEMMAP_START
from ..kernel.api import export
from ..kernel.layouts import struct
from ..mm.page_alloc import PAGE

SCATTERLIST = struct("struct scatterlist", "linux/scatterlist.h", "page_link", "offset", "length")
MITER = struct("struct sg_mapping_iter", "linux/scatterlist.h", "page", "addr", "length", "consumed",
               "piter.sg", "piter.sg_pgoffset", "piter.__nents", "piter.__pg_advance",
               "__offset", "__remaining", "__flags")
STRUCTS = (SCATTERLIST, MITER, PAGE)

SG_CHAIN, SG_END = 0x01, 0x02
SG_MITER_ATOMIC = 1
_U32 = 0xFFFFFFFF


def virt_to_page(kernel: Any, addr: int) -> int:
    """The memmap entry of the direct-map address `addr`."""
    return VMEMMAP_START + ((addr - PAGE_OFFSET) >> PAGE_SHIFT) * kernel.layouts[PAGE].size


def page_address(kernel: Any, page: int) -> int:
    """The direct-map address of the memmap entry `page`."""
    return PAGE_OFFSET + (((page - VMEMMAP_START) // kernel.layouts[PAGE].size) << PAGE_SHIFT)


def sg_next(mem: Any, at: Any, sg: int) -> int:
    """The entry after `sg` (following a chain), 0 after the last."""
    if mem.read_u64(sg + at.page_link) & SG_END:
        return 0
    sg += at.size
    link = mem.read_u64(sg + at.page_link)
    return link & ~(SG_CHAIN | SG_END) if link & SG_CHAIN else sg


def segments(kernel: Any, sg: int) -> Iterator[tuple[int, int]]:
    """(direct-map address, length) of each entry from `sg` on."""
    mem, at = kernel.mem, kernel.layouts[SCATTERLIST]
    while sg:
        page = mem.read_u64(sg + at.page_link) & ~(SG_CHAIN | SG_END)
        yield page_address(kernel, page) + mem.read_u32(sg + at.offset), mem.read_u32(sg + at.length)
        sg = sg_next(mem, at, sg)


@export("sg_init_one", "void sg_init_one(struct scatterlist *sg, const void *buf, unsigned int buflen)",
        nargs=3)
def sg_init_one(ctx: Any, sg: int, buf: int, buflen: int) -> None:
    mem, at = ctx.mem, ctx.kernel.layouts[SCATTERLIST]
    mem.write(sg, bytes(at.size))
    mem.write_u64(sg + at.page_link, virt_to_page(ctx.kernel, buf) | SG_END)
    mem.write_u32(sg + at.offset, buf & (PAGE_SIZE - 1))
    mem.write_u32(sg + at.length, buflen & _U32)


@export("sg_nents", "int sg_nents(struct scatterlist *sg)", nargs=1)
def sg_nents(ctx: Any, sg: int) -> int:
    mem, at = ctx.mem, ctx.kernel.layouts[SCATTERLIST]
    count = 0
    while sg:
        count += 1
        sg = sg_next(mem, at, sg)
    return count


@export("sg_miter_start", "void sg_miter_start(struct sg_mapping_iter *miter, struct scatterlist *sgl, "
        "unsigned int nents, unsigned int flags)", nargs=4)
def sg_miter_start(ctx: Any, miter: int, sgl: int, nents: int, flags: int) -> None:
    mem, at = ctx.mem, ctx.kernel.layouts[MITER]
    mem.write(miter, bytes(at.size))
    mem.write_u64(miter + at.piter_sg, sgl)
    mem.write_u32(miter + at.piter___nents, nents & _U32)
    mem.write_u32(miter + at.__flags, flags & _U32)


def _page_count(mem: Any, at: Any, sg: int) -> int:
    end = mem.read_u32(sg + at.offset) + mem.read_u32(sg + at.length)
    return (end + PAGE_SIZE - 1) >> PAGE_SHIFT


def _page_iter_next(mem: Any, sl: Any, at: Any, miter: int) -> bool:
    """__sg_page_iter_next() on the miter's page iterator."""
    sg = mem.read_u64(miter + at.piter_sg)
    nents = mem.read_u32(miter + at.piter___nents)
    if not nents or not sg:
        return False
    pgoffset = mem.read_u32(miter + at.piter_sg_pgoffset) + mem.read_u32(miter + at.piter___pg_advance)
    mem.write_u32(miter + at.piter___pg_advance, 1)
    while pgoffset >= _page_count(mem, sl, sg):
        pgoffset -= _page_count(mem, sl, sg)
        sg = sg_next(mem, sl, sg)
        nents -= 1
        mem.write_u64(miter + at.piter_sg, sg)
        mem.write_u32(miter + at.piter___nents, nents)
        if not nents or not sg:
            mem.write_u32(miter + at.piter_sg_pgoffset, pgoffset)
            return False
    mem.write_u32(miter + at.piter_sg_pgoffset, pgoffset)
    return True


def _get_next_page(mem: Any, sl: Any, at: Any, miter: int) -> bool:
    """sg_miter_get_next_page(): the next page's offset and bytes when the last is used up."""
    if mem.read_u32(miter + at.__remaining):
        return True
    if not _page_iter_next(mem, sl, at, miter):
        return False
    sg = mem.read_u64(miter + at.piter_sg)
    pgoffset = mem.read_u32(miter + at.piter_sg_pgoffset)
    sg_offset = mem.read_u32(sg + sl.offset)
    offset = 0 if pgoffset else sg_offset
    remaining = sg_offset + mem.read_u32(sg + sl.length) - (pgoffset << PAGE_SHIFT) - offset
    mem.write_u32(miter + at.__offset, offset)
    mem.write_u32(miter + at.__remaining, min(remaining, PAGE_SIZE - offset))
    return True


def _stop(ctx: Any, miter: int) -> None:
    mem, at = ctx.mem, ctx.kernel.layouts[MITER]
    if not mem.read_u64(miter + at.addr):
        return
    consumed = mem.read_u64(miter + at.consumed)
    mem.write_u32(miter + at.__offset, (mem.read_u32(miter + at.__offset) + consumed) & _U32)
    mem.write_u32(miter + at.__remaining, (mem.read_u32(miter + at.__remaining) - consumed) & _U32)
    if mem.read_u32(miter + at.__flags) & SG_MITER_ATOMIC:
        ctx.task.preempt_count = max(0, ctx.task.preempt_count - 1)     # kunmap_atomic
    for member in (at.page, at.addr, at.length, at.consumed):
        mem.write_u64(miter + member, 0)


@export("sg_miter_stop", "void sg_miter_stop(struct sg_mapping_iter *miter)", nargs=1)
def sg_miter_stop(ctx: Any, miter: int) -> None:
    _stop(ctx, miter)


@export("sg_miter_next", "bool sg_miter_next(struct sg_mapping_iter *miter)", nargs=1)
def sg_miter_next(ctx: Any, miter: int) -> int:
    _stop(ctx, miter)
    mem, kernel = ctx.mem, ctx.kernel
    at, sl = kernel.layouts[MITER], kernel.layouts[SCATTERLIST]
    if not _get_next_page(mem, sl, at, miter):
        return 0
    sg = mem.read_u64(miter + at.piter_sg)
    first = mem.read_u64(sg + sl.page_link) & ~(SG_CHAIN | SG_END)
    page = first + mem.read_u32(miter + at.piter_sg_pgoffset) * kernel.layouts[PAGE].size
    remaining = mem.read_u32(miter + at.__remaining)
    mem.write_u64(miter + at.page, page)
    mem.write_u64(miter + at.length, remaining)
    mem.write_u64(miter + at.consumed, remaining)
    if mem.read_u32(miter + at.__flags) & SG_MITER_ATOMIC:
        ctx.task.preempt_count += 1                                      # kmap_atomic
    mem.write_u64(miter + at.addr, page_address(kernel, page) + mem.read_u32(miter + at.__offset))
    return 1
