"""fs/nls/nls_base.c: the registry of character sets (`register_nls`),
which every fs/nls/nls_*.ko module's init and exit are about.

As Linux: `tables` is a singly linked list threaded through
`struct nls_table.next` (at the kernel's offsets, kernel/layouts.py), headed
by the built-in "default" table (a kernel object here, so the first
registered table's `next` points at it as in Linux).  `__register_nls` sets
`owner` and pushes the table on the front; a table whose `next` is already
set, or that is already on the list, is -EBUSY.  `unregister_nls` of a table
not on the list is -EINVAL.  Each registered table is also in the "nls"
registry, so one left registered by a freed module is reported and unlinked.

`load_nls` finds a table by charset or alias and takes a reference on its
module (NULL if that module is going); a charset nobody registered is
asked of modprobe as `nls_CHARSET` first (try_then_request_module), as
nls_euc-jp's init asks for cp932; `unload_nls` drops the reference.
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export
from ..kernel.layouts import struct
from ..kernel.memory import GuestFault

NLS = struct("struct nls_table", "linux/nls.h", "charset", "alias", "owner", "next")
STRUCTS = (NLS,)             # what these functions read at the kernel's offsets
DEFAULT_CHARSET = b"default\0"


class NlsTables:
    """`tables` of one kernel: the guest address of its first table."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.nls = nls = kernel.layouts[NLS]
        default = kernel.slab.alloc(nls.size + len(DEFAULT_CHARSET), None, zero=True)
        if not default:
            raise MemoryError("no memory for the default nls table")
        kernel.mem.write(default + nls.size, DEFAULT_CHARSET)
        kernel.mem.write_u64(default + nls.charset, default + nls.size)
        self.first = self.default = default

    def links(self) -> Any:
        """The addresses of the pointers along the list: `tables`, then each `next`."""
        yield None                                   # `tables` itself, kept in Python
        table = self.first
        while table:
            yield table + self.nls.next
            table = self.kernel.mem.read_u64(table + self.nls.next)

    def read(self, link: int | None) -> int:
        return self.first if link is None else self.kernel.mem.read_u64(link)

    def write(self, link: int | None, value: int) -> None:
        if link is None:
            self.first = value
        else:
            self.kernel.mem.write_u64(link, value)

    def unlink(self, nls: int) -> bool:
        for link in self.links():
            if self.read(link) == nls:
                self.write(link, self.kernel.mem.read_u64(nls + self.nls.next))
                return True
            if self.read(link) == 0:
                break
        return False


def _charset(ctx: Any, nls: int) -> str:
    name = ctx.mem.read_u64(nls + ctx.kernel.layouts[NLS].charset)
    return ctx.mem.read_cstr(name, 64).decode("utf-8", "replace") if name else "?"


@export("__register_nls", "int __register_nls(struct nls_table *nls, struct module *owner)",
        nargs=2)
def __register_nls(ctx: Any, nls: int, owner: int) -> int:
    mem, layout = ctx.mem, ctx.kernel.layouts[NLS]
    if mem.read_u64(nls + layout.next):
        return -errno.EBUSY
    mem.write_u64(nls + layout.owner, owner)
    tables = ctx.kernel.subsystem(NlsTables)
    table = tables.first
    while table:
        if table == nls:
            return -errno.EBUSY
        table = mem.read_u64(table + layout.next)
    mem.write_u64(nls + layout.next, tables.first)
    tables.first = nls
    regs = ctx.kernel.registrations
    module = ctx.kernel.module_by_struct(owner) or regs.module_at(nls)
    regs.registry("nls").add(nls, f"nls table {_charset(ctx, nls)}", owner=module, address=nls,
                             data=tables, on_leftover=_unlink_leftover)
    return 0


@export("unregister_nls", "int unregister_nls(struct nls_table *nls)", nargs=1)
def unregister_nls(ctx: Any, nls: int) -> int:
    tables = ctx.kernel.subsystem(NlsTables)
    if not tables.unlink(nls):
        return -errno.EINVAL
    ctx.kernel.registrations.registry("nls").remove(nls)
    return 0


def _unlink_leftover(entry: Any) -> None:
    try:
        entry.data.unlink(entry.key)
    except GuestFault:
        pass


def _find(ctx: Any, charset: str) -> int:
    """find_nls(): a registered table by charset or alias, whose module can be
    entered (try_module_get on its owner)."""
    mem, tables = ctx.mem, ctx.kernel.subsystem(NlsTables)
    layout = tables.nls
    table = tables.first
    while table:
        names = [_charset(ctx, table)]
        alias = mem.read_u64(table + layout.alias)
        if alias:
            names.append(mem.read_cstr(alias, 64).decode("utf-8", "replace"))
        if charset in names:
            owner = ctx.kernel.module_by_struct(mem.read_u64(table + layout.owner))
            if owner is not None and not ctx.kernel.module_get(owner, owner_ref(ctx)):
                return 0
            return table
        table = mem.read_u64(table + layout.next)
    return 0


def owner_ref(ctx: Any) -> Any:
    """Who holds the reference load_nls takes: the calling module's code."""
    return ctx.module.code_owner if ctx.module is not None else ctx.kernel.kernel_owner


@export("load_nls", "struct nls_table *load_nls(char *charset)", nargs=1)
def load_nls(ctx: Any, charset: int) -> Any:
    name = ctx.mem.read_cstr(charset, 64).decode("utf-8", "replace")
    table = _find(ctx, name)
    if table:
        return table

    async def requesting() -> int:
        await ctx.kernel.kmod.request_module(f"nls_{name}")
        return _find(ctx, name)
    return requesting()


@export("unload_nls", "void unload_nls(struct nls_table *nls)", nargs=1)
def unload_nls(ctx: Any, nls: int) -> None:
    if nls:
        owner = ctx.kernel.module_by_struct(ctx.mem.read_u64(nls + ctx.kernel.layouts[NLS].owner))
        if owner is not None:
            ctx.kernel.module_put_from_code(owner, owner_ref(ctx))


@export("load_nls_default", "struct nls_table *load_nls_default(void)", nargs=0)
def load_nls_default(ctx: Any) -> int:
    """CONFIG_NLS_DEFAULT's table if registered, else the built-in default."""
    profile = ctx.kernel.profile
    wanted = profile.config.get("CONFIG_NLS_DEFAULT", "utf8") if profile is not None else "utf8"
    return _find(ctx, wanted) or ctx.kernel.subsystem(NlsTables).default
