"""Platform devices (Linux's drivers/base/platform.c): the bus of devices
no hardware enumerates, which modules declare themselves.

`platform_device_alloc` + `platform_device_add` (or `platform_device_register`
of a device in module memory, or `platform_device_register_full` — the
header's `platform_device_register_simple` and `_resndata`) add a device
named "NAME" (id -1), "NAME.ID", or "NAME.N.auto" (PLATFORM_DEVID_AUTO),
under /sys/devices/platform/, linked from /sys/bus/platform/devices/.
It binds to a platform driver whose `id_table` lists its name, else whose
driver name is its name (`driver_override` first), and the driver's `probe`
runs; `platform_device_del` (and `_unregister`) unbinds it: `remove` (or
6.1's `remove_new`) runs and its managed resources go.  A device
`platform_device_alloc` made is freed by its last `platform_device_put`;
a device in module memory needs a `release` (Linux's "does not have a
release() function" otherwise).

`platform_get_irq` of a device without that IRQ resource is Linux's
"error -ENXIO: IRQ index N not found" and -ENXIO; `platform_get_resource`
is NULL.  Devices a module added and did not delete when it is freed are
leaked registrations.

Layouts (6.1): platform_device {name@0, id@8, id_auto@12, dev@16,
num_resources@784, resource@792, id_entry@800, driver_override@808} 824
bytes; platform_driver {probe@0, remove@8, remove_new@16, driver@48,
id_table@192}; platform_device_id {name[20]@0, driver_data@24} 32;
platform_device_info {parent@0, name@24, id@32, res@40, num_res@48,
data@56, size_data@64} 88; resource {start@0, end@8, name@16, flags@24} 64.
"""

from __future__ import annotations

import errno
import itertools
from typing import TYPE_CHECKING, Any

from ...kernel.api import at_boot, export
from ...kernel.printk import KERN_ERR, KERN_WARNING
from ...lib.kobject import kobjects
from .core import (BUS, device_name, DEV_PARENT, DEV_PLATFORM_DATA, INIT_NAME, add_device,
                   del_device, devices, put_device, _then_put)
from .dd import BUS_OPS, BusOps
from .driver import Buses

if TYPE_CHECKING:
    from ...kernel.kernel import Kernel

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

PDEV_NAME, PDEV_ID, PDEV_ID_AUTO, PDEV_DEV = 0, 8, 12, 16
PDEV_NUM_RESOURCES, PDEV_RESOURCE, PDEV_ID_ENTRY, PDEV_DRIVER_OVERRIDE = 784, 792, 800, 808
PDEV_SIZE = 824
PDRV_PROBE, PDRV_REMOVE, PDRV_REMOVE_NEW, PDRV_DRIVER, PDRV_ID_TABLE = 0, 8, 16, 48, 192
ID_SIZE, ID_NAME_SIZE = 32, 20
INFO_PARENT, INFO_NAME, INFO_ID, INFO_RES, INFO_NUM_RES, INFO_DATA, INFO_SIZE_DATA = 0, 24, 32, 40, 48, 56, 64
RES_START, RES_END, RES_NAME, RES_FLAGS = 0, 8, 16, 24
RESOURCE_SIZE = 64
IORESOURCE_TYPE_BITS, IORESOURCE_MEM, IORESOURCE_IRQ = 0x1F00, 0x200, 0x400
PLATFORM_DEVID_NONE, PLATFORM_DEVID_AUTO = -1, -2
MAX_ERRNO = 4095
MAX_ID_ENTRIES = 1024
_MASK64 = (1 << 64) - 1


def _cstr(kernel: "Kernel", ptr: int, limit: int = 256) -> str:
    return kernel.mem.read_cstr(ptr, limit).decode("utf-8", "replace") if ptr else ""


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


class PlatformBus(BusOps):
    def match(self, kernel: "Kernel", dev: int, drv: int) -> bool:
        """platform_match: driver_override, then the id_table, then the name."""
        mem = kernel.mem
        pdev, pdrv = dev - PDEV_DEV, drv - PDRV_DRIVER
        name = _cstr(kernel, mem.read_u64(pdev + PDEV_NAME))
        override = mem.read_u64(pdev + PDEV_DRIVER_OVERRIDE)
        drv_name = _cstr(kernel, mem.read_u64(drv))
        if override:
            return _cstr(kernel, override) == drv_name
        table = mem.read_u64(pdrv + PDRV_ID_TABLE)
        if table:
            for i in range(MAX_ID_ENTRIES):
                entry = table + i * ID_SIZE
                id_name = mem.read_cstr(entry, ID_NAME_SIZE).decode("utf-8", "replace")
                if not id_name:
                    return False
                if id_name == name:
                    mem.write_u64(pdev + PDEV_ID_ENTRY, entry)
                    return True
            return False
        return name == drv_name

    def probe(self, kernel: "Kernel", dev: int, drv: int) -> tuple[int, int] | None:
        fn = kernel.mem.read_u64(drv - PDRV_DRIVER + PDRV_PROBE)
        return (fn, dev - PDEV_DEV) if fn else None

    def remove(self, kernel: "Kernel", dev: int, drv: int) -> tuple[int, int] | None:
        pdrv = drv - PDRV_DRIVER
        fn = kernel.mem.read_u64(pdrv + PDRV_REMOVE_NEW) or kernel.mem.read_u64(pdrv + PDRV_REMOVE)
        return (fn, dev - PDEV_DEV) if fn else None

    def removed(self, kernel: "Kernel", dev: int, result: int) -> None:
        if result and not kernel.mem.read_u64(kernel.mem.read_u64(dev + 104) - PDRV_DRIVER + PDRV_REMOVE_NEW):
            kernel.log.emit(KERN_WARNING, f"platform {device_name(kernel, dev)}: remove callback returned a "
                                          "non-zero value. This will be ignored.", None)


BUS_OPS["platform"] = PlatformBus()


class Platform:
    """/sys/devices/platform and the automatic ids."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.root = kobjects(kernel).kernel_kobject("platform", devices(kernel).root)
        self.auto_ids = itertools.count(0)
        self.allocated: set[int] = set()


def platform(kernel: "Kernel") -> Platform:
    return kernel.subsystem(Platform)


@at_boot
def _sys_devices_platform(kernel: "Kernel") -> None:
    platform(kernel)


def _release_allocated(kernel: "Kernel") -> Any:
    def release(dev: int) -> None:                      # platform_device_release
        pdev = dev - PDEV_DEV
        mem = kernel.mem
        kernel.slab.free(mem.read_u64(dev + DEV_PLATFORM_DATA), None)
        kernel.slab.free(mem.read_u64(pdev + PDEV_RESOURCE), None)
        kernel.slab.free(mem.read_u64(pdev + PDEV_DRIVER_OVERRIDE), None)
        platform(kernel).allocated.discard(pdev)
        kernel.slab.free(pdev, None)
    return release


def alloc_device(ctx: Any, name: int, pid: int) -> int:
    """platform_device_alloc: the device and a copy of its name, in one allocation."""
    kernel = ctx.kernel
    text = ctx.mem.read_cstr(name, 256) if name else b""
    pdev = kernel.slab.alloc(PDEV_SIZE + len(text) + 1, getattr(ctx.module, "name", None), zero=True)
    if not pdev:
        return 0
    ctx.mem.write(pdev + PDEV_SIZE, text + b"\0")
    ctx.mem.write_u64(pdev + PDEV_NAME, pdev + PDEV_SIZE)
    ctx.mem.write_u32(pdev + PDEV_ID, pid & 0xFFFFFFFF)
    table = devices(kernel)
    table.initialize(pdev + PDEV_DEV)
    table.of(pdev + PDEV_DEV).kernel_release = _release_allocated(kernel)
    platform(kernel).allocated.add(pdev)
    return pdev


def add_platform_device(ctx: Any, pdev: int) -> Any:
    """platform_device_add: its name, parent and bus, then device_add."""
    kernel, mem = ctx.kernel, ctx.mem
    if not pdev:
        return -errno.EINVAL
    dev = pdev + PDEV_DEV
    if not mem.read_u64(dev + DEV_PARENT):
        mem.write_u64(dev + DEV_PARENT, 0)
    mem.write_u64(dev + BUS, kernel.subsystem(Buses).bus(ctx, "platform"))
    name = _cstr(kernel, mem.read_u64(pdev + PDEV_NAME))
    pid = _signed32(mem.read_u32(pdev + PDEV_ID))
    if pid == PLATFORM_DEVID_AUTO:
        pid = next(platform(kernel).auto_ids)
        mem.write_u32(pdev + PDEV_ID, pid)
        mem.write_u8(pdev + PDEV_ID_AUTO, 1)
        full = f"{name}.{pid}.auto"
    elif pid == PLATFORM_DEVID_NONE:
        full = name
    else:
        full = f"{name}.{pid}"
    kobjects(kernel).set_name(dev, full.encode(), None)
    mem.write_u64(dev + INIT_NAME, 0)
    return add_device(ctx, dev, parent_kobj=mem.read_u64(dev + DEV_PARENT) or platform(kernel).root)


def _err_ptr(code: int) -> int:
    return (-code) & _MASK64


@export("platform_device_alloc", "struct platform_device *platform_device_alloc(const char *name, int id)",
        nargs=2)
def platform_device_alloc(ctx: Any, name: int, pid: int) -> int:
    return alloc_device(ctx, name, pid)


@export("platform_device_add", "int platform_device_add(struct platform_device *pdev)", nargs=1, gpl=True)
def platform_device_add(ctx: Any, pdev: int) -> Any:
    return add_platform_device(ctx, pdev)


@export("platform_device_register", "int platform_device_register(struct platform_device *pdev)", nargs=1,
        gpl=True)
def platform_device_register(ctx: Any, pdev: int) -> Any:
    devices(ctx.kernel).initialize(pdev + PDEV_DEV)
    return add_platform_device(ctx, pdev)


@export("platform_device_del", "void platform_device_del(struct platform_device *pdev)", nargs=1, gpl=True)
def platform_device_del(ctx: Any, pdev: int) -> Any:
    return del_device(ctx, pdev + PDEV_DEV) if pdev and pdev < _err_ptr(MAX_ERRNO) else 0


@export("platform_device_put", "void platform_device_put(struct platform_device *pdev)", nargs=1)
def platform_device_put(ctx: Any, pdev: int) -> Any:
    return put_device(ctx, pdev + PDEV_DEV) if pdev and pdev < _err_ptr(MAX_ERRNO) else 0


@export("platform_device_unregister", "void platform_device_unregister(struct platform_device *pdev)",
        nargs=1)
def platform_device_unregister(ctx: Any, pdev: int) -> Any:
    if not pdev or pdev >= _err_ptr(MAX_ERRNO):
        return 0
    return _then_put(ctx, pdev + PDEV_DEV, del_device(ctx, pdev + PDEV_DEV))


def _copy(ctx: Any, src: int, size: int) -> int:
    ptr = ctx.kernel.slab.alloc(size, getattr(ctx.module, "name", None))
    if ptr:
        ctx.mem.write(ptr, ctx.mem.read(src, size))
    return ptr


@export("platform_device_add_resources", "int platform_device_add_resources(struct platform_device *pdev, "
        "const struct resource *res, unsigned int num)", nargs=3)
def platform_device_add_resources(ctx: Any, pdev: int, res: int, num: int) -> int:
    num &= 0xFFFFFFFF
    copy = _copy(ctx, res, num * RESOURCE_SIZE) if res and num else 0
    if res and num and not copy:
        return -errno.ENOMEM
    ctx.kernel.slab.free(ctx.mem.read_u64(pdev + PDEV_RESOURCE), None)
    ctx.mem.write_u64(pdev + PDEV_RESOURCE, copy)
    ctx.mem.write_u32(pdev + PDEV_NUM_RESOURCES, num if copy else 0)
    return 0


@export("platform_device_add_data", "int platform_device_add_data(struct platform_device *pdev, "
        "const void *data, size_t size)", nargs=3)
def platform_device_add_data(ctx: Any, pdev: int, data: int, size: int) -> int:
    copy = _copy(ctx, data, size) if data and size else 0
    if data and size and not copy:
        return -errno.ENOMEM
    dev = pdev + PDEV_DEV
    ctx.kernel.slab.free(ctx.mem.read_u64(dev + DEV_PLATFORM_DATA), None)
    ctx.mem.write_u64(dev + DEV_PLATFORM_DATA, copy)
    return 0


@export("platform_device_register_full", "struct platform_device *platform_device_register_full("
        "const struct platform_device_info *pdevinfo)", nargs=1, gpl=True)
def platform_device_register_full(ctx: Any, info: int) -> Any:
    mem = ctx.mem
    pdev = alloc_device(ctx, mem.read_u64(info + INFO_NAME), mem.read_u32(info + INFO_ID))
    if not pdev:
        return _err_ptr(errno.ENOMEM)
    mem.write_u64(pdev + PDEV_DEV + DEV_PARENT, mem.read_u64(info + INFO_PARENT))
    ret = platform_device_add_resources(ctx, pdev, mem.read_u64(info + INFO_RES),
                                        mem.read_u32(info + INFO_NUM_RES))
    if not ret:
        ret = platform_device_add_data(ctx, pdev, mem.read_u64(info + INFO_DATA),
                                       mem.read_u64(info + INFO_SIZE_DATA))
    if ret:
        put_device(ctx, pdev + PDEV_DEV)
        return _err_ptr(-ret)
    added = add_platform_device(ctx, pdev)

    def finish(result: int) -> int:
        if result:
            put_device(ctx, pdev + PDEV_DEV)
            return _err_ptr(-result)
        return pdev
    if hasattr(added, "__await__"):
        async def adding() -> int:
            return finish(await added)
        return adding()
    return finish(added)


def _resource(ctx: Any, pdev: int, kind: int, num: int) -> int:
    mem = ctx.mem
    base = mem.read_u64(pdev + PDEV_RESOURCE)
    for i in range(mem.read_u32(pdev + PDEV_NUM_RESOURCES)):
        res = base + i * RESOURCE_SIZE
        if mem.read_u64(res + RES_FLAGS) & IORESOURCE_TYPE_BITS == kind:
            if num == 0:
                return res
            num -= 1
    return 0


@export("platform_get_resource", "struct resource *platform_get_resource(struct platform_device *dev, "
        "unsigned int type, unsigned int num)", nargs=3, gpl=True)
def platform_get_resource(ctx: Any, pdev: int, kind: int, num: int) -> int:
    return _resource(ctx, pdev, kind & 0xFFFFFFFF, num & 0xFFFFFFFF)


@export("platform_get_irq_optional", "int platform_get_irq_optional(struct platform_device *dev, "
        "unsigned int num)", nargs=2, gpl=True)
def platform_get_irq_optional(ctx: Any, pdev: int, num: int) -> int:
    res = _resource(ctx, pdev, IORESOURCE_IRQ, num & 0xFFFFFFFF)
    return ctx.mem.read_u64(res + RES_START) & 0x7FFFFFFF if res else -errno.ENXIO


@export("platform_get_irq", "int platform_get_irq(struct platform_device *dev, unsigned int num)", nargs=2,
        gpl=True)
def platform_get_irq(ctx: Any, pdev: int, num: int) -> int:
    ret = platform_get_irq_optional(ctx, pdev, num)
    if ret < 0:
        ctx.kernel.log.emit(KERN_ERR, f"platform {device_name(ctx.kernel, pdev + PDEV_DEV)}: error -ENXIO: IRQ "
                                      f"index {num & 0xFFFFFFFF} not found", getattr(ctx.module, "name", None))
    return ret


@export("devm_platform_get_and_ioremap_resource", "void __iomem *devm_platform_get_and_ioremap_resource("
        "struct platform_device *pdev, unsigned int index, struct resource **res)", nargs=3, gpl=True)
def devm_platform_get_and_ioremap_resource(ctx: Any, pdev: int, index: int, res: int) -> Any:
    from ...arch.x86.ioremap import ioremap_resource
    found = _resource(ctx, pdev, IORESOURCE_MEM, index & 0xFFFFFFFF)
    if res:
        ctx.mem.write_u64(res, found)
    return ioremap_resource(ctx, pdev + PDEV_DEV, found)


@export("devm_platform_ioremap_resource", "void __iomem *devm_platform_ioremap_resource("
        "struct platform_device *pdev, unsigned int index)", nargs=2, gpl=True)
def devm_platform_ioremap_resource(ctx: Any, pdev: int, index: int) -> Any:
    return devm_platform_get_and_ioremap_resource(ctx, pdev, index, 0)
