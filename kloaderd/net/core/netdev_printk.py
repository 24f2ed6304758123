"""net/core/dev.c: `netdev_printk` and `netdev_emerg` … `netdev_info`, a
network driver's messages about one of its devices.

As Linux for a device without a parent (every virtual device: bonds,
tunnels, dummies): "NAME STATE: message", NAME being "(unnamed
net_device)" while the name is empty or still a "%d" template, STATE ""
when registered, else " (uninitialized)", " (unregistering)",
" (unregistered)", " (released)" or " (dummy)"; a NULL device is
"(NULL net_device): message".  A device with a parent would be prefixed
with its parent's driver and device names through dev_printk: kloader's
devices bind to no hardware, so that form is not emulated (reported, not
guessed).
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.api.printk import format_guest
from ...kernel.oops import NotEmulated
from .net_device import IFNAMSIZ, NET_DEVICE, net_devices

STRUCTS = (NET_DEVICE,)
STATES = (" (uninitialized)", "", " (unregistering)", " (unregistered)", " (released)", " (dummy)")
LEVELS = {"netdev_emerg": b"\x010", "netdev_alert": b"\x011", "netdev_crit": b"\x012",
          "netdev_err": b"\x013", "netdev_warn": b"\x014", "netdev_notice": b"\x015",
          "netdev_info": b"\x016"}


def _prefix(ctx: Any, dev: int) -> bytes:
    if not dev:
        return b"(NULL net_device)"
    if ctx.mem.read_u64(dev + ctx.kernel.layouts[NET_DEVICE].dev_parent):
        raise NotEmulated("netdev_printk of a device with a parent device")
    devs = net_devices(ctx.kernel)
    name = ctx.mem.read_cstr(dev + devs.layout.name, IFNAMSIZ)
    if not name or b"%" in name:
        name = b"(unnamed net_device)"
    state = devs.reg_state(dev)
    return name + (STATES[state] if state < len(STATES) else " (unknown)").encode()


def _emit(ctx: Any, level: bytes, dev: int, fmt: int, args: Any) -> int:
    message = format_guest(ctx, fmt, args)[0]
    ctx.kernel.log.printk(level + _prefix(ctx, dev) + b": " + message,
                          ctx.module.name if ctx.module is not None else None)
    return 0


@export("netdev_printk", "void netdev_printk(const char *level, const struct net_device *dev, "
        "const char *format, ...)", nargs=3, variadic=True)
def netdev_printk(ctx: Any, level: int, dev: int, fmt: int) -> int:
    return _emit(ctx, ctx.mem.read_cstr(level, 8), dev, fmt, ctx.va())


def _leveled(name: str) -> None:
    def impl(ctx: Any, dev: int, fmt: int) -> int:
        return _emit(ctx, LEVELS[name], dev, fmt, ctx.va())
    impl.__name__ = impl.__qualname__ = name
    export(name, f"void {name}(const struct net_device *dev, const char *format, ...)", nargs=2,
           variadic=True)(impl)


for _name in LEVELS:
    _leveled(_name)
