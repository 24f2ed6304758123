"""block/blk-mq.c: tag sets (`blk_mq_alloc_tag_set`, `blk_mq_free_tag_set`)
and the disks made over one (`__blk_mq_alloc_disk`).

A tag set is checked as Linux 6.1 and 6.12 check it (-EINVAL for no
hardware queue, no depth, a depth not above the reserved tags, no
`queue_rq`, or only one of `get_budget`/`put_budget`; more than 10240 tags
is "blk-mq: reduced tag depth to 10240"; one map by default, at most one
hardware queue per CPU — one here) and its `tags` array allocated, one
entry per hardware queue.  It is a registration: a tag set its module left
allocated is reported ("leaked registration: blk-mq tag set …") and freed.

Where kloader differs: no request is ever made, so the driver's
`init_request`/`init_hctx` are not called and the tags array's entries stay
NULL — kloader emulates no block I/O (docs/semantics.md).
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export
from ..kernel.layouts import struct
from ..kernel.printk import KERN_INFO
from .blk import STRUCTS as BLK_STRUCTS, err_ptr, owner
from .genhd import disks, takes_limits

TAG_SET = struct("struct blk_mq_tag_set", "linux/blk-mq.h", "ops", "nr_maps", "nr_hw_queues", "queue_depth",
                 "reserved_tags", "timeout", "tags", "tag_list")
MQ_OPS = struct("struct blk_mq_ops", "linux/blk-mq.h", "queue_rq", "get_budget", "put_budget")
STRUCTS = (*BLK_STRUCTS, TAG_SET, MQ_OPS)

BLK_MQ_MAX_DEPTH = 10240
BLK_MQ_TAG_MIN = 1
HCTX_MAX_TYPES = 3
NR_CPU_IDS = 1


def registry(ctx: Any) -> Any:
    return ctx.kernel.registrations.registry("blk_mq_tag_set")


@export("blk_mq_alloc_tag_set", "int blk_mq_alloc_tag_set(struct blk_mq_tag_set *set)", nargs=1)
def blk_mq_alloc_tag_set(ctx: Any, tag_set: int) -> int:
    mem, off, ops_off = ctx.mem, ctx.kernel.layouts[TAG_SET], ctx.kernel.layouts[MQ_OPS]
    hw_queues = mem.read_u32(tag_set + off.nr_hw_queues)
    depth = mem.read_u32(tag_set + off.queue_depth)
    ops = mem.read_u64(tag_set + off.ops)
    if not hw_queues or not depth or depth < mem.read_u32(tag_set + off.reserved_tags) + BLK_MQ_TAG_MIN:
        return -errno.EINVAL
    if not ops or not mem.read_u64(ops + ops_off.queue_rq):
        return -errno.EINVAL
    if bool(mem.read_u64(ops + ops_off.get_budget)) != bool(mem.read_u64(ops + ops_off.put_budget)):
        return -errno.EINVAL
    if depth > BLK_MQ_MAX_DEPTH:
        ctx.kernel.log.emit(KERN_INFO, f"blk-mq: reduced tag depth to {BLK_MQ_MAX_DEPTH}", owner(ctx))
        mem.write_u32(tag_set + off.queue_depth, BLK_MQ_MAX_DEPTH)
    maps = mem.read_u32(tag_set + off.nr_maps)
    if maps > HCTX_MAX_TYPES:
        return -errno.EINVAL
    if not maps:
        maps = 1
        mem.write_u32(tag_set + off.nr_maps, 1)
    if maps == 1 and hw_queues > NR_CPU_IDS:
        hw_queues = NR_CPU_IDS
        mem.write_u32(tag_set + off.nr_hw_queues, hw_queues)
    found = registry(ctx).find(tag_set)
    if found is not None:                      # allocated again without a free: Linux leaks the first
        registry(ctx).remove(tag_set)
        ctx.kernel.slab.free(found.data, None)
    tags = ctx.kernel.slab.alloc(8 * hw_queues, None, zero=True)
    if not tags:
        return -errno.ENOMEM
    mem.write_u64(tag_set + off.tags, tags)
    mem.write_u64(tag_set + off.tag_list, tag_set + off.tag_list)        # INIT_LIST_HEAD
    mem.write_u64(tag_set + off.tag_list + 8, tag_set + off.tag_list)
    regs = ctx.kernel.registrations
    registry(ctx).add(tag_set, f"blk-mq tag set at {tag_set:#x} ({hw_queues} queue(s) of {min(depth, BLK_MQ_MAX_DEPTH)}"
                               " tags; blk_mq_free_tag_set)",
                      owner=regs.module_at(tag_set) or ctx.module, address=tag_set, points_to=(ops,), data=tags,
                      on_leftover=lambda entry: ctx.kernel.slab.free(entry.data, None))
    return 0


@export("blk_mq_free_tag_set", "void blk_mq_free_tag_set(struct blk_mq_tag_set *set)", nargs=1)
def blk_mq_free_tag_set(ctx: Any, tag_set: int) -> None:
    entry = registry(ctx).remove(tag_set)
    if entry is not None:
        ctx.kernel.slab.free(entry.data, None)
    ctx.mem.write_u64(tag_set + ctx.kernel.layouts[TAG_SET].tags, 0)


@export("__blk_mq_alloc_disk", "struct gendisk *__blk_mq_alloc_disk(struct blk_mq_tag_set *set, "
        "void *queuedata, struct lock_class_key *lkclass)", nargs=4)
def __blk_mq_alloc_disk(ctx: Any, tag_set: int, a1: int, a2: int, a3: int) -> int:
    """A disk over a tag set's queue.  6.9 put `struct queue_limits *lim`
    second: the arguments are read by the running kernel's release."""
    lim, queuedata = (a1, a2) if takes_limits(ctx) else (0, a1)
    if registry(ctx).find(tag_set) is None:
        return err_ptr(-errno.EINVAL)
    return disks(ctx.kernel).alloc(ctx, lim, tag_set, queuedata)
