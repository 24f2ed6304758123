"""net/core/rtnetlink.c's tables of what answers rtnetlink: the message
handlers (`rtnl_register_module`, `__rtnl_register_many`, `rtnl_unregister`,
`rtnl_unregister_all`, `__rtnl_unregister_many`) and the address families'
link attribute ops (`rtnl_af_register`, `rtnl_af_unregister`).

As Linux 6.1 and 6.12 (whose stable trees both have the `_many` forms):
`rtnl_msg_handlers[protocol]` is a table of RTM_NR_MSGTYPES pointers
(kcalloc'd at a protocol's first registration) to `struct rtnl_link`
{doit, dumpit, owner, flags, rcu}; registering a (protocol, message type)
that already has a handler copies it and adds to it: a second doit or
dumpit different from the first, an owner different from the first, or
RTNL_FLAG_BULK_DEL_SUPPORTED on a message type that is not a DEL is a
WARN_ON (and is taken), a failed allocation -ENOBUFS (the table's
allocations are the kernel's own, which failslab never fails here).  A protocol above
RTNL_FAMILY_MAX or a message type outside RTM_BASE..RTM_MAX is BUG().
`rtnl_unregister` of a protocol with no table is -ENOENT, of an empty slot
0; `rtnl_unregister_all` frees the protocol's table.
`__rtnl_register_many` registers each handler of the array in turn and, at
the first failure, unregisters those before it (in reverse) and returns the
error.  `rtnl_af_register` links the ops on `rtnl_af_ops` (no check for a
family registered twice, as Linux); `rtnl_af_unregister` unlinks them.

Each handler is recorded as a registration of its owner (the `owner`
argument, else the module its doit or dumpit is in), so one left
registered when its module goes is reported and taken out of the table.

Where kloader differs: no netlink socket reaches the table, so no doit or
dumpit is ever called (and the core's own handlers, rtnetlink_init's
PF_UNSPEC and PF_BRIDGE ones, are not in it); the tables are kept for the
registrations, the errnos and the leftovers.  `struct rtnl_link` is
rtnetlink.c's own: its layout (the same in 6.1 and 6.12) is not a module's
concern, so it is written as those releases lay it out.  The WARN and BUG
reports name net/core/rtnetlink.c without a line.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import constants, struct
from ...kernel.oops import KernelBug
from ...kernel.panic import warn
from ...kernel.registry import owner_of, record_listed
from ...lib.list import GuestList

HANDLER = struct("struct rtnl_msg_handler", "net/rtnetlink.h", "owner", "protocol", "msgtype", "doit",
                 "dumpit", "flags")
AF_OPS = struct("struct rtnl_af_ops", "net/rtnetlink.h", "list", "family")
RTM = constants("rtnetlink message types", "net/rtnetlink.h", "RTM_BASE", "RTM_NR_MSGTYPES",
                "RTNL_FAMILY_MAX", "RTNL_KIND_MASK", "RTNL_KIND_DEL", "RTNL_FLAG_BULK_DEL_SUPPORTED")
STRUCTS = (HANDLER, AF_OPS, RTM)       # what these functions read at the kernel's offsets
WHERE = "net/core/rtnetlink.c"
# struct rtnl_link (rtnetlink.c's own): doit, dumpit, owner, flags, rcu_head
LINK_DOIT, LINK_DUMPIT, LINK_OWNER, LINK_FLAGS, LINK_SIZE = 0, 8, 16, 24, 48
REGISTRY = "rtnl_handler"


def _int(value: int) -> int:
    """A C int argument (the low 32 bits, signed)."""
    return ((value & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000


@dataclass
class Link:
    """One `struct rtnl_link`: what answers (protocol, msgtype)."""
    address: int                 # the kernel object in guest memory
    doit: int
    dumpit: int
    owner: int                   # struct module *, 0 for the core kernel
    flags: int


class MsgHandlers:
    """rtnl_msg_handlers[]: each protocol's table (guest address) and links."""

    def __init__(self, kernel: Any) -> None:
        self.tables: dict[int, int] = {}
        self.links: dict[tuple[int, int], Link] = {}


def _check_range(ctx: Any, protocol: int, msgtype: int | None) -> int:
    """BUG_ON(protocol < 0 || protocol > RTNL_FAMILY_MAX) and rtm_msgindex()'s
    BUG_ON: the slot of `msgtype` in a protocol's table (0 with no msgtype)."""
    rtm = ctx.kernel.layouts[RTM]
    if protocol < 0 or protocol > rtm.RTNL_FAMILY_MAX:
        raise KernelBug(WHERE)
    if msgtype is None:
        return 0
    index = msgtype - rtm.RTM_BASE
    if index < 0 or index >= rtm.RTM_NR_MSGTYPES:
        raise KernelBug(WHERE)
    return index


def _what(ctx: Any, protocol: int, msgtype: int, link: Link) -> str:
    names = [f"{kind} {ctx.kernel.symbolize(fn, False) or hex(fn)}"
             for kind, fn in (("doit", link.doit), ("dumpit", link.dumpit)) if fn]
    return f"rtnetlink handler protocol {protocol} msgtype {msgtype} ({', '.join(names) or 'none'})"


def _write_link(mem: Any, link: Link) -> None:
    mem.write_u64(link.address + LINK_DOIT, link.doit)
    mem.write_u64(link.address + LINK_DUMPIT, link.dumpit)
    mem.write_u64(link.address + LINK_OWNER, link.owner)
    mem.write_u32(link.address + LINK_FLAGS, link.flags)


def _table(ctx: Any, state: MsgHandlers, protocol: int) -> int:
    """The protocol's table, kcalloc'd at its first handler (0: no memory)."""
    tab = state.tables.get(protocol, 0)
    if not tab:
        tab = ctx.kernel.slab.alloc(ctx.kernel.layouts[RTM].RTM_NR_MSGTYPES * 8, None, zero=True)
        if tab:
            state.tables[protocol] = tab
    return tab


def register_internal(ctx: Any, owner: int, protocol: int, msgtype: int, doit: int, dumpit: int,
                      flags: int) -> int:
    """rtnl_register_internal(): add doit/dumpit/flags to (protocol, msgtype)."""
    index = _check_range(ctx, protocol, msgtype)
    kernel, rtm = ctx.kernel, ctx.kernel.layouts[RTM]
    state = kernel.subsystem(MsgHandlers)
    tab = _table(ctx, state, protocol)
    address = kernel.slab.alloc(LINK_SIZE, None, zero=True) if tab else 0
    if not address:
        return -errno.ENOBUFS
    old = state.links.get((protocol, msgtype))
    link = Link(address, *((old.doit, old.dumpit, old.owner, old.flags) if old else (0, 0, 0, 0)))
    for bad, condition in (
            (link.owner and link.owner != owner, "WARN_ON(link->owner && link->owner != owner)"),
            (doit and link.doit and link.doit != doit, "WARN_ON(doit && link->doit && link->doit != doit)"),
            (dumpit and link.dumpit and link.dumpit != dumpit,
             "WARN_ON(dumpit && link->dumpit && link->dumpit != dumpit)"),
            ((msgtype & rtm.RTNL_KIND_MASK) != rtm.RTNL_KIND_DEL and flags & rtm.RTNL_FLAG_BULK_DEL_SUPPORTED,
             "WARN_ON(rtnl_msgtype_kind(msgtype) != RTNL_KIND_DEL && "
             "(flags & RTNL_FLAG_BULK_DEL_SUPPORTED))")):
        if bad:
            warn(ctx, condition, WHERE, "rtnl_register_module")
    link.owner = owner
    link.doit, link.dumpit = doit or link.doit, dumpit or link.dumpit
    link.flags |= flags & 0xFFFFFFFF
    _write_link(ctx.mem, link)
    ctx.mem.write_u64(tab + index * 8, address)
    _publish(ctx, state, protocol, msgtype, link)
    if old is not None:
        kernel.slab.free(old.address, None)          # kfree_rcu(old, rcu)
    return 0


def _publish(ctx: Any, state: MsgHandlers, protocol: int, msgtype: int, link: Link) -> None:
    """The link answers (protocol, msgtype) now; record it for its owner."""
    key = (protocol, msgtype)
    state.links[key] = link
    registry = ctx.kernel.registrations.registry(REGISTRY)
    registry.remove(key)
    registry.add(key, _what(ctx, protocol, msgtype, link),
                 owner=owner_of(ctx.kernel, link.doit or link.dumpit, link.owner),
                 points_to=(link.doit, link.dumpit), data=link,
                 on_leftover=lambda entry: _drop(ctx.kernel, protocol, msgtype))


def _drop(kernel: Any, protocol: int, msgtype: int) -> None:
    """Clear the slot and free its link (unregister, or a leftover made inert)."""
    state = kernel.subsystem(MsgHandlers)
    link = state.links.pop((protocol, msgtype), None)
    tab = state.tables.get(protocol)
    if tab:
        kernel.mem.write_u64(tab + (msgtype - kernel.layouts[RTM].RTM_BASE) * 8, 0)
    if link is not None:
        kernel.slab.free(link.address, None)
    kernel.registrations.registry(REGISTRY).remove((protocol, msgtype))


@export("rtnl_register_module", "int rtnl_register_module(struct module *owner, int protocol, int msgtype, "
        "rtnl_doit_func doit, rtnl_dumpit_func dumpit, unsigned int flags)", nargs=6, gpl=True)
def rtnl_register_module(ctx: Any, owner: int, protocol: int, msgtype: int, doit: int, dumpit: int,
                         flags: int) -> int:
    """(Linux takes the RTNL around the table's update; it is atomic here.)"""
    return register_internal(ctx, owner, _int(protocol), _int(msgtype), doit, dumpit, flags)


@export("rtnl_unregister", "int rtnl_unregister(int protocol, int msgtype)", nargs=2, gpl=True)
def rtnl_unregister(ctx: Any, protocol: int, msgtype: int) -> int:
    protocol, msgtype = _int(protocol), _int(msgtype)
    _check_range(ctx, protocol, msgtype)
    if protocol not in ctx.kernel.subsystem(MsgHandlers).tables:
        return -errno.ENOENT
    _drop(ctx.kernel, protocol, msgtype)
    return 0


@export("rtnl_unregister_all", "void rtnl_unregister_all(int protocol)", nargs=1, gpl=True)
def rtnl_unregister_all(ctx: Any, protocol: int) -> int:
    protocol = _int(protocol)
    _check_range(ctx, protocol, None)
    state = ctx.kernel.subsystem(MsgHandlers)
    tab = state.tables.get(protocol)
    if tab is None:
        return 0
    for key in [key for key in state.links if key[0] == protocol]:
        _drop(ctx.kernel, *key)
    del state.tables[protocol]
    ctx.kernel.slab.free(tab, None)
    return 0


def _handlers(ctx: Any, handlers: int, n: int) -> list[tuple[int, int, int, int, int, int]]:
    """(owner, protocol, msgtype, doit, dumpit, flags) of each rtnl_msg_handler."""
    mem, h = ctx.mem, ctx.kernel.layouts[HANDLER]
    return [(mem.read_u64(at + h.owner), _int(mem.read_u32(at + h.protocol)),
             _int(mem.read_u32(at + h.msgtype)), mem.read_u64(at + h.doit), mem.read_u64(at + h.dumpit),
             mem.read_u32(at + h.flags))
            for at in range(handlers, handlers + max(n, 0) * h.size, h.size)]


@export("__rtnl_register_many",
        "int __rtnl_register_many(const struct rtnl_msg_handler *handlers, int n)", nargs=2, gpl=True)
def __rtnl_register_many(ctx: Any, handlers: int, n: int) -> int:
    n = _int(n)
    for i, handler in enumerate(_handlers(ctx, handlers, n)):
        err = register_internal(ctx, *handler)
        if err:
            __rtnl_unregister_many(ctx, handlers, i)
            return err
    return 0


@export("__rtnl_unregister_many",
        "void __rtnl_unregister_many(const struct rtnl_msg_handler *handlers, int n)", nargs=2, gpl=True)
def __rtnl_unregister_many(ctx: Any, handlers: int, n: int) -> int:
    for _, protocol, msgtype, *_rest in reversed(_handlers(ctx, handlers, _int(n))):
        rtnl_unregister(ctx, protocol, msgtype)
    return 0


# --- rtnl_af_ops -----------------------------------------------------------------------

class AfOps:
    """The kernel's `rtnl_af_ops` list."""

    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


@export("rtnl_af_register", "void rtnl_af_register(struct rtnl_af_ops *ops)", nargs=1, gpl=True)
def rtnl_af_register(ctx: Any, ops: int) -> int:
    """list_add_tail_rcu(&ops->list, &rtnl_af_ops) (under the RTNL in Linux)."""
    layout, state = ctx.kernel.layouts[AF_OPS], ctx.kernel.subsystem(AfOps)
    state.list.add_tail(ctx, ops + layout.list)
    family = _int(ctx.mem.read_u32(ops + layout.family))
    record_listed(ctx.kernel, "rtnl_af", ops, f"rtnetlink address family ops for family {family}",
                  state.list, layout.list)
    return 0


@export("rtnl_af_unregister", "void rtnl_af_unregister(struct rtnl_af_ops *ops)", nargs=1, gpl=True)
def rtnl_af_unregister(ctx: Any, ops: int) -> int:
    """list_del_rcu(&ops->list), then synchronize_rcu() (no reader walks it here)."""
    GuestList.delete(ctx, ops + ctx.kernel.layouts[AF_OPS].list, rcu=True)
    ctx.kernel.registrations.registry("rtnl_af").remove(ops)
    return 0
