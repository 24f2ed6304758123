"""net/xfrm/xfrm_input.c: the per-family input callbacks of IPsec
(`xfrm_input_register_afinfo`), one for ESP/AH/IPcomp and one for IP-in-IP
tunnels (tunnel4, tunnel6) per address family.

As Linux 6.1: a family above AF_INET6 is a WARN_ON and -EAFNOSUPPORT; a
slot already taken is -EEXIST; unregistering afinfo that is not the one in
its slot is -EINVAL (an empty slot is 0), then waits for an RCU grace
period.  The kernel's own xfrm4 (and xfrm6 when IPv6 is built in) hold the
non-tunnel slots.  xfrm_input_afinfo {family (u8), is_ipip (bool),
callback} is read at the running kernel's offsets.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.panic import warn
from ...kernel.rcu import synchronize_rcu
from ...kernel.registry import owner_of
from .xfrm_state import AF_INET, AF_INET6, _families

AFINFO = struct("struct xfrm_input_afinfo", "net/xfrm.h", "family", "is_ipip", "callback")
STRUCTS = (AFINFO,)        # what these functions read at the kernel's offsets


def _slot(ctx: Any, afinfo: int) -> tuple[int, int]:
    """(is_ipip, family): the slot the afinfo is for."""
    mem, a = ctx.mem, ctx.kernel.layouts[AFINFO]
    return mem.read(afinfo + a.is_ipip, 1)[0] & 1, mem.read(afinfo + a.family, 1)[0]


@export("xfrm_input_register_afinfo",
        "int xfrm_input_register_afinfo(const struct xfrm_input_afinfo *afinfo)", nargs=1)
def xfrm_input_register_afinfo(ctx: Any, afinfo: int) -> int:
    is_ipip, family = _slot(ctx, afinfo)
    if family > AF_INET6:
        warn(ctx, "WARN_ON(afinfo->family > AF_INET6)", "net/xfrm/xfrm_input.c:46",
             "xfrm_input_register_afinfo")
        return -errno.EAFNOSUPPORT
    registry = ctx.kernel.registrations.registry("xfrm_input_afinfo")
    builtin = not is_ipip and family in _families(ctx)
    if builtin or registry.find((is_ipip, family)) is not None:
        return -errno.EEXIST
    kind = "IP-in-IP tunnel" if is_ipip else "IPsec"
    name = {AF_INET: "AF_INET", AF_INET6: "AF_INET6"}.get(family, f"family {family}")
    registry.add((is_ipip, family), f"xfrm input afinfo {name} ({kind})",
                 owner=owner_of(ctx.kernel, afinfo), address=afinfo,
                 points_to=(ctx.mem.read_u64(afinfo + ctx.kernel.layouts[AFINFO].callback),))
    return 0


@export("xfrm_input_unregister_afinfo",
        "int xfrm_input_unregister_afinfo(const struct xfrm_input_afinfo *afinfo)", nargs=1)
def xfrm_input_unregister_afinfo(ctx: Any, afinfo: int) -> Any:
    registry = ctx.kernel.registrations.registry("xfrm_input_afinfo")
    key = _slot(ctx, afinfo)
    entry = registry.find(key)
    taken = entry is not None or (not key[0] and key[1] in _families(ctx))
    err = 0
    if taken:
        if entry is None or entry.address != afinfo:
            err = -errno.EINVAL
        else:
            registry.remove(key)
    waited = synchronize_rcu(ctx)
    if isinstance(waited, int):
        return err

    async def after() -> int:
        await waited
        return err
    return after()
