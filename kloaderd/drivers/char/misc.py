"""Miscellaneous character devices: major 10 (Linux's drivers/char/misc.c).

Each device is a registration (kloaderd/kernel/registry.py).
`misc_register` gives the device a minor (a fixed one, or with
MISC_DYNAMIC_MINOR the next free of the 128 dynamic minors, 127 downwards,
as Linux 6.6 hands them out) and a node `/dev/NAME` (devtmpfs; `nodename`
if set).  Opening it runs `misc_open`: find the device by minor, `fops_get`
its file operations — a reference on `fops->owner`, refused (ENODEV) once
the module is going — set `file->private_data` to the miscdevice, and call
the driver's `.open`.  The reference is held until the last close.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import KernelError
from ...fs.char_dev import device_nodes, register_kernel_device
from ...fs.file import FILE, FOPS, MINOR, MKDEV, OpenFile, call_open, get_owner
from ...kernel.api import export
from ...kernel.api.sched import _warn

STRUCTS = (FILE, FOPS)       # what these functions read at the kernel's offsets

if TYPE_CHECKING:
    from ...kernel.kernel import Kernel

MISC_MAJOR = 10
MISC_DYNAMIC_MINOR = 255
DYNAMIC_MINORS = 128
# struct miscdevice (include/linux/miscdevice.h, Linux 6.6)
MISC_MINOR = 0
MISC_NAME = 8
MISC_FOPS = 16
MISC_LIST = 24
MISC_NODENAME = 64


@dataclass(eq=False)
class MiscDevice:
    address: int                 # the module's struct miscdevice
    minor: int
    name: str
    fops: int
    path: str
    module: Any
    dynamic: bool


class MiscDevices:
    """misc_list, as registrations: a module freed with its device still
    registered has it reported and its /dev node removed."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.registry = kernel.registrations.registry("misc")
        register_kernel_device(kernel, MISC_MAJOR, "misc", misc_open)

    @property
    def devices(self) -> list[MiscDevice]:
        return [e.data for e in self.registry.entries()]

    def by_minor(self, minor: int) -> MiscDevice | None:
        return next((d for d in self.devices if d.minor == minor), None)

    def _dynamic_minor(self) -> int:
        for minor in range(DYNAMIC_MINORS - 1, -1, -1):
            if self.by_minor(minor) is None:
                return minor
        return -errno.EBUSY

    def add(self, dev: MiscDevice) -> None:
        self.registry.add(dev.address, f"misc device {dev.name} (minor {dev.minor}, {dev.path})",
                          owner=dev.module, address=dev.address, points_to=(dev.fops,), data=dev,
                          on_leftover=lambda entry: device_nodes(self.kernel).remove(dev.path))

    def remove(self, dev: MiscDevice) -> None:
        self.registry.remove(dev.address)
        device_nodes(self.kernel).remove(dev.path)


def misc(kernel: "Kernel") -> MiscDevices:
    return kernel.subsystem(MiscDevices)


async def misc_open(kernel: "Kernel", file: OpenFile, comm: str) -> None:
    dev = misc(kernel).by_minor(MINOR(file.node.dev))
    if dev is None:
        raise KernelError(errno.ENODEV, f"open {file.node.path}: no misc device with minor "
                                        f"{MINOR(file.node.dev)} (No such device)")
    get_owner(kernel, file, kernel.mem.read_u64(dev.fops + kernel.layouts[FOPS].owner), "fops_get", errno.ENODEV)
    kernel.mem.write_u64(file.field("private_data"), dev.address)
    await call_open(kernel, file, dev.fops, comm)


@export("misc_register", "int misc_register(struct miscdevice *misc)", nargs=1)
def misc_register(ctx: Any, address: int) -> int:
    devices, mem = misc(ctx.kernel), ctx.mem
    minor = mem.read_s32(address + MISC_MINOR)
    name = mem.read_cstr(mem.read_u64(address + MISC_NAME), 64).decode(errors="replace")
    nodename = mem.read_u64(address + MISC_NODENAME)
    path = "/dev/" + (mem.read_cstr(nodename, 64).decode(errors="replace") if nodename else name)
    dynamic = minor == MISC_DYNAMIC_MINOR
    if dynamic:
        minor = devices._dynamic_minor()
        if minor < 0:
            return minor
    elif devices.by_minor(minor) is not None:
        return -errno.EBUSY
    if path in device_nodes(ctx.kernel).nodes:
        return -errno.EEXIST            # device_create: the name is taken
    device_nodes(ctx.kernel).mknod(path, MKDEV(MISC_MAJOR, minor), made_by="misc")
    if dynamic:
        mem.write_u32(address + MISC_MINOR, minor)
    mem.write_u64(address + MISC_LIST, address + MISC_LIST)
    mem.write_u64(address + MISC_LIST + 8, address + MISC_LIST)
    devices.add(MiscDevice(address, minor, name, mem.read_u64(address + MISC_FOPS),
                           path, ctx.module, dynamic))
    return 0


@export("misc_deregister", "void misc_deregister(struct miscdevice *misc)", nargs=1)
def misc_deregister(ctx: Any, address: int) -> None:
    devices = misc(ctx.kernel)
    entry = devices.registry.find(address)
    if entry is None:
        _warn(ctx, "WARN_ON(list_empty(&misc->list))", "drivers/char/misc.c:240 misc_deregister+0x8a/0xa0")
        return
    devices.remove(entry.data)
