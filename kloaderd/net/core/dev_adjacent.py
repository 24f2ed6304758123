"""net/core/dev.c: walking a device's lower devices
(`netdev_lower_get_next_private`), what bonding's teardown does over its
slaves.

Every device's `adj_list.upper` and `adj_list.lower` are empty list heads
from `alloc_netdev_mqs`, as Linux makes them, and no device is ever linked
to another here (`netdev_upper_dev_link` is not emulated), so the walk ends
at once: NULL when the iterator is back at the device's own head.  An
iterator anywhere else could only point into a `struct netdev_adjacent`
(private to net/core/dev.c, whose layout kloader does not measure), which
no kloader device has: that is reported as not emulated, never guessed.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.oops import NotEmulated
from .net_device import NET_DEVICE

STRUCTS = (NET_DEVICE,)


@export("netdev_lower_get_next_private", "void *netdev_lower_get_next_private(struct net_device *dev, "
        "struct list_head **iter)", nargs=2)
def netdev_lower_get_next_private(ctx: Any, dev: int, iter_: int) -> int:
    if ctx.mem.read_u64(iter_) == dev + ctx.kernel.layouts[NET_DEVICE].adj_list_lower:
        return 0
    raise NotEmulated("netdev_lower_get_next_private of a device with lower devices")
