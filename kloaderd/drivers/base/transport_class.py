"""Transport classes (Linux's drivers/base/transport_class.c): a class
(`struct transport_class` begins with its `struct class`) plus, for the
anonymous kind, an attribute container of its own — what
scsi_transport_sas/fc/iscsi/spi/srp and libata's ATA transport register.

`transport_class_register` registers the class (/sys/class/NAME);
`anon_transport_class_register` points its container at the class, marks
it as making no class devices and registers the container; each
unregister undoes its register.  The per-device calls
(`transport_setup_device`, `transport_add_device`, ...) are not emulated:
they follow a host or port being added, and no hardware makes one here.

Where kloader differs: an anonymous class's setup and remove are NULL where
Linux points them at its static dummy function (only devices call them).
`struct anon_transport_class` is read at the kernel's offsets
(kernel/layouts.py); a transport class begins with its class.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.oops import KernelBug
from ...kernel.layouts import struct
from . import attribute_container
from .classes import STRUCTS as CLASS_STRUCTS, _unregister, classes

ANON = struct("struct anon_transport_class", "linux/transport_class.h", "container")
STRUCTS = (ANON, *attribute_container.STRUCTS, *CLASS_STRUCTS)


@export("transport_class_register", "int transport_class_register(struct transport_class *tclass)", nargs=1,
        gpl=True)
def transport_class_register(ctx: Any, tclass: int) -> int:
    return classes(ctx.kernel).register(ctx, tclass, False)


@export("transport_class_unregister", "void transport_class_unregister(struct transport_class *tclass)",
        nargs=1, gpl=True)
def transport_class_unregister(ctx: Any, tclass: int) -> None:
    _unregister(ctx, tclass)


@export("anon_transport_class_register",
        "int anon_transport_class_register(struct anon_transport_class *atc)", nargs=1, gpl=True)
def anon_transport_class_register(ctx: Any, atc: int) -> int:
    mem, at = ctx.mem, ctx.kernel.layouts[attribute_container.CONTAINER]
    cont = atc + ctx.kernel.layouts[ANON].container
    mem.write_u64(cont + at.class_, atc)
    flags = mem.read_u64(cont + at.flags)
    mem.write_u64(cont + at.flags, flags | attribute_container.ATTRIBUTE_CONTAINER_NO_CLASSDEVS)
    return attribute_container.register(ctx, cont)


@export("anon_transport_class_unregister",
        "void anon_transport_class_unregister(struct anon_transport_class *atc)", nargs=1, gpl=True)
def anon_transport_class_unregister(ctx: Any, atc: int) -> None:
    if attribute_container.unregister(ctx, atc + ctx.kernel.layouts[ANON].container):
        raise KernelBug("drivers/base/transport_class.c:101")
