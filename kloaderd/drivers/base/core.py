"""drivers/base/core.c: devices — their lifecycle (`device_initialize`,
`device_add`, `device_del`, `put_device`, …) — and the dev_printk family
(`_dev_err`, `_dev_info`, …) with the names it prints.

A device is a kobject (at its start) of the kernel's device ktype:
`device_add` gives it its name (init_name, else the kobject's), a directory
under its parent (a class device without one: /sys/devices/virtual/CLASS/;
else /sys/devices/), `dev` and `uevent` attributes, for a class device a
link in /sys/class/CLASS/ and — with a device number — a devtmpfs node
/dev/NAME, then offers it to its bus's drivers (dd.py).  `device_del`
unbinds it and takes all that away; the last `put_device` runs
`device_release`: managed resources, then `dev->release`, `type->release`
or `class->dev_release` — or Linux's "Device 'X' does not have a release()
function, it is broken and must be fixed." when there is none.  A device a
module added and did not delete when it is freed is a leaked registration.

As Linux 6.1: a message about a device is "DRIVER DEVNAME: message" at the
function's level, DRIVER being the bound driver's name, else the bus's, else
the class's, else empty (dev_driver_string), and DEVNAME the device's
init_name, else its kobject's name (dev_name); about a NULL device it is
"(NULL device *): message".  Linux also attaches SUBSYSTEM/DEVICE
dictionary fields to the record; kloader's log has no dictionaries.
Layouts: each kernel's own (kloaderd/kernel/layouts.py): Debian's 6.12 moved
`devt`, `class` and what follows by 16 bytes, and took `p` out of bus_type
and class (6.4).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any, Callable

import trio

from ...errors import KernelError
from ...fs.char_dev import device_nodes
from ...fs.file import MAJOR, MINOR
from ...fs.tree import Content, file_tree
from ...kernel.api import at_boot, export
from ...kernel.api.printk import format_guest
from ...kernel.printk import KERN_ERR
from ...kernel.layouts import struct
from ...lib.kobject import KOBJECT, KSET, KTYPE, kobjects

# The driver core's structures (include/linux/device.h, device/class.h,
# device/driver.h, device/bus.h), at each kernel's offsets.  6.4 took the
# private pointer out of bus_type and class (and class's owner): optional.
DEVICE = struct("struct device", "linux/device.h", "parent", "p", "init_name", "type", "bus", "driver",
                "platform_data", "driver_data", "devt", "id", "devres_head", "class", "groups", "release")
DEVICE_TYPE = struct("struct device_type", "linux/device.h", "release")
CLASS = struct("struct class", "linux/device.h", "name", "dev_groups", "devnode", "dev_release",
               "class_release", optional=("owner", "p"))
DRIVER = struct("struct device_driver", "linux/device.h", "name", "bus", "owner", "mod_name", "probe",
                "remove", "p")
BUS = struct("struct bus_type", "linux/device.h", "name", optional=("p",))
STRUCTS = (DEVICE, DEVICE_TYPE, CLASS, DRIVER, BUS, KOBJECT, KTYPE, KSET)

LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warn": 4, "notice": 5, "info": 6}


def _string(ctx: Any, ptr: int) -> str:
    return ctx.mem.read_cstr(ptr, 256).decode("utf-8", "replace") if ptr else ""


def driver_string(ctx: Any, dev: int) -> str:
    device_off = ctx.kernel.layouts[DEVICE]
    mem = ctx.mem
    for field in (device_off.driver, device_off.bus, device_off.class_):
        obj = mem.read_u64(dev + field)
        if obj:
            return _string(ctx, mem.read_u64(obj))     # ->name is the first member
    return ""


def dev_name(ctx: Any, dev: int) -> str:
    return device_name(ctx.kernel, dev)


def device_name(kernel: Any, dev: int) -> str:
    """dev_name(): init_name until device_add, then the kobject's name."""
    device_off = kernel.layouts[DEVICE]
    kobj_off = kernel.layouts[KOBJECT]
    mem = kernel.mem
    ptr = mem.read_u64(dev + device_off.init_name) or mem.read_u64(dev + kobj_off.name)
    return mem.read_cstr(ptr, 256).decode("utf-8", "replace") if ptr else ""


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
    device_off = ctx.kernel.layouts[DEVICE]
    mem = ctx.mem
    for field in (device_off.driver, device_off.bus, device_off.class_):
        obj = mem.read_u64(dev + field)
        if obj:
            return mem.read_u64(obj)
    return ctx.kernel.subsystem(EmptyString).address


class EmptyString:
    """The "" dev_driver_string returns for a device with neither."""

    def __init__(self, kernel: Any) -> None:
        self.address = kernel.slab.alloc(1, None, zero=True)


# -- devices: their lifecycle (device_initialize, device_add, device_del, put_device) ----------



@dataclass(eq=False)
class Device:
    """What the kernel keeps of a struct device besides its bytes."""
    address: int
    module: Any = None                  # whose code added it
    kernel_release: Callable[[int], None] | None = None   # a device the kernel allocated
    added: bool = False
    node: str = ""                      # its devtmpfs node in /dev
    links: list[Any] = field(default_factory=list)     # symlinks made for it (class, bus)
    lock: trio.Lock = field(default_factory=trio.Lock)   # device_lock: probe and remove
    driver: int = 0                     # the device_driver it is bound to


class Devices:
    """The devices of one kernel, by address; /sys/devices and its
    `virtual` and `platform` directories."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.known: dict[int, Device] = {}
        self.registry = kernel.registrations.registry("device")
        objs = kobjects(kernel)
        self.ktype = objs.new_ktype(self._release)          # device_ktype
        tree = file_tree(kernel)
        self.root = objs.kernel_kobject("devices", 0)
        self.virtual = objs.kernel_kobject("virtual", self.root)
        for path in ("/sys/class", "/sys/bus"):
            tree.mkdir(path, mode=0o755)

    def of(self, dev: int) -> Device:
        record = self.known.get(dev)
        if record is None:
            record = self.known[dev] = Device(dev)
        return record

    def initialize(self, dev: int) -> None:
        """device_initialize: its kobject (device_ktype), an empty devres list."""
        device_off = self.kernel.layouts[DEVICE]
        mem = self.kernel.mem
        kobjects(self.kernel).init(dev, self.ktype)
        mem.write_u64(dev + device_off.devres_head, dev + device_off.devres_head)
        mem.write_u64(dev + device_off.devres_head + 8, dev + device_off.devres_head)
        self.of(dev)

    def _release(self, kobj: int) -> tuple[int, int] | None:
        """device_release: devres, then dev->release, type->release or
        class->dev_release, else Linux's complaint."""
        class_off = self.kernel.layouts[CLASS]
        device_off = self.kernel.layouts[DEVICE]
        device_type_off = self.kernel.layouts[DEVICE_TYPE]
        kernel, mem = self.kernel, self.kernel.mem
        dev = kobj
        record = self.known.pop(dev, None)
        from .devres import devres
        devres(kernel).release_now(dev)
        if record is not None and record.kernel_release is not None:
            record.kernel_release(dev)
            return None
        release = mem.read_u64(dev + device_off.release)
        if not release:
            dtype = mem.read_u64(dev + device_off.type)
            release = mem.read_u64(dtype + device_type_off.release) if dtype else 0
        if not release:
            cls = mem.read_u64(dev + device_off.class_)
            release = mem.read_u64(cls + class_off.dev_release) if cls else 0
        if release:
            return release, dev
        kernel.log.emit(KERN_ERR, f"Device '{device_name(kernel, dev)}' does not "
                                  "have a release() function, it is broken and must be fixed. See "
                                  "Documentation/core-api/kobject.rst.", None)
        kernel.add_taint("W")
        return None

    def parent_kobject(self, dev: int) -> int:
        """get_device_parent: the parent device, else /sys/devices/virtual for a class device."""
        device_off = self.kernel.layouts[DEVICE]
        mem = self.kernel.mem
        parent = mem.read_u64(dev + device_off.parent)
        if parent:
            return parent
        return self.virtual if mem.read_u64(dev + device_off.class_) else self.root


def devices(kernel: Any) -> Devices:
    return kernel.subsystem(Devices)


@at_boot
def _sys_devices(kernel: Any) -> None:
    """/sys/devices, /sys/class and /sys/bus exist from boot (a kernel
    whose device layouts are unknown has no devices: plain directories)."""
    if all(kernel.layouts.has(s) for s in STRUCTS):
        devices(kernel)
    else:
        for path in ("/sys/devices", "/sys/class", "/sys/bus"):
            file_tree(kernel).mkdir(path, mode=0o755)


def add_device(ctx: Any, dev: int, parent_kobj: int = 0) -> Any:
    """device_add: its name (init_name, else the kobject's), its directory
    under the parent, the class link and devtmpfs node, the bus's driver
    probed.  0, a negative errno, or a coroutine (a probe runs)."""
    device_off = ctx.kernel.layouts[DEVICE]
    kobj_off = ctx.kernel.layouts[KOBJECT]
    kernel, mem = ctx.kernel, ctx.mem
    table, objs = devices(kernel), kobjects(kernel)
    record = table.of(dev)
    init_name = mem.read_u64(dev + device_off.init_name)
    if init_name:
        objs.set_name(dev, mem.read_cstr(init_name, 256), None)
        mem.write_u64(dev + device_off.init_name, 0)
    name = objs.name(dev)
    if not name:
        kernel.log.emit(KERN_ERR, "device: '(null)': device_add: name missing", getattr(ctx.module, "name", None))
        return -errno.EINVAL
    parent_kobj = parent_kobj or table.parent_kobject(dev)
    cls = mem.read_u64(dev + device_off.class_)
    if cls and not mem.read_u64(dev + device_off.parent):
        from .classes import classes
        parent_kobj = classes(kernel).virtual_dir(cls)
    mem.write_u64(dev + kobj_off.parent, parent_kobj)
    mem.write_u64(dev + kobj_off.kset, 0)
    ret = objs.add_internal(dev, ctx.module)
    if ret:
        return ret
    directory = objs.directory(dev)
    tree = file_tree(kernel)
    devt = mem.read_u32(dev + device_off.devt)
    if devt:
        tree.add(directory, "dev", Content(lambda file: f"{MAJOR(devt)}:{MINOR(devt)}\n"), mode=0o444)
    tree.add(directory, "uevent", Content(lambda file: _uevent_text(kernel, dev), lambda file, data: len(data)),
             mode=0o644)
    if mem.read_u64(dev + device_off.bus):
        from .bus import device_links
        directory.generate = lambda: device_links(kernel, dev)
    if cls:
        from .classes import classes
        cdir = classes(kernel).directory(cls)
        if cdir is not None:
            record.links.append(tree.symlink(cdir, name, directory.path))
            record.links.append(tree.symlink(directory, "subsystem", cdir.path))
    if devt and cls:
        path = "/dev/" + name
        try:
            device_nodes(kernel).mknod(path, devt, made_by="devtmpfs")
            record.node = path
        except KernelError:
            pass                          # a node by that name exists already: devtmpfs keeps it
    record.added = True
    record.module = ctx.module
    if ctx.module is not None:
        table.registry.add(dev, f"device {directory.path}", owner=ctx.module, address=dev,
                           data=record, on_leftover=lambda entry: _unpublish(kernel, dev, wait=False))
    objs.uevent(dev, "add")
    from .dd import probe_device
    return probe_device(ctx, dev)


def _uevent_text(kernel: Any, dev: int) -> str:
    device_off = kernel.layouts[DEVICE]
    mem = kernel.mem
    lines = []
    devt = mem.read_u32(dev + device_off.devt)
    if devt:
        lines += [f"MAJOR={MAJOR(devt)}", f"MINOR={MINOR(devt)}",
                  f"DEVNAME={kobjects(kernel).name(dev)}"]
    drv = mem.read_u64(dev + device_off.driver)
    if drv:
        lines.append(f"DRIVER={mem.read_cstr(mem.read_u64(drv), 256).decode('utf-8', 'replace')}")
    return "".join(line + "\n" for line in lines)


def del_device(ctx: Any, dev: int) -> Any:
    """device_del: its driver unbound (remove runs), its node, links and
    directory gone.  None-ish 0 or a coroutine."""
    device_off = ctx.kernel.layouts[DEVICE]
    kernel = ctx.kernel
    record = devices(kernel).known.get(dev)
    from .dd import release_driver

    async def deleting() -> int:
        await release_driver(kernel, dev)
        pending = _unpublish(kernel, dev)
        if pending is not None:
            await pending
        return 0
    if record is None or not record.added:
        return 0
    if kernel.mem.read_u64(dev + device_off.driver) or any(n.active for n in _files_of(kernel, dev)):
        return deleting()
    _unpublish(kernel, dev)
    return 0


def _files_of(kernel: Any, dev: int) -> list[Any]:
    directory = kobjects(kernel).directory(dev)
    return list(file_tree(kernel).walk(directory)) if directory is not None else []


def _unpublish(kernel: Any, dev: int, *, wait: bool = True) -> Any:
    """What device_add published goes: uevent, links, node, directory
    (waiting for running reads and writes unless `wait` is False)."""
    record = devices(kernel).known.get(dev)
    if record is None or not record.added:
        return None
    objs = kobjects(kernel)
    objs.uevent(dev, "remove")
    tree = file_tree(kernel)
    for link in record.links:
        tree.remove_now(link)
    record.links.clear()
    if record.node:
        device_nodes(kernel).remove(record.node)
        record.node = ""
    record.added = False
    devices(kernel).registry.remove(dev)
    return objs.delete(dev, wait=wait)


def put_device(ctx: Any, dev: int) -> Any:
    from ...lib.kobject import put_kobject
    return put_kobject(ctx, dev) if dev else 0


@export("device_initialize", "void device_initialize(struct device *dev)", nargs=1, gpl=True)
def device_initialize(ctx: Any, dev: int) -> None:
    devices(ctx.kernel).initialize(dev)


@export("device_add", "int device_add(struct device *dev)", nargs=1, gpl=True)
def device_add(ctx: Any, dev: int) -> Any:
    return add_device(ctx, dev)


@export("device_register", "int device_register(struct device *dev)", nargs=1, gpl=True)
def device_register(ctx: Any, dev: int) -> Any:
    devices(ctx.kernel).initialize(dev)
    return add_device(ctx, dev)


@export("device_del", "void device_del(struct device *dev)", nargs=1, gpl=True)
def device_del(ctx: Any, dev: int) -> Any:
    return del_device(ctx, dev)


@export("put_device", "void put_device(struct device *dev)", nargs=1, gpl=True)
def _put_device(ctx: Any, dev: int) -> Any:
    return put_device(ctx, dev)


@export("get_device", "struct device *get_device(struct device *dev)", nargs=1, gpl=True)
def get_device(ctx: Any, dev: int) -> int:
    if dev:
        kobjects(ctx.kernel).get(dev)
    return dev


@export("device_unregister", "void device_unregister(struct device *dev)", nargs=1, gpl=True)
def device_unregister(ctx: Any, dev: int) -> Any:
    return _then_put(ctx, dev, del_device(ctx, dev))


def _then_put(ctx: Any, dev: int, first: Any) -> Any:
    """`first` (0 or a coroutine), then put_device(dev)."""
    if not hasattr(first, "__await__"):
        return put_device(ctx, dev)

    async def both() -> int:
        await first
        pending = put_device(ctx, dev)
        if hasattr(pending, "__await__"):
            await pending
        return 0
    return both()


@export("dev_set_name", "int dev_set_name(struct device *dev, const char *name, ...)", nargs=2,
        variadic=True)
def dev_set_name(ctx: Any, dev: int, fmt: int) -> int:
    return kobjects(ctx.kernel).set_name(dev, format_guest(ctx, fmt, ctx.va(), room=256)[0], None)


@export("device_create_file", "int device_create_file(struct device *dev, const struct device_attribute "
        "*attr)", nargs=2)
def device_create_file(ctx: Any, dev: int, attr: int) -> int:
    from ...fs.sysfs import sysfs_create_file_ns
    return sysfs_create_file_ns(ctx, dev, attr, 0) if dev else 0


@export("device_remove_file", "void device_remove_file(struct device *dev, const struct device_attribute "
        "*attr)", nargs=2)
def device_remove_file(ctx: Any, dev: int, attr: int) -> Any:
    from ...fs.sysfs import sysfs_remove_file_ns
    return sysfs_remove_file_ns(ctx, dev, attr, 0) if dev else 0
