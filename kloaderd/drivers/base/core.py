"""drivers/base/core.c: the dev_printk family (`_dev_err`, `_dev_info`, …)
and the names it prints.

As Linux 6.1: a message about a device is "DRIVER DEVNAME: message" at the
function's level, DRIVER being the bound driver's name, else the bus's, else
the class's, else empty (dev_driver_string), and DEVNAME the device's
init_name, else its kobject's name (dev_name); about a NULL device it is
"(NULL device *): message".  Linux also attaches SUBSYSTEM/DEVICE
dictionary fields to the record; kloader's log has no dictionaries.  Layout:
device {kobj.name@0, init_name@80, bus@96, driver@104, class@680};
device_driver.name@0, bus_type.name@0, class.name@0.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.api.printk import format_guest

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

KOBJ_NAME, INIT_NAME, BUS, DRIVER, CLASS = 0, 80, 96, 104, 680
LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warn": 4, "notice": 5, "info": 6}


def _string(ctx: Any, ptr: int) -> str:
    return ctx.mem.read_cstr(ptr, 256).decode("utf-8", "replace") if ptr else ""


def driver_string(ctx: Any, dev: int) -> str:
    mem = ctx.mem
    for field in (DRIVER, BUS, CLASS):
        obj = mem.read_u64(dev + field)
        if obj:
            return _string(ctx, mem.read_u64(obj))     # ->name is the first member
    return ""


def dev_name(ctx: Any, dev: int) -> str:
    init_name = ctx.mem.read_u64(dev + INIT_NAME)
    return _string(ctx, init_name or ctx.mem.read_u64(dev + KOBJ_NAME))


def dev_printk(ctx: Any, level: int, dev: int, fmt: int) -> int:
    text = format_guest(ctx, fmt, ctx.va())[0]
    prefix = "(NULL device *): " if not dev else f"{driver_string(ctx, dev)} {dev_name(ctx, dev)}: "
    record = b"\x01" + str(level).encode() + prefix.encode() + text
    return ctx.kernel.log.printk(record, getattr(ctx.module, "name", None))


def _export_level(name: str, level: int) -> None:
    function = f"_dev_{name}"

    def impl(ctx: Any, dev: int, fmt: int) -> int:
        return dev_printk(ctx, level, dev, fmt)
    impl.__name__ = impl.__qualname__ = function
    export(function, f"void {function}(const struct device *dev, const char *fmt, ...)",
           nargs=2, variadic=True)(impl)


for _name, _level in LEVELS.items():
    _export_level(_name, _level)


@export("dev_driver_string", "const char *dev_driver_string(const struct device *dev)", nargs=1)
def dev_driver_string(ctx: Any, dev: int) -> int:
    """The pointer dev_printk prints from: the driver's, bus's or class's name."""
    mem = ctx.mem
    for field in (DRIVER, BUS, CLASS):
        obj = mem.read_u64(dev + field)
        if obj:
            return mem.read_u64(obj)
    return ctx.kernel.subsystem(EmptyString).address


class EmptyString:
    """The "" dev_driver_string returns for a device with neither."""

    def __init__(self, kernel: Any) -> None:
        self.address = kernel.slab.alloc(1, None, zero=True)
