"""net/xfrm/xfrm_state.c: IPsec transform types (`xfrm_register_type`).

As Linux 6.1: the family must have its xfrm state info (AF_INET, and
AF_INET6 when IPv6 is built in), else -EAFNOSUPPORT; the type fills the
family's slot for its protocol (COMP, AH, ESP, IPIP, IPv6, and the IPv6
destination-options and routing headers) — a slot already taken is a
WARN_ON and is overwritten, as Linux does; any other protocol is a WARN_ON
and -EPROTONOSUPPORT.  Unregistering empties the slot, WARNing if another
type is in it.  xfrm_type {owner, proto (u8)} is read at the running
kernel's offsets.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.panic import warn
from ...kernel.registry import owner_of

XFRM_TYPE = struct("struct xfrm_type", "net/xfrm.h", "owner", "proto")
STRUCTS = (XFRM_TYPE,)     # what these functions read at the kernel's offsets
AF_INET, AF_INET6 = 2, 10
SLOTS = {108: "comp", 51: "ah", 50: "esp", 4: "ipip", 41: "ipip6", 60: "dstopts", 43: "routing"}


def _families(ctx: Any) -> set[int]:
    return {AF_INET} | ({AF_INET6} if ctx.kernel.builds_in("IPV6") else set())


@export("xfrm_register_type", "int xfrm_register_type(const struct xfrm_type *type, "
        "unsigned short family)", nargs=2)
def xfrm_register_type(ctx: Any, xtype: int, family: int) -> int:
    family &= 0xFFFF
    if family not in _families(ctx):
        return -errno.EAFNOSUPPORT
    proto = ctx.mem.read(xtype + ctx.kernel.layouts[XFRM_TYPE].proto, 1)[0]
    if proto not in SLOTS:
        warn(ctx, "", "net/xfrm/xfrm_state.c:378", "xfrm_register_type")
        return -errno.EPROTONOSUPPORT
    registry = ctx.kernel.registrations.registry("xfrm_type")
    if registry.remove((family, proto)) is not None:
        warn(ctx, "", "net/xfrm/xfrm_state.c:350", "xfrm_register_type")
    registry.add((family, proto), f"xfrm type {SLOTS[proto]} for family {family}",
                 owner=owner_of(ctx.kernel, xtype, ctx.mem.read_u64(xtype + ctx.kernel.layouts[XFRM_TYPE].owner)),
                 address=xtype)
    return 0


@export("xfrm_unregister_type", "void xfrm_unregister_type(const struct xfrm_type *type, "
        "unsigned short family)", nargs=2)
def xfrm_unregister_type(ctx: Any, xtype: int, family: int) -> None:
    family &= 0xFFFF
    if family not in _families(ctx):
        return
    proto = ctx.mem.read(xtype + ctx.kernel.layouts[XFRM_TYPE].proto, 1)[0]
    if proto not in SLOTS:
        warn(ctx, "", "net/xfrm/xfrm_state.c:410", "xfrm_unregister_type")
        return
    entry = ctx.kernel.registrations.registry("xfrm_type").remove((family, proto))
    if entry is None or entry.address != xtype:
        warn(ctx, "", "net/xfrm/xfrm_state.c:385", "xfrm_unregister_type")


@export("xfrm_state_flush", "int xfrm_state_flush(struct net *net, u8 proto, bool task_valid, "
        "bool sync)", nargs=4)
def xfrm_state_flush(ctx: Any, net: int, proto: int, task_valid: int, sync: int) -> int:
    return -errno.ESRCH


@export("xfrm_flush_gc", "void xfrm_flush_gc(void)", nargs=0)
def xfrm_flush_gc(ctx: Any) -> None:
    return None
