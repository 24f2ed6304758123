"""block/blk.h: the structures the block layer's emulation reads, at each
kernel's offsets (kloaderd/kernel/layouts.py), and the helpers its files share.

A `struct gendisk`, its `part0` (`struct block_device`) and its
`struct request_queue` are kernel memory, as Linux allocates them; modules
read and write their members directly (`disk->major`, `disk->disk_name`,
the inline `get_capacity()` reads `part0->bd_nr_sectors`), so the
emulation keeps everything it shows in them rather than beside them.
"""

from __future__ import annotations

from typing import Any

from ..kernel.layouts import constants, struct

GENDISK = struct("struct gendisk", "linux/blkdev.h", "major", "first_minor", "minors", "disk_name",
                 "part0", "fops", "queue", "private_data", "flags", "state")
BDEV = struct("struct block_device", "linux/blk_types.h", "bd_nr_sectors", "bd_disk", "bd_queue", "bd_dev")
QUEUE = struct("struct request_queue", "linux/blkdev.h", "queuedata", "queue_flags", "limits",
               "rq_timeout", "tag_set", "disk")
LIMITS = struct("struct queue_limits", "linux/blkdev.h", "logical_block_size", "physical_block_size",
                "io_min", "io_opt", "max_hw_sectors", "max_sectors", "max_dev_sectors", "max_segments",
                "max_segment_size", "seg_boundary_mask", "virt_boundary_mask", "max_discard_sectors",
                "max_hw_discard_sectors", "max_write_zeroes_sectors", "chunk_sectors")
BDOPS = struct("struct block_device_operations", "linux/blkdev.h", "owner", "free_disk")
GENHD = constants("genhd", "linux/blkdev.h", "GENHD_FL_REMOVABLE", "GENHD_FL_HIDDEN", "GENHD_FL_NO_PART",
                  "GD_READ_ONLY", "GD_DEAD", "GD_ADDED", "GD_OWNS_QUEUE", "DISK_MAX_PARTS", "DISK_NAME_LEN",
                  optional=("QUEUE_FLAG_NONROT",))
STRUCTS = (GENDISK, BDEV, QUEUE, LIMITS, BDOPS, GENHD)

SECTOR_SHIFT = 9
MAX_ERRNO = 4095
U64 = (1 << 64) - 1


def err_ptr(err: int) -> int:
    """ERR_PTR(-err) as the 64-bit value a function returns."""
    return -err & U64


def is_err(value: int) -> bool:
    return value & U64 >= -MAX_ERRNO & U64


def owner(ctx: Any) -> str | None:
    return getattr(ctx.module, "name", None)


def disk_name(kernel: Any, disk: int) -> str:
    off = kernel.layouts[GENDISK]
    return kernel.mem.read_cstr(disk + off.disk_name, kernel.layouts[GENHD].DISK_NAME_LEN) \
        .decode("utf-8", "replace")


def capacity(kernel: Any, disk: int) -> int:
    """get_capacity(): part0's size in 512-byte sectors."""
    part0 = kernel.mem.read_u64(disk + kernel.layouts[GENDISK].part0)
    return kernel.mem.read_u64(part0 + kernel.layouts[BDEV].bd_nr_sectors)


def test_bit(kernel: Any, word: int, bit: int) -> bool:
    return bool(kernel.mem.read_u64(word) >> bit & 1)


def change_bit(kernel: Any, word: int, bit: int, on: bool) -> None:
    value = kernel.mem.read_u64(word)
    kernel.mem.write_u64(word, value | 1 << bit if on else value & ~(1 << bit) & U64)
