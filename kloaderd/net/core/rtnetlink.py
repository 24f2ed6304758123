"""net/core/rtnetlink.c: link types (`rtnl_link_register`), what `ip link
add type KIND` finds.

As Linux 6.1: a kind already registered is -EEXIST; ops that can create
devices (alloc or setup) but have no dellink get unregister_netdevice_queue
as their dellink; the ops are appended to `link_ops` through their `list`
(in guest memory).  Unregistering destroys the kind's devices in every
namespace (there are none) and unlinks.  No link kind is built into
Debian's kernel.  Layout: rtnl_link_ops {list@0, kind@16 (char *),
alloc@32, setup@40, dellink@88}.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.registry import record_listed
from ...lib.list import GuestList

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

LIST, KIND, ALLOC, SETUP, DELLINK = 0, 16, 32, 40, 88


class LinkOps:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


def _kind(mem: Any, ops: int) -> str:
    return mem.read_cstr(mem.read_u64(ops + KIND), 64).decode("utf-8", "replace")


@export("rtnl_link_register", "int rtnl_link_register(struct rtnl_link_ops *ops)", nargs=1)
def rtnl_link_register(ctx: Any, ops: int) -> int:
    mem, state = ctx.mem, ctx.kernel.subsystem(LinkOps)
    kind = _kind(mem, ops)
    if any(_kind(mem, node - LIST) == kind for node in state.list):
        return -errno.EEXIST
    if (mem.read_u64(ops + ALLOC) or mem.read_u64(ops + SETUP)) and not mem.read_u64(ops + DELLINK):
        dellink = ctx.kernel.symbols.get("unregister_netdevice_queue")
        if dellink is not None:
            mem.write_u64(ops + DELLINK, dellink.address)
    state.list.add_tail(ctx, ops + LIST)
    record_listed(ctx.kernel, "rtnl_link", ops, f"rtnetlink link kind {kind}", state.list, LIST)
    return 0


@export("rtnl_link_unregister", "void rtnl_link_unregister(struct rtnl_link_ops *ops)", nargs=1)
def rtnl_link_unregister(ctx: Any, ops: int) -> None:
    ctx.kernel.subsystem(LinkOps).list.delete(ctx, ops + LIST)
    ctx.kernel.registrations.registry("rtnl_link").remove(ops)
