"""drivers/tty/serdev/core.c: serial device bus drivers
(`__serdev_device_driver_register`, what `module_serdev_device_driver`
and `serdev_device_driver_register` expand to).

The driver's `struct device_driver` gets the "serial" bus and its owner
(THIS_MODULE of the caller) and is registered as any other driver
(drivers/base/driver.py): it binds to no device, since the machine has no
serial controller for serdev to enumerate devices behind.  Unregistering
is the header's inline `driver_unregister(&sdrv->driver)`.

Where kloader differs: Linux points the driver's `shutdown` at its
serdev_drv_shutdown when the serdev driver has one; no device ever shuts
down here, so it is left as the module set it.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ..base.driver import STRUCTS as DRIVER_STRUCTS, register_on

SERDEV_DRV = struct("struct serdev_device_driver", "linux/serdev.h", "driver")
STRUCTS = (*DRIVER_STRUCTS, SERDEV_DRV)


@export("__serdev_device_driver_register", "int __serdev_device_driver_register(struct serdev_device_driver "
        "*sdrv, struct module *owner)", nargs=2, gpl=True)
def __serdev_device_driver_register(ctx: Any, sdrv: int, owner: int) -> int:
    return register_on(ctx, sdrv + ctx.kernel.layouts[SERDEV_DRV].driver, "serial", owner)
