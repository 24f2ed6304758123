"""net/core/net-sysfs.c: `net_class`'s own attribute files
(`netdev_class_create_file_ns`, `netdev_class_remove_file_ns`), such as
bonding's /sys/class/net/bonding_masters, beside the devices'
directories of `net_sysfs.py`.

As Linux: `class_create_file_ns(&net_class, attr, ns)`: the file is made in
/sys/class/net with the attribute's mode, reading and writing call its
`show(class, attr, buf)`/`store(class, attr, buf, count)` with the
kernel's `net_class`; a name already there is sysfs's "cannot create
duplicate filename" and -EEXIST.  `net_class` is a zeroed `struct class`
in kernel memory holding only its name "net" (kloader's devices are not
members of it), made with /sys/class/net.  Network namespaces other than
init_net are not emulated, so `ns` is not looked at.
"""

from __future__ import annotations

from typing import Any

from ...drivers.base.classes import CLASS_ATTR
from ...drivers.base.core import CLASS
from ...fs.sysfs import ATTR, add_file, remove_name
from ...fs.tree import Directory, file_tree
from ...kernel.api import export
from .net_device import NetDevices

STRUCTS = (CLASS, CLASS_ATTR, ATTR)


class NetClass:
    """The kernel's `net_class` and the directory of /sys/class/net."""

    def __init__(self, kernel: Any) -> None:
        kernel.subsystem(NetDevices)                     # /sys/class/net is made with the device tables
        node = file_tree(kernel).lookup("/sys/class/net")
        assert isinstance(node, Directory)
        self.directory = node
        layout = kernel.layouts[CLASS]
        self.address = kernel.slab.alloc(layout.size + 4, None, zero=True)
        if not self.address:
            raise MemoryError("no memory for net_class")
        kernel.mem.write(self.address + layout.size, b"net\0")
        kernel.mem.write_u64(self.address + layout.name, self.address + layout.size)


@export("netdev_class_create_file_ns", "int netdev_class_create_file_ns(const struct class_attribute "
        "*class_attr, const void *ns)", nargs=2)
def netdev_class_create_file_ns(ctx: Any, attr: int, ns: int) -> int:
    net = ctx.kernel.subsystem(NetClass)
    at = ctx.kernel.layouts[CLASS_ATTR]
    methods = (ctx.mem.read_u64(attr + at.show), ctx.mem.read_u64(attr + at.store))
    return add_file(ctx, net.address, attr + at.attr, net.directory, found=methods)


@export("netdev_class_remove_file_ns", "void netdev_class_remove_file_ns(const struct class_attribute "
        "*class_attr, const void *ns)", nargs=2)
def netdev_class_remove_file_ns(ctx: Any, attr: int, ns: int) -> Any:
    net = ctx.kernel.subsystem(NetClass)
    at, name_at = ctx.kernel.layouts[CLASS_ATTR], ctx.kernel.layouts[ATTR].name
    name_ptr = ctx.mem.read_u64(attr + at.attr + name_at)
    name = ctx.mem.read_cstr(name_ptr, 256).decode("utf-8", "replace") if name_ptr else ""
    return remove_name(ctx, net.directory, name)
