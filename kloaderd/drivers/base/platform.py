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

Layouts: each kernel's own (kloaderd/kernel/layouts.py); 6.11 made `remove`
void (one member with `remove_new`), 6.12 moved `driver_override` into
struct device (not matched on there yet).
"""

from __future__ import annotations

import errno
import itertools
from typing import TYPE_CHECKING, Any

from ...kernel.api import at_boot, export
from ...kernel.layouts import struct
from ...kernel.printk import KERN_ERR, KERN_WARNING
from ...kernel.resource import RESOURCE
from ...lib.kobject import kobjects
from .core import DEVICE, _then_put, add_device, del_device, device_name, devices, put_device
from .dd import BUS_OPS, BusOps
from .driver import PDRV, STRUCTS as DRIVER_STRUCTS, Buses

if TYPE_CHECKING:
    from ...kernel.kernel import Kernel

PDEV = struct("struct platform_device", "linux/platform_device.h", "name", "id", "id_auto", "dev",
              "num_resources", "resource", "id_entry", optional=("driver_override",))
PDEV_INFO = struct("struct platform_device_info", "linux/platform_device.h", "parent", "name", "id", "res",
                   "num_res", "data", "size_data")
PDEV_ID = struct("struct platform_device_id", "linux/mod_devicetable.h", "name")
STRUCTS = (*DRIVER_STRUCTS, PDEV, PDEV_INFO, RESOURCE, PDEV_ID)

ID_NAME_SIZE = 20                       # PLATFORM_NAME_SIZE
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
        pdev_off = kernel.layouts[PDEV]
        id_off = kernel.layouts[PDEV_ID]
        pdrv_off = kernel.layouts[PDRV]
        mem = kernel.mem
        pdev, pdrv = dev - pdev_off.dev, drv - pdrv_off.driver
        name = _cstr(kernel, mem.read_u64(pdev + pdev_off.name))
        # 6.12 keeps driver_override in struct device: not matched on there (yet)
        override = mem.read_u64(pdev + pdev_off.driver_override) if pdev_off.driver_override is not None else 0
        drv_name = _cstr(kernel, mem.read_u64(drv))
        if override:
            return _cstr(kernel, override) == drv_name
        table = mem.read_u64(pdrv + pdrv_off.id_table)
        if table:
            for i in range(MAX_ID_ENTRIES):
                entry = table + i * id_off.size
                id_name = mem.read_cstr(entry, ID_NAME_SIZE).decode("utf-8", "replace")
                if not id_name:
                    return False
                if id_name == name:
                    mem.write_u64(pdev + pdev_off.id_entry, entry)
                    return True
            return False
        return name == drv_name

    def probe(self, kernel: "Kernel", dev: int, drv: int) -> tuple[int, int] | None:
        pdev_off = kernel.layouts[PDEV]
        pdrv_off = kernel.layouts[PDRV]
        fn = kernel.mem.read_u64(drv - pdrv_off.driver + pdrv_off.probe)
        return (fn, dev - pdev_off.dev) if fn else None

    def remove(self, kernel: "Kernel", dev: int, drv: int) -> tuple[int, int] | None:
        pdev_off = kernel.layouts[PDEV]
        pdrv_off = kernel.layouts[PDRV]
        pdrv = drv - pdrv_off.driver
        fn = kernel.mem.read_u64(pdrv + pdrv_off.remove_new) or kernel.mem.read_u64(pdrv + pdrv_off.remove)
        return (fn, dev - pdev_off.dev) if fn else None

    def removed(self, kernel: "Kernel", dev: int, result: int) -> None:
        pdrv_off = kernel.layouts[PDRV]
        drv = kernel.mem.read_u64(dev + kernel.layouts[DEVICE].driver)
        # 6.11 made .remove return void: the same member as .remove_new
        if pdrv_off.remove_new != pdrv_off.remove and result and \
                not kernel.mem.read_u64(drv - pdrv_off.driver + pdrv_off.remove_new):
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
    if all(kernel.layouts.has(s) for s in STRUCTS):      # else not emulated: no devices
        platform(kernel)


def _release_allocated(kernel: "Kernel") -> Any:
    device_off = kernel.layouts[DEVICE]
    pdev_off = kernel.layouts[PDEV]
    def release(dev: int) -> None:                      # platform_device_release
        pdev = dev - pdev_off.dev
        mem = kernel.mem
        kernel.slab.free(mem.read_u64(dev + device_off.platform_data), None)
        kernel.slab.free(mem.read_u64(pdev + pdev_off.resource), None)
        if pdev_off.driver_override is not None:
            kernel.slab.free(mem.read_u64(pdev + pdev_off.driver_override), None)
        platform(kernel).allocated.discard(pdev)
        kernel.slab.free(pdev, None)
    return release


def alloc_device(ctx: Any, name: int, pid: int) -> int:
    """platform_device_alloc: the device and a copy of its name, in one allocation."""
    pdev_off = ctx.kernel.layouts[PDEV]
    kernel = ctx.kernel
    text = ctx.mem.read_cstr(name, 256) if name else b""
    pdev = kernel.slab.alloc(pdev_off.size + len(text) + 1, getattr(ctx.module, "name", None), zero=True)
    if not pdev:
        return 0
    ctx.mem.write(pdev + pdev_off.size, text + b"\0")
    ctx.mem.write_u64(pdev + pdev_off.name, pdev + pdev_off.size)
    ctx.mem.write_u32(pdev + pdev_off.id, pid & 0xFFFFFFFF)
    table = devices(kernel)
    table.initialize(pdev + pdev_off.dev)
    table.of(pdev + pdev_off.dev).kernel_release = _release_allocated(kernel)
    platform(kernel).allocated.add(pdev)
    return pdev


def add_platform_device(ctx: Any, pdev: int) -> Any:
    """platform_device_add: its name, parent and bus, then device_add."""
    device_off = ctx.kernel.layouts[DEVICE]
    pdev_off = ctx.kernel.layouts[PDEV]
    kernel, mem = ctx.kernel, ctx.mem
    if not pdev:
        return -errno.EINVAL
    dev = pdev + pdev_off.dev
    if not mem.read_u64(dev + device_off.parent):
        mem.write_u64(dev + device_off.parent, 0)
    mem.write_u64(dev + device_off.bus, kernel.subsystem(Buses).bus(ctx, "platform"))
    name = _cstr(kernel, mem.read_u64(pdev + pdev_off.name))
    pid = _signed32(mem.read_u32(pdev + pdev_off.id))
    if pid == PLATFORM_DEVID_AUTO:
        pid = next(platform(kernel).auto_ids)
        mem.write_u32(pdev + pdev_off.id, pid)
        mem.write_u8(pdev + pdev_off.id_auto, 1)
        full = f"{name}.{pid}.auto"
    elif pid == PLATFORM_DEVID_NONE:
        full = name
    else:
        full = f"{name}.{pid}"
    kobjects(kernel).set_name(dev, full.encode(), None)
    mem.write_u64(dev + device_off.init_name, 0)
    return add_device(ctx, dev, parent_kobj=mem.read_u64(dev + device_off.parent) or platform(kernel).root)


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
    pdev_off = ctx.kernel.layouts[PDEV]
    devices(ctx.kernel).initialize(pdev + pdev_off.dev)
    return add_platform_device(ctx, pdev)


@export("platform_device_del", "void platform_device_del(struct platform_device *pdev)", nargs=1, gpl=True)
def platform_device_del(ctx: Any, pdev: int) -> Any:
    pdev_off = ctx.kernel.layouts[PDEV]
    return del_device(ctx, pdev + pdev_off.dev) if pdev and pdev < _err_ptr(MAX_ERRNO) else 0


@export("platform_device_put", "void platform_device_put(struct platform_device *pdev)", nargs=1)
def platform_device_put(ctx: Any, pdev: int) -> Any:
    pdev_off = ctx.kernel.layouts[PDEV]
    return put_device(ctx, pdev + pdev_off.dev) if pdev and pdev < _err_ptr(MAX_ERRNO) else 0


@export("platform_device_unregister", "void platform_device_unregister(struct platform_device *pdev)",
        nargs=1)
def platform_device_unregister(ctx: Any, pdev: int) -> Any:
    pdev_off = ctx.kernel.layouts[PDEV]
    if not pdev or pdev >= _err_ptr(MAX_ERRNO):
        return 0
    return _then_put(ctx, pdev + pdev_off.dev, del_device(ctx, pdev + pdev_off.dev))


def _copy(ctx: Any, src: int, size: int) -> int:
    ptr = ctx.kernel.slab.alloc(size, getattr(ctx.module, "name", None))
    if ptr:
        ctx.mem.write(ptr, ctx.mem.read(src, size))
    return ptr


@export("platform_device_add_resources", "int platform_device_add_resources(struct platform_device *pdev, "
        "const struct resource *res, unsigned int num)", nargs=3)
def platform_device_add_resources(ctx: Any, pdev: int, res: int, num: int) -> int:
    pdev_off = ctx.kernel.layouts[PDEV]
    res_off = ctx.kernel.layouts[RESOURCE]
    num &= 0xFFFFFFFF
    copy = _copy(ctx, res, num * res_off.size) if res and num else 0
    if res and num and not copy:
        return -errno.ENOMEM
    ctx.kernel.slab.free(ctx.mem.read_u64(pdev + pdev_off.resource), None)
    ctx.mem.write_u64(pdev + pdev_off.resource, copy)
    ctx.mem.write_u32(pdev + pdev_off.num_resources, num if copy else 0)
    return 0


@export("platform_device_add_data", "int platform_device_add_data(struct platform_device *pdev, "
        "const void *data, size_t size)", nargs=3)
def platform_device_add_data(ctx: Any, pdev: int, data: int, size: int) -> int:
    device_off = ctx.kernel.layouts[DEVICE]
    pdev_off = ctx.kernel.layouts[PDEV]
    copy = _copy(ctx, data, size) if data and size else 0
    if data and size and not copy:
        return -errno.ENOMEM
    dev = pdev + pdev_off.dev
    ctx.kernel.slab.free(ctx.mem.read_u64(dev + device_off.platform_data), None)
    ctx.mem.write_u64(dev + device_off.platform_data, copy)
    return 0


@export("platform_device_register_full", "struct platform_device *platform_device_register_full("
        "const struct platform_device_info *pdevinfo)", nargs=1, gpl=True)
def platform_device_register_full(ctx: Any, info: int) -> Any:
    device_off = ctx.kernel.layouts[DEVICE]
    pdev_off = ctx.kernel.layouts[PDEV]
    info_off = ctx.kernel.layouts[PDEV_INFO]
    mem = ctx.mem
    pdev = alloc_device(ctx, mem.read_u64(info + info_off.name), mem.read_u32(info + info_off.id))
    if not pdev:
        return _err_ptr(errno.ENOMEM)
    mem.write_u64(pdev + pdev_off.dev + device_off.parent, mem.read_u64(info + info_off.parent))
    ret = platform_device_add_resources(ctx, pdev, mem.read_u64(info + info_off.res),
                                        mem.read_u32(info + info_off.num_res))
    if not ret:
        ret = platform_device_add_data(ctx, pdev, mem.read_u64(info + info_off.data),
                                       mem.read_u64(info + info_off.size_data))
    if ret:
        put_device(ctx, pdev + pdev_off.dev)
        return _err_ptr(-ret)
    added = add_platform_device(ctx, pdev)

    def finish(result: int) -> int:
        if result:
            put_device(ctx, pdev + pdev_off.dev)
            return _err_ptr(-result)
        return pdev
    if hasattr(added, "__await__"):
        async def adding() -> int:
            return finish(await added)
        return adding()
    return finish(added)


def _resource(ctx: Any, pdev: int, kind: int, num: int) -> int:
    pdev_off = ctx.kernel.layouts[PDEV]
    res_off = ctx.kernel.layouts[RESOURCE]
    mem = ctx.mem
    base = mem.read_u64(pdev + pdev_off.resource)
    for i in range(mem.read_u32(pdev + pdev_off.num_resources)):
        res = base + i * res_off.size
        if mem.read_u64(res + res_off.flags) & IORESOURCE_TYPE_BITS == kind:
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
    res_off = ctx.kernel.layouts[RESOURCE]
    res = _resource(ctx, pdev, IORESOURCE_IRQ, num & 0xFFFFFFFF)
    return ctx.mem.read_u64(res + res_off.start) & 0x7FFFFFFF if res else -errno.ENXIO


@export("platform_get_irq", "int platform_get_irq(struct platform_device *dev, unsigned int num)", nargs=2,
        gpl=True)
def platform_get_irq(ctx: Any, pdev: int, num: int) -> int:
    pdev_off = ctx.kernel.layouts[PDEV]
    ret = platform_get_irq_optional(ctx, pdev, num)
    if ret < 0:
        ctx.kernel.log.emit(KERN_ERR, f"platform {device_name(ctx.kernel, pdev + pdev_off.dev)}: error -ENXIO: IRQ "
                                      f"index {num & 0xFFFFFFFF} not found", getattr(ctx.module, "name", None))
    return ret


@export("devm_platform_get_and_ioremap_resource", "void __iomem *devm_platform_get_and_ioremap_resource("
        "struct platform_device *pdev, unsigned int index, struct resource **res)", nargs=3, gpl=True)
def devm_platform_get_and_ioremap_resource(ctx: Any, pdev: int, index: int, res: int) -> Any:
    from ...arch.x86.ioremap import ioremap_resource
    found = _resource(ctx, pdev, IORESOURCE_MEM, index & 0xFFFFFFFF)
    if res:
        ctx.mem.write_u64(res, found)
    return ioremap_resource(ctx, pdev + ctx.kernel.layouts[PDEV].dev, found)


@export("devm_platform_ioremap_resource", "void __iomem *devm_platform_ioremap_resource("
        "struct platform_device *pdev, unsigned int index)", nargs=2, gpl=True)
def devm_platform_ioremap_resource(ctx: Any, pdev: int, index: int) -> Any:
    return devm_platform_get_and_ioremap_resource(ctx, pdev, index, 0)
