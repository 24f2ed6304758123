"""drivers/virtio/virtio.c: virtio drivers on the virtio bus.

Where virtio is built into the kernel (Debian's 6.12 cloud kernels,
CONFIG_VIRTIO=y) its drivers register through vmlinux's
`__register_virtio_driver(drv, THIS_MODULE)`: the driver's
`struct device_driver` gets the virtio bus and its owner and is registered
as any other driver (drivers/base/driver.py), binding to no device — the
machine has no virtio transport (no virtio PCI or MMIO device), as a
machine without virtio devices has none.  `unregister_virtio_driver`
unregisters it.  Where virtio is a module (6.1: virtio.ko registers the
bus and exports `register_virtio_driver`) the module's own code runs.

Where kloader differs: Linux's BUG_ON for a feature table size without a
table is not checked (no device ever negotiates features here).
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ..base.driver import STRUCTS as DRIVER_STRUCTS, driver_unregister, register_on

VIRTIO_DRV = struct("struct virtio_driver", "linux/virtio.h", "driver")
STRUCTS = (*DRIVER_STRUCTS, VIRTIO_DRV)


@export("__register_virtio_driver", "int __register_virtio_driver(struct virtio_driver *drv, "
        "struct module *owner)", nargs=2, gpl=True)
def __register_virtio_driver(ctx: Any, drv: int, owner: int) -> int:
    return register_on(ctx, drv + ctx.kernel.layouts[VIRTIO_DRV].driver, "virtio", owner)


@export("unregister_virtio_driver", "void unregister_virtio_driver(struct virtio_driver *drv)", nargs=1,
        gpl=True)
def unregister_virtio_driver(ctx: Any, drv: int) -> Any:
    return driver_unregister(ctx, drv + ctx.kernel.layouts[VIRTIO_DRV].driver)
