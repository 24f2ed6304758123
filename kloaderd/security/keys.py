"""security/keys/key.c's key types: `register_key_type`,
`unregister_key_type` (libceph, dns_resolver, cifs, nfsv4).

A module's `struct key_type` goes on `key_types_list` through its `link`
(in guest memory, at the running kernel's offsets: kernel/layouts.py), at
the front, as list_add() puts it.  The kernel's own types — "keyring",
".dead", "user", "logon", which key_init() puts there — are on it too, by
name, so a module type of one of their names, or of a name a module has
already registered, is -EEXIST.  Each logs Linux's notice, "Key type NAME
registered" / "Key type NAME unregistered".  A type left registered when
its module goes is reported and taken off the list.

Where kloader differs: there are no keys (no keyctl, add_key or
request_key reaches the kernel), so no key of a type is ever made or
garbage-collected, and a type's operations never run.  Unregistering a type
that is not registered only logs the notice (Linux's list_del_init would
fault on a type never registered).
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export
from ..kernel.layouts import struct
from ..kernel.printk import KERN_NOTICE
from ..lib.list import GuestList

KEY_TYPE = struct("struct key_type", "linux/key-type.h", "name", "link")
STRUCTS = (KEY_TYPE,)
BUILT_IN = ("keyring", ".dead", "user", "logon")       # key_init()'s
NAME_MAX = 256


class KeyTypes:
    """key_types_list: the module types linked in guest memory."""

    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)
        self.registry = kernel.registrations.registry("key type")


def _name(ctx: Any, ktype: int) -> str:
    ptr = ctx.mem.read_u64(ktype + ctx.kernel.layouts[KEY_TYPE].name)
    return ctx.mem.read_cstr(ptr, NAME_MAX).decode(errors="replace") if ptr else ""


def _leftover(entry: Any) -> None:
    types, ktype = entry.data
    types.list.unlink_quietly(ktype + types.list.kernel.layouts[KEY_TYPE].link)


@export("register_key_type", "int register_key_type(struct key_type *ktype)", nargs=1)
def register_key_type(ctx: Any, ktype: int) -> int:
    types = ctx.kernel.subsystem(KeyTypes)
    name = _name(ctx, ktype)
    if name in BUILT_IN or types.registry.find(name) is not None:
        return -errno.EEXIST
    types.list.add(ctx, ktype + ctx.kernel.layouts[KEY_TYPE].link)
    types.registry.add(name, f'key type "{name}"', owner=ctx.module, address=ktype, data=(types, ktype),
                       on_leftover=_leftover)
    ctx.kernel.log.emit(KERN_NOTICE, f"Key type {name} registered", None)
    return 0


@export("unregister_key_type", "void unregister_key_type(struct key_type *ktype)", nargs=1)
def unregister_key_type(ctx: Any, ktype: int) -> None:
    types = ctx.kernel.subsystem(KeyTypes)
    name = _name(ctx, ktype)
    entry = types.registry.find(name)
    if entry is not None and entry.address == ktype:
        types.registry.remove(name)
        types.list.delete(ctx, ktype + ctx.kernel.layouts[KEY_TYPE].link, init=True)
    ctx.kernel.log.emit(KERN_NOTICE, f"Key type {name} unregistered", None)
