"""net/xfrm/xfrm_state.c: IPsec transform types (`xfrm_register_type`)
and key managers (`xfrm_register_km`: af_key's PF_KEY, xfrm_user's
netlink).

As Linux 6.1: the family must have its xfrm state info (AF_INET, and
AF_INET6 when IPv6 is built in), else -EAFNOSUPPORT; the type fills the
family's slot for its protocol (COMP, AH, ESP, IPIP, IPv6, and the IPv6
destination-options and routing headers) — a slot already taken is a
WARN_ON and is overwritten, as Linux does; any other protocol is a WARN_ON
and -EPROTONOSUPPORT.  Unregistering empties the slot, WARNing if another
type is in it.  A key manager is appended to `xfrm_km_list` through its
`list` (in guest memory); unregistering unlinks it and waits for an RCU
grace period.  No state or policy ever asks a manager for anything here.
xfrm_type {owner, proto (u8)} and xfrm_mgr {list} are read at the running
kernel's offsets.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.panic import warn
from ...kernel.rcu import synchronize_rcu
from ...kernel.registry import owner_of, record_listed
from ...lib.list import GuestList

XFRM_TYPE = struct("struct xfrm_type", "net/xfrm.h", "owner", "proto")
XFRM_MGR = struct("struct xfrm_mgr", "net/xfrm.h", "list")
STRUCTS = (XFRM_TYPE, XFRM_MGR)     # what these functions read at the kernel's offsets
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


@export("xfrm_dev_state_flush", "int xfrm_dev_state_flush(struct net *net, struct net_device *dev, "
        "bool task_valid)", nargs=3)
def xfrm_dev_state_flush(ctx: Any, net: int, dev: int, task_valid: int) -> int:
    """No state exists, so none is offloaded to `dev`: -ESRCH, as Linux when it flushed none."""
    return -errno.ESRCH


@export("xfrm_flush_gc", "void xfrm_flush_gc(void)", nargs=0)
def xfrm_flush_gc(ctx: Any) -> None:
    return None


class KeyManagers:
    """xfrm_km_list of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


@export("xfrm_register_km", "void xfrm_register_km(struct xfrm_mgr *km)", nargs=1)
def xfrm_register_km(ctx: Any, km: int) -> None:
    managers, entry = ctx.kernel.subsystem(KeyManagers).list, ctx.kernel.layouts[XFRM_MGR].list
    managers.add_tail(ctx, km + entry)
    name = ctx.kernel.symbolize(km, False) or f"{km:#x}"
    record_listed(ctx.kernel, "xfrm_km", km, f"xfrm key manager {name}", managers, entry)


@export("xfrm_unregister_km", "void xfrm_unregister_km(struct xfrm_mgr *km)", nargs=1)
def xfrm_unregister_km(ctx: Any, km: int) -> Any:
    ctx.kernel.subsystem(KeyManagers).list.delete(ctx, km + ctx.kernel.layouts[XFRM_MGR].list, rcu=True)
    ctx.kernel.registrations.registry("xfrm_km").remove(km)
    return synchronize_rcu(ctx)
