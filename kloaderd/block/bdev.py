"""block/bdev.c: what a driver asks of its disk's block device.

`sync_blockdev` writes the device's dirty page-cache pages and waits for
them.  kloader has no page cache and opens no block device (a disk's
/dev node refuses to open: no block I/O is emulated), so no page of a
disk can be dirty and there is nothing to write: it returns 0, as Linux
does for a device with nothing dirty.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export


@export("sync_blockdev", "int sync_blockdev(struct block_device *bdev)", nargs=1)
def sync_blockdev(ctx: Any, bdev: int) -> int:
    return 0
