"""The driver core's view by bus in sysfs (Linux's drivers/base/bus.c and
module.c's `module_add_driver`): what `ls /sys/bus/platform/...` shows.

    /sys/bus/BUS/devices/DEV        -> ../../../devices/.../DEV
    /sys/bus/BUS/drivers/DRV/DEV    -> ../../../../devices/.../DEV   (each bound device)
    /sys/bus/BUS/drivers/DRV/module -> ../../../../module/MOD        (a module's driver)
    /sys/module/MOD/drivers/BUS:DRV -> ../../../bus/BUS/drivers/DRV
    /sys/devices/.../DEV/subsystem  -> ../../../bus/BUS
    /sys/devices/.../DEV/driver     -> ../../../bus/BUS/drivers/DRV  (while bound)

The buses are the core kernel's (platform, pci, acpi) and those modules
register (`bus_register`); their devices are the ones added on them
(only platform devices exist on kloader's machine), their drivers the ones
registered.  Every listing is made from the driver core's state when it is
read, so it follows binding and unbinding as Linux's links do.

Where kloader differs: the files that act — `bind`, `unbind`, `uevent`,
`drivers_probe`, `drivers_autoprobe` — are not there (kloader always
autoprobes; there is no manual binding), and a module's `drivers/`
directory exists only while it has a driver registered (Linux keeps it,
empty, once made).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...fs.tree import Directory, Node, Symlink, file_tree
from ...kernel.api import at_boot
from ...kernel.module_sysfs import MODULE_ENTRIES
from ...lib.kobject import kobjects
from .core import BUS, DEVICE, DRIVER, STRUCTS, devices
from .driver import Buses

if TYPE_CHECKING:
    from ...kernel.kernel import Kernel
    from ...kernel.module import Module


def _cstr(kernel: "Kernel", ptr: int) -> str:
    return kernel.mem.read_cstr(ptr, 256).decode("utf-8", "replace") if ptr else ""


def up_to_sys(directory: str) -> str:
    """The relative path from a link in `directory` to /sys: "../../../"."""
    return "../" * (len(directory.split("/")) - 2)


def buses(kernel: "Kernel") -> dict[str, int]:
    """Every bus by name: its struct bus_type (0 for a core bus nothing used
    yet; a built-in one such as 6.12's virtio once a driver used it)."""
    found = {name: 0 for name in Buses.CORE}
    found.update(kernel.subsystem(Buses).core)
    for entry in kernel.registrations.registry("bus").entries():
        found[_cstr(kernel, kernel.mem.read_u64(entry.key + kernel.layouts[BUS].name))] = entry.key
    return found


def bus_name(kernel: "Kernel", bus: int) -> str:
    return _cstr(kernel, kernel.mem.read_u64(bus + kernel.layouts[BUS].name)) if bus else ""


def drivers_on(kernel: "Kernel", bus: int) -> dict[str, tuple[int, Any]]:
    """The registered drivers of a bus: name -> (device_driver, its registration)."""
    if not bus:
        return {}
    return {entry.key[1]: (entry.address, entry) for entry in kernel.registrations.registry("driver").entries()
            if entry.key[0] == bus}


def device_dirs(kernel: "Kernel", bus: int, driver: int | None = None) -> dict[str, str]:
    """The added devices of a bus (bound to `driver` if given): name -> sysfs path."""
    mem, objs = kernel.mem, kobjects(kernel)
    out = {}
    for dev, record in devices(kernel).known.items():
        if not record.added or not bus or mem.read_u64(dev + kernel.layouts[DEVICE].bus) != bus:
            continue
        if driver is not None and mem.read_u64(dev + kernel.layouts[DEVICE].driver) != driver:
            continue
        directory = objs.directory(dev)
        if directory is not None:
            out[directory.name] = directory.path
    return out


def _owner(kernel: "Kernel", drv: int, entry: Any) -> "Module | None":
    owner = kernel.module_by_struct(kernel.mem.read_u64(drv + kernel.layouts[DRIVER].owner))
    return owner if owner is not None else entry.owner


class BusSysfs:
    """/sys/bus's directories, one per bus, made when first looked up."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.dirs: dict[tuple[str, int], Directory] = {}
        devices(kernel)                                # /sys/bus is the device model's
        file_tree(kernel).lookup("/sys/bus").generate = self._buses

    def _buses(self) -> dict[str, Node]:
        live = buses(self.kernel)
        self.dirs = {key: node for key, node in self.dirs.items() if live.get(key[0]) == key[1]}
        return {name: self._bus_dir(name, bus) for name, bus in live.items()}

    def _bus_dir(self, name: str, bus: int) -> Directory:
        made = self.dirs.get((name, bus))
        if made is None:
            made = self.dirs[(name, bus)] = Directory(name, mode=0o755)
            kernel = self.kernel

            def current() -> int:                     # a core bus gets its bus_type when first used
                return bus or kernel.subsystem(Buses).core.get(name, 0)
            top = "../../../"                          # from /sys/bus/BUS/devices to /sys
            made.children["devices"] = Directory("devices", mode=0o755, generate=lambda: {
                dev: Symlink(dev, top + path[len("/sys/"):]) for dev, path in device_dirs(kernel, current()).items()})
            made.children["drivers"] = Directory("drivers", mode=0o755, generate=lambda: {
                drv: self._driver_dir(drv, address, entry)
                for drv, (address, entry) in drivers_on(kernel, current()).items()})
            for child in made.children.values():
                child.parent = made
        return made

    def _driver_dir(self, name: str, drv: int, entry: Any) -> Directory:
        kernel = self.kernel
        top = "../../../../"                           # from /sys/bus/BUS/drivers/DRV to /sys

        def links() -> dict[str, Node]:
            bus = kernel.mem.read_u64(drv + kernel.layouts[DRIVER].bus)
            out: dict[str, Node] = {dev: Symlink(dev, top + path[len("/sys/"):])
                                    for dev, path in device_dirs(kernel, bus, drv).items()}
            owner = _owner(kernel, drv, entry)
            if owner is not None:
                out["module"] = Symlink("module", f"{top}module/{owner.name}")
            return out
        return Directory(name, mode=0o755, generate=links)


def module_drivers(kernel: "Kernel", mod: "Module") -> dict[str, Node]:
    """/sys/module/MOD/drivers/: `BUS:DRV` for each driver the module registered."""
    links: dict[str, Node] = {}
    for entry in kernel.registrations.registry("driver").entries():
        drv = entry.address
        if _owner(kernel, drv, entry) is mod:
            bus = bus_name(kernel, entry.key[0])
            name = _cstr(kernel, kernel.mem.read_u64(drv + kernel.layouts[DRIVER].name))
            links[f"{bus}:{name}"] = Symlink(f"{bus}:{name}", f"../../../bus/{bus}/drivers/{name}")
    if not links:
        return {}
    return {"drivers": Directory("drivers", mode=0o755, generate=lambda: links)}


def device_links(kernel: "Kernel", dev: int) -> dict[str, Node]:
    """A bus device's `subsystem` and, while bound, `driver` links."""
    mem = kernel.mem
    directory = kobjects(kernel).directory(dev)
    bus = bus_name(kernel, mem.read_u64(dev + kernel.layouts[DEVICE].bus))
    if directory is None or not bus:
        return {}
    top = up_to_sys(directory.path)
    out: dict[str, Node] = {"subsystem": Symlink("subsystem", f"{top}bus/{bus}")}
    drv = mem.read_u64(dev + kernel.layouts[DEVICE].driver)
    if drv:
        name = _cstr(kernel, mem.read_u64(drv + kernel.layouts[DRIVER].name))
        out["driver"] = Symlink("driver", f"{top}bus/{bus}/drivers/{name}")
    return out


@at_boot
def _sys_bus(kernel: "Kernel") -> None:
    if all(kernel.layouts.has(s) for s in STRUCTS):    # else no devices: /sys/bus stays empty
        kernel.subsystem(BusSysfs)


if all(fn.__qualname__ != module_drivers.__qualname__ for fn in MODULE_ENTRIES):   # once, re-imports too
    MODULE_ENTRIES.append(module_drivers)
