"""net/core/dev_addr_lists.c: `dev_addr_mod`, how a driver changes its
device's hardware address (`eth_hw_addr_set`, `eth_hw_addr_random` and
`dev_addr_set` are inlines over it).

As Linux: the bytes go into the buffer `dev->dev_addr` points at
(MAX_ADDR_LEN bytes, allocated with the device) and into
`dev_addr_shadow`, the copy Linux compares with to catch a driver writing
`dev_addr` directly ("Current addr: ... Expected addr: ... Address was
modified directly" and a WARN, as dev_addr_check says).  An offset and
length past MAX_ADDR_LEN is a BUG in Linux's memcpy fortification; here
it is refused with that WARN's stack.  Linux also keeps the address on the
device's address list (an rbtree of netdev_hw_addr): kloader keeps only the
address itself.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.panic import warn
from ...kernel.printk import KERN_WARNING
from . import net_device
from .net_device import MAX_ADDR_LEN, NET_DEVICE

STRUCTS = net_device.STRUCTS


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


@export("dev_addr_mod", "void dev_addr_mod(struct net_device *dev, unsigned int offset, "
        "const void *addr, size_t len)", nargs=4)
def dev_addr_mod(ctx: Any, dev: int, offset: int, addr: int, length: int) -> None:
    mem, layout = ctx.mem, ctx.kernel.layouts[NET_DEVICE]
    offset &= 0xFFFFFFFF
    if offset + length > MAX_ADDR_LEN:
        warn(ctx, f"dev_addr_mod: {offset} + {length} bytes past MAX_ADDR_LEN ({MAX_ADDR_LEN})",
             "net/core/dev_addr_lists.c", "dev_addr_mod")
        return
    address = mem.read_u64(dev + layout.dev_addr)
    current, shadow = mem.read(address, MAX_ADDR_LEN), mem.read(dev + layout.dev_addr_shadow, MAX_ADDR_LEN)
    if current != shadow:                   # dev_addr_check()
        name = net_device.net_devices(ctx.kernel).name(dev)
        ctx.kernel.log.emit(KERN_WARNING, f"{name}: Current addr:  {_hex(current)}", getattr(ctx.module, "name", None))
        ctx.kernel.log.emit(KERN_WARNING, f"{name}: Expected addr: {_hex(shadow)}", getattr(ctx.module, "name", None))
        warn(ctx, f"{name}: Address was modified directly", "net/core/dev_addr_lists.c", "dev_addr_mod")
    data = mem.read(addr, length)
    mem.write(address + offset, data)
    mem.write(dev + layout.dev_addr_shadow + offset, data)
