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

Layouts (6.1): transport_class {class@0, setup@120, configure@128,
remove@136} 144 bytes; anon_transport_class {tclass@0, container@144} 240.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.oops import KernelBug
from . import attribute_container
from .classes import _unregister, classes

LAYOUTS = (6, 1)

ATC_CONTAINER = 144


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
    mem = ctx.mem
    cont = atc + ATC_CONTAINER
    mem.write_u64(cont + attribute_container.AC_CLASS, atc)
    flags = mem.read_u64(cont + attribute_container.AC_FLAGS)
    mem.write_u64(cont + attribute_container.AC_FLAGS, flags | attribute_container.ATTRIBUTE_CONTAINER_NO_CLASSDEVS)
    return attribute_container.register(ctx, cont)


@export("anon_transport_class_unregister",
        "void anon_transport_class_unregister(struct anon_transport_class *atc)", nargs=1, gpl=True)
def anon_transport_class_unregister(ctx: Any, atc: int) -> None:
    if attribute_container.unregister(ctx, atc + ATC_CONTAINER):
        raise KernelBug("drivers/base/transport_class.c:101")
