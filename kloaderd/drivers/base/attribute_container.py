"""Attribute containers (Linux's drivers/base/attribute_container.c): the
lists of classes that want a class device of their own beside a device of
another kind — what the SCSI and ATA transport classes are built from.

`attribute_container_register` initialises the container's `node` and its
`containers` klist and links it on the kernel's `attribute_container_list`
(in guest memory, as Linux links it); `attribute_container_unregister`
unlinks it, -EBUSY while class devices are still on its klist.  A container
left registered when its module is freed is a leaked registration.

Where kloader differs: no device is ever added to a container (there is no
hardware to make SCSI hosts or ATA ports of), and the klist's get/put are
NULL where Linux points them at its static helpers.  `struct
attribute_container` and its `struct klist` are read at the kernel's
offsets (kernel/layouts.py).
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...lib.list import GuestList, init_list_head

CONTAINER = struct("struct attribute_container", "linux/attribute_container.h", "node", "containers",
                   "class", "match", "flags")
KLIST = struct("struct klist", "linux/klist.h", "k_lock", "k_list", "get", "put")
STRUCTS = (CONTAINER, KLIST)
ATTRIBUTE_CONTAINER_NO_CLASSDEVS = 0x01
_NAME_MAX = 256


class AttributeContainers:
    """attribute_container_list, and the registrations on it."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.list = GuestList(kernel)
        self.registry = kernel.registrations.registry("attribute_container")


def containers(ctx: Any) -> AttributeContainers:
    return ctx.kernel.subsystem(AttributeContainers)


def _describe(ctx: Any, cont: int) -> str:
    """By its class's name, else (an anonymous transport class) its match function."""
    mem, at = ctx.mem, ctx.kernel.layouts[CONTAINER]
    cls = mem.read_u64(cont + at.class_)
    name_ptr = mem.read_u64(cls) if cls else 0
    if name_ptr:
        return f'for class "{mem.read_cstr(name_ptr, _NAME_MAX).decode(errors="replace")}"'
    match = mem.read_u64(cont + at.match)
    return f"matching with {ctx.machine.symbol_name(match).split('+')[0]}" if match else "(no class)"


def register(ctx: Any, cont: int) -> int:
    mem, table = ctx.mem, containers(ctx)
    at, kl = ctx.kernel.layouts[CONTAINER], ctx.kernel.layouts[KLIST]
    node = cont + at.node
    init_list_head(mem, node)
    klist = cont + at.containers
    mem.write_u32(klist + kl.k_lock, 0)
    init_list_head(mem, klist + kl.k_list)
    mem.write_u64(klist + kl.get, 0)
    mem.write_u64(klist + kl.put, 0)
    table.list.add_tail(ctx, node)
    table.registry.add(cont, f"attribute container {_describe(ctx, cont)}", owner=ctx.module, address=cont,
                       on_leftover=lambda entry: table.list.unlink_quietly(node))
    return 0


def unregister(ctx: Any, cont: int) -> int:
    mem, table, at = ctx.mem, containers(ctx), ctx.kernel.layouts[CONTAINER]
    klist = cont + at.containers + ctx.kernel.layouts[KLIST].k_list
    if mem.read_u64(klist) != klist:
        return -errno.EBUSY
    if table.registry.remove(cont) is not None:
        GuestList.delete(ctx, cont + at.node)
    return 0


@export("attribute_container_register", "int attribute_container_register(struct attribute_container *cont)",
        nargs=1, gpl=True)
def attribute_container_register(ctx: Any, cont: int) -> int:
    return register(ctx, cont)


@export("attribute_container_unregister",
        "int attribute_container_unregister(struct attribute_container *cont)", nargs=1, gpl=True)
def attribute_container_unregister(ctx: Any, cont: int) -> int:
    return unregister(ctx, cont)
