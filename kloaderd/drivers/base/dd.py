"""Binding devices to drivers (Linux's drivers/base/dd.c and bus.c's attach
and detach): `probe` and `remove` called as the driver core calls them.

A device added to a bus is offered to the bus's drivers in registration
order (`bus_probe_device`), a driver registered on a bus is offered every
device of the bus without a driver (`driver_attach`); the bus's `match`
decides, and `really_probe` sets `dev->driver`, calls the bus's probe (the
platform bus: `platform_driver.probe(pdev)`), and on failure releases the
device's managed resources and clears `dev->driver` and its drvdata:
-ENODEV and -ENXIO quietly (the driver "rejects the match"),
-EPROBE_DEFER as a deferral, anything else with Linux's "probe with driver
NAME failed with error N".  `device_release_driver` — for
`device_del`, and for every bound device when its driver is unregistered —
calls `remove`, then releases the managed resources (devres.py).

Probe and remove of one device are serialised by its device_lock.  The
driver core takes no module reference for a binding, as Linux: unloading
a driver's module unregisters the driver, which unbinds its devices first.
Modules of other buses (PCI, USB, ...) have no devices here: registering
their drivers binds nothing, as on a machine without that hardware.
`bus_for_each_drv`/`bus_for_each_dev` walk a bus's drivers/devices in
registration order (hid's drivers rescan their bus as they register).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Callable

from ...kernel.api import export
from ...kernel.printk import KERN_ERR
from .core import DEVICE, DRIVER, STRUCTS as CORE_STRUCTS, device_name, devices
from .devres import devres

STRUCTS = CORE_STRUCTS          # what these functions read at the kernel's offsets

if TYPE_CHECKING:
    from ...kernel.kernel import Kernel


EPROBE_DEFER = 517


class BusOps:
    """A bus's match, probe and remove; the default is the driver's own
    (device_driver.probe(dev) / .remove(dev))."""

    def match(self, kernel: "Kernel", dev: int, drv: int) -> bool:
        return True

    def probe(self, kernel: "Kernel", dev: int, drv: int) -> tuple[int, int] | None:
        driver_off = kernel.layouts[DRIVER]
        fn = kernel.mem.read_u64(drv + driver_off.probe)
        return (fn, dev) if fn else None

    def remove(self, kernel: "Kernel", dev: int, drv: int) -> tuple[int, int] | None:
        driver_off = kernel.layouts[DRIVER]
        fn = kernel.mem.read_u64(drv + driver_off.remove)
        return (fn, dev) if fn else None

    def removed(self, kernel: "Kernel", dev: int, result: int) -> None:
        """What the bus says of remove's result (platform: a non-zero one is ignored)."""


BUS_OPS: dict[str, BusOps] = {}


def bus_ops(kernel: "Kernel", bus: int) -> BusOps:
    name = kernel.mem.read_cstr(kernel.mem.read_u64(bus), 64).decode() if bus else ""
    return BUS_OPS.get(name, BusOps())


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def _drivers_of(kernel: "Kernel", bus: int) -> list[int]:
    return [e.address for e in kernel.registrations.registry("driver").entries() if e.key[0] == bus]


def _comm(kernel: "Kernel") -> str:
    return getattr(kernel.machine.current, "comm", "kworker/0:1")


async def _call(kernel: "Kernel", call: tuple[int, int] | None, via: str, comm: str) -> int:
    if call is None:
        return 0
    return await kernel.sanitizer.call_pointer(*call, via=via, comm=comm, check=False)


async def really_probe(kernel: "Kernel", dev: int, drv: int, comm: str) -> int:
    device_off = kernel.layouts[DEVICE]
    driver_off = kernel.layouts[DRIVER]
    mem = kernel.mem
    ops = bus_ops(kernel, mem.read_u64(dev + device_off.bus))
    mem.write_u64(dev + device_off.driver, drv)
    try:
        ret = _signed32(await _call(kernel, ops.probe(kernel, dev, drv), "really_probe", comm))
    except Exception:
        ret = -errno.EFAULT            # it oopsed: logged; the binding fails
    if ret == 0:
        devices(kernel).of(dev).driver = drv
        return 0
    name = mem.read_cstr(mem.read_u64(drv + driver_off.name), 64).decode("utf-8", "replace")
    if ret not in (-errno.ENODEV, -errno.ENXIO, -EPROBE_DEFER):
        kernel.log.emit(KERN_ERR, f"{name} {device_name(kernel, dev)}: probe with driver {name} failed with "
                                  f"error {ret}", None)
    await devres(kernel).release_all(dev)
    mem.write_u64(dev + device_off.driver, 0)
    mem.write_u64(dev + device_off.driver_data, 0)
    return ret


def _sleeping(work: Callable[[], Any]) -> Any:
    async def running() -> int:
        await work()
        return 0
    return running()


def probe_device(ctx: Any, dev: int) -> Any:
    """bus_probe_device: 0 when no driver of its bus matches, else the probe to run."""
    device_off = ctx.kernel.layouts[DEVICE]
    kernel, mem = ctx.kernel, ctx.mem
    bus = mem.read_u64(dev + device_off.bus)
    if not bus:
        return 0
    ops = bus_ops(kernel, bus)
    candidates = [drv for drv in _drivers_of(kernel, bus) if ops.match(kernel, dev, drv)]
    if not candidates:
        return 0
    comm = ctx.task.comm

    async def attach() -> None:
        async with devices(kernel).of(dev).lock:
            for drv in candidates:
                if mem.read_u64(dev + device_off.driver):
                    break
                if await really_probe(kernel, dev, drv, comm) == 0:
                    break
    return _sleeping(attach)


def attach_driver(ctx: Any, drv: int) -> Any:
    """driver_attach: the driver offered every device of its bus without one."""
    device_off = ctx.kernel.layouts[DEVICE]
    driver_off = ctx.kernel.layouts[DRIVER]
    kernel, mem = ctx.kernel, ctx.mem
    bus = mem.read_u64(drv + driver_off.bus)
    ops = bus_ops(kernel, bus)
    table = devices(kernel)
    candidates = [d for d, rec in table.known.items() if rec.added and mem.read_u64(d + device_off.bus) == bus
                  and not mem.read_u64(d + device_off.driver) and ops.match(kernel, d, drv)]
    if not candidates:
        return 0
    comm = ctx.task.comm

    async def attach() -> None:
        for dev in candidates:
            async with table.of(dev).lock:
                if not mem.read_u64(dev + device_off.driver):
                    await really_probe(kernel, dev, drv, comm)
    return _sleeping(attach)


async def release_driver(kernel: "Kernel", dev: int) -> None:
    """device_release_driver: remove, then the managed resources."""
    device_off = kernel.layouts[DEVICE]
    mem = kernel.mem
    table = devices(kernel)
    async with table.of(dev).lock:
        drv = mem.read_u64(dev + device_off.driver)
        if not drv:
            return
        ops = bus_ops(kernel, mem.read_u64(dev + device_off.bus))
        try:
            result = await _call(kernel, ops.remove(kernel, dev, drv), "device_remove", _comm(kernel))
            ops.removed(kernel, dev, _signed32(result))
        except Exception:
            pass                        # an oops is logged; the unbinding goes on
        await devres(kernel).release_all(dev)
        mem.write_u64(dev + device_off.driver, 0)
        mem.write_u64(dev + device_off.driver_data, 0)
        table.of(dev).driver = 0


def detach_driver(kernel: "Kernel", drv: int) -> Any:
    """driver_detach: None if no device is bound to it, else the unbinding to run."""
    device_off = kernel.layouts[DEVICE]
    bound = [d for d in devices(kernel).known if kernel.mem.read_u64(d + device_off.driver) == drv]
    if not bound:
        return None

    async def detach() -> None:
        for dev in reversed(bound):
            await release_driver(kernel, dev)
    return detach()


def unbind_leftover(kernel: "Kernel", drv: int) -> None:
    """A driver whose module is being freed is still registered: its
    devices are unbound without calling its (gone) remove."""
    device_off = kernel.layouts[DEVICE]
    for dev in list(devices(kernel).known):
        if kernel.mem.read_u64(dev + device_off.driver) == drv:
            devres(kernel).release_now(dev)
            kernel.mem.write_u64(dev + device_off.driver, 0)
            kernel.mem.write_u64(dev + device_off.driver_data, 0)


def _devices_of(kernel: "Kernel", bus: int) -> list[int]:
    device_off = kernel.layouts[DEVICE]
    mem = kernel.mem
    return [d for d, rec in devices(kernel).known.items() if rec.added and mem.read_u64(d + device_off.bus) == bus]


def _for_each(ctx: Any, items: list[int], start: int, data: int, fn: int) -> Any:
    """bus_for_each_drv / bus_for_each_dev: fn(item, data) for each item after
    `start`, in registration order, until one returns non-zero (returned)."""
    if start:
        items = items[items.index(start) + 1:] if start in items else []
    if not items:
        return 0

    async def walking() -> int:
        from ...kernel.callback import call_module_code
        for item in items:
            ret = _signed32(await call_module_code(ctx, fn, item, data))
            if ret:
                return ret
        return 0
    return walking()


@export("bus_for_each_drv", "int bus_for_each_drv(struct bus_type *bus, struct device_driver *start, "
        "void *data, int (*fn)(struct device_driver *, void *))", nargs=4, gpl=True)
def bus_for_each_drv(ctx: Any, bus: int, start: int, data: int, fn: int) -> Any:
    if not bus:
        return -errno.EINVAL
    return _for_each(ctx, _drivers_of(ctx.kernel, bus), start, data, fn)


@export("bus_for_each_dev", "int bus_for_each_dev(struct bus_type *bus, struct device *start, void *data, "
        "int (*fn)(struct device *dev, void *data))", nargs=4, gpl=True)
def bus_for_each_dev(ctx: Any, bus: int, start: int, data: int, fn: int) -> Any:
    if not bus:
        return -errno.EINVAL
    return _for_each(ctx, _devices_of(ctx.kernel, bus), start, data, fn)


@export("bus_rescan_devices", "int bus_rescan_devices(struct bus_type *bus)", nargs=1, gpl=True)
def bus_rescan_devices(ctx: Any, bus: int) -> Any:
    """Every device of the bus without a driver is offered to the drivers again."""
    device_off = ctx.kernel.layouts[DEVICE]
    pending = [probe_device(ctx, dev) for dev in _devices_of(ctx.kernel, bus)
               if not ctx.mem.read_u64(dev + device_off.driver)]
    pending = [p for p in pending if p != 0]
    if not pending:
        return 0

    async def rescanning() -> int:
        for probe in pending:
            await probe
        return 0
    return rescanning()
