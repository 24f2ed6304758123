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
NULL where Linux points them at its static helpers.

Layouts (6.1): attribute_container {node@0, containers@16 (klist {k_lock@0,
k_list@8, get@24, put@32} 40), class@56, grp@64, attrs@72, match@80,
flags@88} 96 bytes.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...lib.list import GuestList, init_list_head

LAYOUTS = (6, 1)

AC_NODE, AC_CONTAINERS, AC_CLASS, AC_MATCH, AC_FLAGS = 0, 16, 56, 80, 88
KLIST_LOCK, KLIST_LIST, KLIST_GET, KLIST_PUT = 0, 8, 24, 32
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
    mem = ctx.mem
    cls = mem.read_u64(cont + AC_CLASS)
    name_ptr = mem.read_u64(cls) if cls else 0
    if name_ptr:
        return f'for class "{mem.read_cstr(name_ptr, _NAME_MAX).decode(errors="replace")}"'
    match = mem.read_u64(cont + AC_MATCH)
    return f"matching with {ctx.machine.symbol_name(match).split('+')[0]}" if match else "(no class)"


def register(ctx: Any, cont: int) -> int:
    mem, table = ctx.mem, containers(ctx)
    init_list_head(mem, cont + AC_NODE)
    klist = cont + AC_CONTAINERS
    mem.write_u32(klist + KLIST_LOCK, 0)
    init_list_head(mem, klist + KLIST_LIST)
    mem.write_u64(klist + KLIST_GET, 0)
    mem.write_u64(klist + KLIST_PUT, 0)
    table.list.add_tail(ctx, cont + AC_NODE)
    table.registry.add(cont, f"attribute container {_describe(ctx, cont)}", owner=ctx.module, address=cont,
                       on_leftover=lambda entry: table.list.unlink_quietly(cont + AC_NODE))
    return 0


def unregister(ctx: Any, cont: int) -> int:
    mem, table = ctx.mem, containers(ctx)
    klist = cont + AC_CONTAINERS + KLIST_LIST
    if mem.read_u64(klist) != klist:
        return -errno.EBUSY
    if table.registry.remove(cont) is not None:
        GuestList.delete(ctx, cont + AC_NODE)
    return 0


@export("attribute_container_register", "int attribute_container_register(struct attribute_container *cont)",
        nargs=1, gpl=True)
def attribute_container_register(ctx: Any, cont: int) -> int:
    return register(ctx, cont)


@export("attribute_container_unregister",
        "int attribute_container_unregister(struct attribute_container *cont)", nargs=1, gpl=True)
def attribute_container_unregister(ctx: Any, cont: int) -> int:
    return unregister(ctx, cont)
