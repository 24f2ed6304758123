"""drivers/base/{driver,bus}.c and the bus front ends (PCI, platform, ACPI):
registering drivers and buses.

kloader's machine has no PCI or ACPI devices, so registering such a driver
binds it to nothing and its probe never runs — exactly what Linux does on a
machine without a matching device.  Platform devices are the ones modules
declare (platform.py): a platform driver binds to them, its probe runs,
and unregistering it unbinds them first (remove runs; dd.py).  What registration does is
real and visible: the `struct device_driver` inside the module's driver is
filled in as Linux fills it (name, bus, owner, mod_name, and `p`, the
driver-core private data, a kernel allocation), the driver is recorded per
bus in the "driver" registry (shown in module_info; a driver left registered
by a freed module is reported and unregistered), and a second driver of
the same name on the same bus is refused as Linux refuses it ("Error: Driver
'%s' is already registered, aborting..." and -EBUSY).

Buses registered by modules (`bus_register`, e.g. virtio.ko's virtio bus)
get their `p` the same way and are recorded in the "bus" registry; a driver
on a bus whose `p` is unset is refused with Linux's "was unable to register
with bus_type" message and -EINVAL.

/sys/bus/BUS/drivers/ lists them (bus.py).  Where kloader differs: no
uevents are made; driver_find() is answered from the registry.  Layouts:
each kernel's own (kloaderd/kernel/layouts.py); a bus is registered when
its `p` is set, or (6.4 on, no `p`) when the registry has it.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.kdata import DataExport, export_data
from ...kernel.panic import warn
from ...kernel.printk import KERN_ERR
from ...kernel.layouts import struct
from .core import BUS, DEVICE, DRIVER, STRUCTS as CORE_STRUCTS, devices
from .dd import attach_driver, detach_driver, unbind_leftover

# The drivers of buses kloader has no devices on: where the device_driver is.
PCI_DRV = struct("struct pci_driver", "linux/pci.h", "name", "driver")
PDRV = struct("struct platform_driver", "linux/platform_device.h", "probe", "remove", "remove_new", "driver",
              "id_table")
ACPI_DRV = struct("struct acpi_driver", "linux/acpi.h", "name", "drv", optional=("owner",))
STRUCTS = (*CORE_STRUCTS, PCI_DRV, PDRV, ACPI_DRV)

PRIVATE_SIZE = 64                 # stands for struct driver_private / subsys_private


def _cstr(ctx: Any, address: int) -> str:
    return ctx.mem.read_cstr(address, 256).decode("utf-8", "replace") if address else ""


def _log(ctx: Any, level: int, text: str) -> None:
    ctx.kernel.log.emit(level, text, getattr(ctx.module, "name", None))


class Buses:
    """The core kernel's own buses, in kernel memory of one kernel: a real
    profile's exported `pci_bus_type` is used where the kernel has it."""

    CORE = ("pci", "platform", "acpi")

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.core: dict[str, int] = {}

    def bus(self, ctx: Any, name: str) -> int:
        bus_off = ctx.kernel.layouts[BUS]
        address = self.core.get(name)
        if address is None:
            slab = self.kernel.slab
            address = ctx.machine.kernel_symbols().get(f"{name}_bus_type") or \
                slab.alloc(bus_off.size, None, zero=True)
            text = slab.alloc(len(name) + 1, None)
            if not address or not text:
                raise MemoryError(f"no memory for the {name} bus")
            ctx.mem.write(text, name.encode() + b"\0")
            ctx.mem.write_u64(address + bus_off.name, text)
            if bus_off.p is not None:          # before 6.4: the bus's subsys_private
                ctx.mem.write_u64(address + bus_off.p, slab.alloc(PRIVATE_SIZE, None, zero=True))
            self.core[name] = address
        return address


for _bus in Buses.CORE:            # a profile's exports of them: memory of its struct bus_type
    export_data(f"{_bus}_bus_type", DataExport(struct=BUS))


def bus_initialized(ctx: Any, bus: int) -> bool:
    """bus_to_subsys(bus) finds it: a core bus, or registered (before 6.4
    the bus's own `p` said so)."""
    if not bus:
        return False
    p = ctx.kernel.layouts[BUS].p
    if p is not None:
        return bool(ctx.mem.read_u64(bus + p))
    return bus in ctx.kernel.subsystem(Buses).core.values() or \
        ctx.kernel.registrations.registry("bus").find(bus) is not None


def driver_register(ctx: Any, drv: int) -> int:
    bus_off = ctx.kernel.layouts[BUS]
    driver_off = ctx.kernel.layouts[DRIVER]
    mem = ctx.mem
    name, bus = _cstr(ctx, mem.read_u64(drv + driver_off.name)), mem.read_u64(drv + driver_off.bus)
    bus_name = _cstr(ctx, mem.read_u64(bus + bus_off.name)) if bus else ""
    if not bus_initialized(ctx, bus):
        _log(ctx, KERN_ERR, f"Driver '{name}' was unable to register with bus_type "
                            f"'{bus_name}' because the bus was not initialized.")
        return -errno.EINVAL
    registry = ctx.kernel.registrations.registry("driver")
    if registry.find((bus, name)) is not None:
        _log(ctx, KERN_ERR, f"Error: Driver '{name}' is already registered, aborting...")
        return -errno.EBUSY
    private = ctx.kernel.slab.alloc(PRIVATE_SIZE, None, zero=True)
    if not private:
        return -errno.ENOMEM
    mem.write_u64(drv + driver_off.p, private)
    regs = ctx.kernel.registrations
    owner = ctx.kernel.module_by_struct(mem.read_u64(drv + driver_off.owner)) or regs.module_at(drv)
    registry.add((bus, name), f"{bus_name} driver {name}", owner=owner, address=drv,
                 data=(ctx.kernel, private), on_leftover=_release_leftover)
    return attach_driver(ctx, drv)


def driver_unregister(ctx: Any, drv: int) -> Any:
    """bus_remove_driver: its devices unbound (remove runs), then it goes."""
    driver_off = ctx.kernel.layouts[DRIVER]
    mem = ctx.mem
    if not drv or not mem.read_u64(drv + driver_off.p):
        warn(ctx, "Unexpected driver unregister!", "drivers/base/driver.c:273",
             "driver_unregister")
        return 0
    detaching = detach_driver(ctx.kernel, drv)
    if detaching is None:
        _forget(ctx, drv)
        return 0

    async def unregistering() -> int:
        await detaching
        _forget(ctx, drv)
        return 0
    return unregistering()


def _forget(ctx: Any, drv: int) -> None:
    driver_off = ctx.kernel.layouts[DRIVER]
    mem = ctx.mem
    name, bus = _cstr(ctx, mem.read_u64(drv + driver_off.name)), mem.read_u64(drv + driver_off.bus)
    entry = ctx.kernel.registrations.registry("driver").remove((bus, name))
    if entry is not None:
        ctx.kernel.slab.free(entry.data[1], None)
    mem.write_u64(drv + driver_off.p, 0)


def _release_leftover(entry: Any) -> None:
    kernel, private = entry.data
    unbind_leftover(kernel, entry.address)
    kernel.slab.free(private, None)


def _fill(ctx: Any, drv: int, *, bus: str, owner: int | None = None, name: int | None = None,
          mod_name: int | None = None) -> None:
    driver_off = ctx.kernel.layouts[DRIVER]
    mem = ctx.mem
    if name is not None:
        mem.write_u64(drv + driver_off.name, name)
    mem.write_u64(drv + driver_off.bus, ctx.kernel.subsystem(Buses).bus(ctx, bus))
    if owner is not None:
        mem.write_u64(drv + driver_off.owner, owner)
    if mod_name is not None:
        mem.write_u64(drv + driver_off.mod_name, mod_name)


def register_on(ctx: Any, drv: int, bus: str, owner: int) -> int:
    """What a bus's `__BUS_driver_register(drv, THIS_MODULE)` does with the
    `struct device_driver` it embeds: the bus and owner set, registered."""
    _fill(ctx, drv, bus=bus, owner=owner)
    return driver_register(ctx, drv)


@export("driver_register", "int driver_register(struct device_driver *drv)", nargs=1, gpl=True)
def _driver_register(ctx: Any, drv: int) -> int:
    return driver_register(ctx, drv)


@export("driver_unregister", "void driver_unregister(struct device_driver *drv)", nargs=1,
        gpl=True)
def _driver_unregister(ctx: Any, drv: int) -> Any:
    return driver_unregister(ctx, drv)


@export("__pci_register_driver", "int __pci_register_driver(struct pci_driver *drv, "
        "struct module *owner, const char *mod_name)", nargs=3)
def __pci_register_driver(ctx: Any, drv: int, owner: int, mod_name: int) -> int:
    pci_off = ctx.kernel.layouts[PCI_DRV]
    _fill(ctx, drv + pci_off.driver, bus="pci", owner=owner, mod_name=mod_name,
          name=ctx.mem.read_u64(drv + pci_off.name))
    return driver_register(ctx, drv + pci_off.driver)


@export("pci_unregister_driver", "void pci_unregister_driver(struct pci_driver *drv)", nargs=1)
def pci_unregister_driver(ctx: Any, drv: int) -> Any:
    pci_off = ctx.kernel.layouts[PCI_DRV]
    return driver_unregister(ctx, drv + pci_off.driver)


@export("__platform_driver_register", "int __platform_driver_register(struct platform_driver "
        "*drv, struct module *owner)", nargs=2, gpl=True)
def __platform_driver_register(ctx: Any, drv: int, owner: int) -> int:
    pdrv_off = ctx.kernel.layouts[PDRV]
    _fill(ctx, drv + pdrv_off.driver, bus="platform", owner=owner)
    return driver_register(ctx, drv + pdrv_off.driver)


@export("__platform_driver_probe", "int __platform_driver_probe(struct platform_driver *drv, "
        "int (*probe)(struct platform_device *), struct module *module)", nargs=3, gpl=True)
def __platform_driver_probe(ctx: Any, drv: int, probe: int, module: int) -> Any:
    """A driver for devices that are there now or never (platform_driver_probe()):
    registered with `probe`, then unregistered and -ENODEV if no device bound
    to it.  Linux also makes later probes fail (platform_probe_fail) and
    forbids deferred and asynchronous probing; here no platform device can
    appear for it later but one a module registers, which would bind."""
    pdrv_off = ctx.kernel.layouts[PDRV]
    ctx.mem.write_u64(drv + pdrv_off.probe, probe)
    registering = __platform_driver_register(ctx, drv, module)

    def bound(ret: int) -> int:
        if ret:
            return ret
        device_off, driver = ctx.kernel.layouts[DEVICE], drv + pdrv_off.driver
        if any(ctx.mem.read_u64(d + device_off.driver) == driver for d in devices(ctx.kernel).known):
            return 0
        _forget(ctx, driver)                  # no device is bound: nothing to detach
        return -errno.ENODEV
    if isinstance(registering, int):
        return bound(registering)

    async def probing() -> int:
        return bound(await registering)
    return probing()


@export("platform_driver_unregister", "void platform_driver_unregister(struct platform_driver "
        "*drv)", nargs=1, gpl=True)
def platform_driver_unregister(ctx: Any, drv: int) -> Any:
    pdrv_off = ctx.kernel.layouts[PDRV]
    return driver_unregister(ctx, drv + pdrv_off.driver)


@export("acpi_bus_register_driver", "int acpi_bus_register_driver(struct acpi_driver *driver)",
        nargs=1)
def acpi_bus_register_driver(ctx: Any, driver: int) -> int:
    acpi_off = ctx.kernel.layouts[ACPI_DRV]
    mem = ctx.mem
    _fill(ctx, driver + acpi_off.drv, bus="acpi", name=driver + acpi_off.name,
          owner=mem.read_u64(driver + acpi_off.owner) if acpi_off.owner is not None else 0)
    return driver_register(ctx, driver + acpi_off.drv)


@export("__acpi_bus_register_driver", "int __acpi_bus_register_driver(struct acpi_driver *driver, "
        "struct module *owner)", nargs=2)
def __acpi_bus_register_driver(ctx: Any, driver: int, owner: int) -> int:
    """6.12's: the owner is THIS_MODULE of the caller, acpi_driver has none."""
    acpi_off = ctx.kernel.layouts[ACPI_DRV]
    _fill(ctx, driver + acpi_off.drv, bus="acpi", name=driver + acpi_off.name, owner=owner)
    return driver_register(ctx, driver + acpi_off.drv)


@export("acpi_bus_unregister_driver", "void acpi_bus_unregister_driver(struct acpi_driver "
        "*driver)", nargs=1)
def acpi_bus_unregister_driver(ctx: Any, driver: int) -> Any:
    acpi_off = ctx.kernel.layouts[ACPI_DRV]
    return driver_unregister(ctx, driver + acpi_off.drv)


@export("bus_register", "int bus_register(struct bus_type *bus)", nargs=1, gpl=True)
def bus_register(ctx: Any, bus: int) -> int:
    bus_off = ctx.kernel.layouts[BUS]
    name = _cstr(ctx, ctx.mem.read_u64(bus + bus_off.name))
    registry = ctx.kernel.registrations.registry("bus")
    if any(e.data[1] == name for e in registry.entries()) or name in Buses.CORE:
        _log(ctx, KERN_ERR, f"sysfs: cannot create duplicate filename '/bus/{name}'")
        return -errno.EEXIST
    private = ctx.kernel.slab.alloc(PRIVATE_SIZE, None, zero=True)
    if not private:
        return -errno.ENOMEM
    if bus_off.p is not None:
        ctx.mem.write_u64(bus + bus_off.p, private)
    registry.add(bus, f"bus {name}", owner=ctx.kernel.registrations.module_at(bus),
                 address=bus, data=(ctx.kernel, name, private), on_leftover=_release_bus)
    return 0


@export("bus_unregister", "void bus_unregister(struct bus_type *bus)", nargs=1, gpl=True)
def bus_unregister(ctx: Any, bus: int) -> None:
    entry = ctx.kernel.registrations.registry("bus").remove(bus)
    if entry is not None:
        ctx.kernel.slab.free(entry.data[2], None)


def _release_bus(entry: Any) -> None:
    kernel, _, private = entry.data
    kernel.slab.free(private, None)
