"""Device classes (Linux's drivers/base/class.c): `/sys/class/NAME`, and
`device_create`/`device_destroy`, which make a class device over a device
number — its directory in /sys/devices/virtual/CLASS/, its link in
/sys/class/CLASS/, its `dev` attribute, and its /dev node (devtmpfs).

`class_create_file_ns`/`class_remove_file_ns` put a class attribute file
in /sys/class/NAME/ (ib_uverbs's `abi_version`): reads call its
`show(class, attr, buf)` and writes its `store(class, attr, buf, count)`, as
class_attr_show/class_attr_store do, with sysfs's rules (fs/sysfs.py); a
class not registered is -EINVAL.

`__class_create` (6.1's `class_create(owner, name)`) allocates the class and
frees it when destroyed; `__class_register` registers one in module memory.
A class is a registration of its module: one left registered at unload is
reported, its directory and devices removed.  A second class of one name is
refused as sysfs refuses it ("cannot create duplicate filename
'/class/NAME'", -EEXIST; `class_create` returns ERR_PTR(-EEXIST)).

The driver core takes no module reference for a class or its devices (as
Linux): what pins a driver's module is an open of its /dev node
(`cdev->owner`, `fops->owner`, fs/char_dev.py).

Layouts: each kernel's own (kloaderd/kernel/layouts.py); since 6.4 a class has no
`owner` (the module calling `class_create(name)` owns it) and no `p`.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...fs.sysfs import ATTR, add_file, remove_name
from ...fs.tree import Directory, file_tree
from ...kernel.api import export
from ...kernel.api.printk import format_guest
from ...kernel.layouts import struct
from ...kernel.printk import KERN_ERR, KERN_WARNING
from ...lib.kobject import kobjects
from .core import (CLASS, DEVICE, STRUCTS as CORE_STRUCTS, _then_put, _unpublish, add_device, del_device, devices,
                   put_device)

CLASS_ATTR = struct("struct class_attribute", "linux/device/class.h", "attr", "show", "store")
STRUCTS = (*CORE_STRUCTS, CLASS_ATTR, ATTR)     # what these functions read at the kernel's offsets

if TYPE_CHECKING:
    from ...kernel.kernel import Kernel


PRIVATE_SIZE = 64                       # stands for struct subsys_private
MAX_ERRNO = 4095


@dataclass(eq=False)
class Class:
    address: int
    name: str
    module: Any
    directory: Directory
    virtual: int = 0                    # its kobject in /sys/devices/virtual
    allocated: bool = False             # __class_create's: freed by class_destroy
    devices: list[int] = field(default_factory=list)


class Classes:
    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.registry = kernel.registrations.registry("class")
        self.by_address: dict[int, Class] = {}

    def directory(self, cls: int) -> Directory | None:
        found = self.by_address.get(cls)
        return found.directory if found is not None else None

    def virtual_dir(self, cls: int) -> int:
        """The class's kobject under /sys/devices/virtual (made on first use)."""
        found = self.by_address[cls]
        if not found.virtual:
            found.virtual = kobjects(self.kernel).kernel_kobject(found.name, devices(self.kernel).virtual)
        return found.virtual

    def register(self, ctx: Any, cls: int, allocated: bool) -> int:
        class_off = ctx.kernel.layouts[CLASS]
        kernel, mem = self.kernel, self.kernel.mem
        name_ptr = mem.read_u64(cls + class_off.name)
        name = mem.read_cstr(name_ptr, 256).decode("utf-8", "replace") if name_ptr else ""
        who = getattr(ctx.module, "name", None)
        if not name:
            return -errno.EINVAL
        tree = file_tree(kernel)
        if tree.lookup("/sys/class").child(name) is not None:
            kernel.log.emit(KERN_WARNING, f"sysfs: cannot create duplicate filename '/class/{name}'", who)
            kernel.log.emit(KERN_ERR, f"kobject_add_internal failed for {name} with -EEXIST, don't try "
                                      "to register things with the same name in the same directory.", who)
            return -errno.EEXIST
        if class_off.p is not None:            # before 6.4: the class's subsys_private
            private = kernel.slab.alloc(PRIVATE_SIZE, None, zero=True)
            if not private:
                return -errno.ENOMEM
            mem.write_u64(cls + class_off.p, private)
        directory = tree.mkdir("/sys/class/" + name, mode=0o755, owner=ctx.module, data=cls)
        found = self.by_address[cls] = Class(cls, name, ctx.module, directory, allocated=allocated)
        owner = ctx.module                     # 6.4 took class->owner away
        if class_off.owner is not None:
            owner = kernel.module_by_struct(mem.read_u64(cls + class_off.owner)) or owner
        found.module = owner
        self.registry.add(cls, f'class "{name}"', owner=owner, address=cls, data=found,
                          on_leftover=self._leftover)
        return 0

    def unregister(self, cls: int) -> Class | None:
        class_off = self.kernel.layouts[CLASS]
        found = self.by_address.pop(cls, None)
        if found is None:
            return None
        self.registry.remove(cls)
        self._remove_dirs(found)
        if class_off.p is not None:
            self.kernel.slab.free(self.kernel.mem.read_u64(cls + class_off.p), None)
            self.kernel.mem.write_u64(cls + class_off.p, 0)
        return found

    def _remove_dirs(self, found: Class) -> None:
        tree = file_tree(self.kernel)
        kobjects(self.kernel).untrack(found.directory)      # its class attribute files go with it
        tree.remove_now(found.directory)
        if found.virtual:
            objs = kobjects(self.kernel)
            objs.delete(found.virtual, wait=False)
            objs.known.pop(found.virtual, None)
            self.kernel.slab.free(found.virtual, None)

    def _leftover(self, entry: Any) -> None:
        found: Class = entry.data
        self.by_address.pop(found.address, None)
        for dev in list(found.devices):
            _unpublish(self.kernel, dev, wait=False)
        self._remove_dirs(found)


def classes(kernel: "Kernel") -> Classes:
    return kernel.subsystem(Classes)


def _err_ptr(errno_value: int) -> int:
    return (-errno_value) & 0xFFFFFFFFFFFFFFFF


@export("__class_register", "int __class_register(struct class *cls, struct lock_class_key *key)",
        nargs=2, gpl=True)
def __class_register(ctx: Any, cls: int, key: int) -> int:
    return classes(ctx.kernel).register(ctx, cls, False)


@export("__class_create", "struct class *__class_create(struct module *owner, const char *name, "
        "struct lock_class_key *key)", nargs=3, gpl=True)
def __class_create(ctx: Any, owner: int, name: int, key: int) -> int:
    class_off = ctx.kernel.layouts[CLASS]
    kernel = ctx.kernel
    cls = kernel.slab.alloc(class_off.size, getattr(ctx.module, "name", None), zero=True)
    if not cls:
        return _err_ptr(errno.ENOMEM)
    ctx.mem.write_u64(cls + class_off.name, name)
    if class_off.owner is not None:
        ctx.mem.write_u64(cls + class_off.owner, owner)
    ret = classes(kernel).register(ctx, cls, True)
    if ret:
        kernel.slab.free(cls, None)
        return _err_ptr(-ret)
    return cls


@export("class_create", "struct class *class_create(const char *name)", nargs=1, gpl=True)
def class_create(ctx: Any, name: int) -> int:
    """6.4's class_create: no owner (the class has none), no lock key."""
    return __class_create(ctx, 0, name, 0)


@export("class_register", "int class_register(const struct class *cls)", nargs=1, gpl=True)
def class_register(ctx: Any, cls: int) -> int:
    """6.4's class_register (was the __class_register macro's target)."""
    return classes(ctx.kernel).register(ctx, cls, False)


def _unregister(ctx: Any, cls: int) -> None:
    found = classes(ctx.kernel).unregister(cls)
    if found is None:
        return
    if found.allocated:
        ctx.kernel.slab.free(cls, None)           # class_create_release


@export("class_unregister", "void class_unregister(struct class *cls)", nargs=1, gpl=True)
def class_unregister(ctx: Any, cls: int) -> None:
    _unregister(ctx, cls)


@export("class_destroy", "void class_destroy(struct class *cls)", nargs=1, gpl=True)
def class_destroy(ctx: Any, cls: int) -> None:
    if cls and cls < _err_ptr(MAX_ERRNO):            # IS_ERR_OR_NULL
        _unregister(ctx, cls)


def _kernel_free(kernel: "Kernel") -> Any:
    def release(dev: int) -> None:                   # device_create_release
        kernel.slab.free(dev, None)
    return release


@export("device_create", "struct device *device_create(struct class *cls, struct device *parent, "
        "dev_t devt, void *drvdata, const char *fmt, ...)", nargs=5, variadic=True, gpl=True)
def device_create(ctx: Any, cls: int, parent: int, devt: int, drvdata: int, fmt: int) -> Any:
    """device_create_groups_vargs: a device of the class over `devt`."""
    device_off = ctx.kernel.layouts[DEVICE]
    kernel, mem = ctx.kernel, ctx.mem
    found = classes(kernel).by_address.get(cls)
    if found is None:
        return _err_ptr(errno.ENODEV)                 # IS_ERR_OR_NULL(class): a class never registered
    name = format_guest(ctx, fmt, ctx.va(), room=256)[0]
    dev = kernel.slab.alloc(device_off.size, getattr(ctx.module, "name", None), zero=True)
    if not dev:
        return _err_ptr(errno.ENOMEM)
    table = devices(kernel)
    table.initialize(dev)
    table.of(dev).kernel_release = _kernel_free(kernel)
    mem.write_u32(dev + device_off.devt, devt & 0xFFFFFFFF)
    mem.write_u64(dev + device_off.class_, cls)
    mem.write_u64(dev + device_off.parent, parent)
    mem.write_u64(dev + device_off.driver_data, drvdata)
    kobjects(kernel).set_name(dev, name, None)
    ret = add_device(ctx, dev)

    async def finishing() -> int:
        result = await ret
        return _created(ctx, found, dev, result)
    if hasattr(ret, "__await__"):
        return finishing()
    return _created(ctx, found, dev, ret)


def _created(ctx: Any, found: Class, dev: int, ret: int) -> int:
    if ret:
        put_device(ctx, dev)
        return _err_ptr(-ret)
    found.devices.append(dev)
    return dev


@export("device_destroy", "void device_destroy(struct class *cls, dev_t devt)", nargs=2, gpl=True)
def device_destroy(ctx: Any, cls: int, devt: int) -> Any:
    device_off = ctx.kernel.layouts[DEVICE]
    found = classes(ctx.kernel).by_address.get(cls)
    devt &= 0xFFFFFFFF
    dev = next((d for d in (found.devices if found else ()) if ctx.mem.read_u32(d + device_off.devt) == devt), 0)
    if not dev:
        return 0
    found.devices.remove(dev)
    return _then_put(ctx, dev, del_device(ctx, dev))


@export("class_create_file_ns", "int class_create_file_ns(const struct class *cls, const struct class_attribute "
        "*attr, const void *ns)", nargs=3, gpl=True)
def class_create_file_ns(ctx: Any, cls: int, attr: int, ns: int) -> int:
    found = classes(ctx.kernel).by_address.get(cls)
    if found is None or not attr:
        return -errno.EINVAL                     # class_to_subsys(): not registered
    at = ctx.kernel.layouts[CLASS_ATTR]
    methods = (ctx.mem.read_u64(attr + at.show), ctx.mem.read_u64(attr + at.store))
    return add_file(ctx, cls, attr + at.attr, found.directory, found=methods)


@export("class_remove_file_ns", "void class_remove_file_ns(const struct class *cls, const struct "
        "class_attribute *attr, const void *ns)", nargs=3, gpl=True)
def class_remove_file_ns(ctx: Any, cls: int, attr: int, ns: int) -> Any:
    found = classes(ctx.kernel).by_address.get(cls)
    if found is None or not attr:
        return None
    name_ptr = ctx.mem.read_u64(attr + ctx.kernel.layouts[CLASS_ATTR].attr + ctx.kernel.layouts[ATTR].name)
    name = ctx.mem.read_cstr(name_ptr, 256).decode("utf-8", "replace") if name_ptr else ""
    return remove_name(ctx, found.directory, name)
