"""block/blk-settings.c and blk-core.c: a queue's limits and flags, as a
driver sets them on the queue of its disk (6.1's `blk_queue_*` setters;
6.12 passes a `struct queue_limits` to the allocator instead, and keeps
`blk_queue_flag_set`/`_clear`).

Each setter writes `q->limits` at the running kernel's offsets and adjusts
the limits that depend on it as Linux does (a logical block size raises
the physical one and the minimum I/O size; the maximum transfer is rounded
to whole logical blocks and capped at 2560 sectors; a segment limit below
a page is raised to a page with Linux's message), so the disk's
/sys/block/NAME/queue/ files read what Linux would show.
"""

from __future__ import annotations

from typing import Any

from ..config import PAGE_SHIFT, PAGE_SIZE
from ..kernel.api import export
from ..kernel.printk import KERN_INFO
from .blk import LIMITS, QUEUE, SECTOR_SHIFT, STRUCTS as BLK_STRUCTS, change_bit, owner

STRUCTS = BLK_STRUCTS          # what these functions read at the kernel's offsets

BLK_DEF_MAX_SECTORS = 2560


def _limits(ctx: Any, q: int) -> tuple[Any, Any, int]:
    return ctx.mem, ctx.kernel.layouts[LIMITS], q + ctx.kernel.layouts[QUEUE].limits


def _set(ctx: Any, q: int, *members: str, value: int) -> None:
    """The setters that only store: each member of q->limits named."""
    mem, off, lim = _limits(ctx, q)
    for member in members:
        mem.write_u32(lim + getattr(off, member), value & 0xFFFFFFFF)


@export("blk_queue_flag_set", "void blk_queue_flag_set(unsigned int flag, struct request_queue *q)", nargs=2)
def blk_queue_flag_set(ctx: Any, flag: int, q: int) -> None:
    change_bit(ctx.kernel, q + ctx.kernel.layouts[QUEUE].queue_flags, flag & 63, True)


@export("blk_queue_flag_clear", "void blk_queue_flag_clear(unsigned int flag, struct request_queue *q)", nargs=2)
def blk_queue_flag_clear(ctx: Any, flag: int, q: int) -> None:
    change_bit(ctx.kernel, q + ctx.kernel.layouts[QUEUE].queue_flags, flag & 63, False)


def _round_sectors(mem: Any, off: Any, lim: int, logical: int) -> None:
    per_block = max(logical >> SECTOR_SHIFT, 1)
    for member in (off.max_hw_sectors, off.max_sectors):
        value = mem.read_u32(lim + member)
        mem.write_u32(lim + member, value - value % per_block)


@export("blk_queue_logical_block_size", "void blk_queue_logical_block_size(struct request_queue *q, "
        "unsigned int size)", nargs=2)
def blk_queue_logical_block_size(ctx: Any, q: int, size: int) -> None:
    mem, off, lim = _limits(ctx, q)
    size &= 0xFFFFFFFF
    mem.write_u32(lim + off.logical_block_size, size)
    if mem.read_u32(lim + off.physical_block_size) < size:
        mem.write_u32(lim + off.physical_block_size, size)
    if mem.read_u32(lim + off.io_min) < mem.read_u32(lim + off.physical_block_size):
        mem.write_u32(lim + off.io_min, mem.read_u32(lim + off.physical_block_size))
    _round_sectors(mem, off, lim, size)


@export("blk_queue_physical_block_size", "void blk_queue_physical_block_size(struct request_queue *q, "
        "unsigned int size)", nargs=2)
def blk_queue_physical_block_size(ctx: Any, q: int, size: int) -> None:
    mem, off, lim = _limits(ctx, q)
    size = max(size & 0xFFFFFFFF, mem.read_u32(lim + off.logical_block_size))
    mem.write_u32(lim + off.physical_block_size, size)
    if mem.read_u32(lim + off.io_min) < size:
        mem.write_u32(lim + off.io_min, size)


@export("blk_queue_io_min", "void blk_queue_io_min(struct request_queue *q, unsigned int min)", nargs=2)
def blk_queue_io_min(ctx: Any, q: int, minimum: int) -> None:
    mem, off, lim = _limits(ctx, q)
    minimum = max(minimum & 0xFFFFFFFF, mem.read_u32(lim + off.logical_block_size),
                  mem.read_u32(lim + off.physical_block_size))
    mem.write_u32(lim + off.io_min, minimum)


@export("blk_queue_io_opt", "void blk_queue_io_opt(struct request_queue *q, unsigned int opt)", nargs=2)
def blk_queue_io_opt(ctx: Any, q: int, opt: int) -> None:
    _set(ctx, q, "io_opt", value=opt)


@export("blk_queue_max_hw_sectors", "void blk_queue_max_hw_sectors(struct request_queue *q, "
        "unsigned int max_hw_sectors)", nargs=2)
def blk_queue_max_hw_sectors(ctx: Any, q: int, sectors: int) -> None:
    mem, off, lim = _limits(ctx, q)
    sectors &= 0xFFFFFFFF
    if sectors << SECTOR_SHIFT < PAGE_SIZE:
        sectors = 1 << (PAGE_SHIFT - SECTOR_SHIFT)
        ctx.kernel.log.emit(KERN_INFO, f"blk_queue_max_hw_sectors: set to minimum {sectors}", owner(ctx))
    per_block = max(mem.read_u32(lim + off.logical_block_size) >> SECTOR_SHIFT, 1)
    sectors -= sectors % per_block
    mem.write_u32(lim + off.max_hw_sectors, sectors)
    dev = mem.read_u32(lim + off.max_dev_sectors)
    most = min(min(sectors, dev) if dev else sectors, BLK_DEF_MAX_SECTORS)
    mem.write_u32(lim + off.max_sectors, most - most % per_block)


@export("blk_queue_max_segments", "void blk_queue_max_segments(struct request_queue *q, "
        "unsigned short max_segments)", nargs=2)
def blk_queue_max_segments(ctx: Any, q: int, segments: int) -> None:
    mem, off, lim = _limits(ctx, q)
    segments &= 0xFFFF
    if not segments:
        segments = 1
        ctx.kernel.log.emit(KERN_INFO, f"blk_queue_max_segments: set to minimum {segments}", owner(ctx))
    mem.write_u16(lim + off.max_segments, segments)


@export("blk_queue_max_segment_size", "void blk_queue_max_segment_size(struct request_queue *q, "
        "unsigned int max_size)", nargs=2)
def blk_queue_max_segment_size(ctx: Any, q: int, size: int) -> None:
    mem, off, lim = _limits(ctx, q)
    size &= 0xFFFFFFFF
    if size < PAGE_SIZE:
        size = PAGE_SIZE
        ctx.kernel.log.emit(KERN_INFO, f"blk_queue_max_segment_size: set to minimum {size}", owner(ctx))
    mem.write_u32(lim + off.max_segment_size, size)


@export("blk_queue_max_discard_sectors", "void blk_queue_max_discard_sectors(struct request_queue *q, "
        "unsigned int max_discard_sectors)", nargs=2)
def blk_queue_max_discard_sectors(ctx: Any, q: int, sectors: int) -> None:
    _set(ctx, q, "max_hw_discard_sectors", "max_discard_sectors", value=sectors)


@export("blk_queue_max_write_zeroes_sectors", "void blk_queue_max_write_zeroes_sectors(struct request_queue *q, "
        "unsigned int max_write_zeroes_sectors)", nargs=2)
def blk_queue_max_write_zeroes_sectors(ctx: Any, q: int, sectors: int) -> None:
    _set(ctx, q, "max_write_zeroes_sectors", value=sectors)


@export("blk_queue_chunk_sectors", "void blk_queue_chunk_sectors(struct request_queue *q, "
        "unsigned int chunk_sectors)", nargs=2)
def blk_queue_chunk_sectors(ctx: Any, q: int, sectors: int) -> None:
    _set(ctx, q, "chunk_sectors", value=sectors)


@export("blk_queue_virt_boundary", "void blk_queue_virt_boundary(struct request_queue *q, unsigned long mask)",
        nargs=2)
def blk_queue_virt_boundary(ctx: Any, q: int, mask: int) -> None:
    mem, off, lim = _limits(ctx, q)
    mem.write_u64(lim + off.virt_boundary_mask, mask)
    if mask:
        mem.write_u32(lim + off.max_segment_size, 0xFFFFFFFF)


@export("blk_queue_rq_timeout", "void blk_queue_rq_timeout(struct request_queue *q, unsigned int timeout)",
        nargs=2)
def blk_queue_rq_timeout(ctx: Any, q: int, timeout: int) -> None:
    ctx.mem.write_u32(q + ctx.kernel.layouts[QUEUE].rq_timeout, timeout & 0xFFFFFFFF)
