"""net/core/lwtunnel.c: the light-weight tunnel encapsulation types
(`lwtunnel_encap_add_ops`, `lwtunnel_encap_del_ops`), what a route's
`encap mpls|ila|xfrm ...` is built with.

As Linux 6.1 and 6.12: `lwtun_encaps[LWTUNNEL_ENCAP_MAX + 1]` is filled by
cmpxchg: a type above LWTUNNEL_ENCAP_MAX is -ERANGE, a type already served
is -1 (Linux's bare -1, not an errno name); deleting LWTUNNEL_ENCAP_NONE or
a type out of range is -ERANGE, deleting ops that are not the ones
registered for the type is -1 (and leaves them).  The kernel's own types
hold their slots as the profile's .config builds them in: IP and IP6
(ip_tunnel_core_init), BPF (CONFIG_LWTUNNEL_BPF), SEG6 and SEG6_LOCAL
(CONFIG_IPV6_SEG6_LWTUNNEL), RPL and IOAM6 (their own options).  The ops
are their `owner`'s registration (else the module holding them), so ops
left at unload are reported and the slot emptied.

Where kloader differs: no route is ever built, so no `build_state`,
`output`, `input` or `xmit` is called.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import constants, struct
from ...kernel.registry import owner_of

OPS = struct("struct lwtunnel_encap_ops", "net/lwtunnel.h", "owner")
ENCAP = constants("lwtunnel encap types", "net/lwtunnel.h", "LWTUNNEL_ENCAP_NONE", "LWTUNNEL_ENCAP_IP",
                  "LWTUNNEL_ENCAP_IP6", "LWTUNNEL_ENCAP_BPF", "LWTUNNEL_ENCAP_SEG6",
                  "LWTUNNEL_ENCAP_SEG6_LOCAL", "LWTUNNEL_ENCAP_RPL", "LWTUNNEL_ENCAP_IOAM6",
                  "LWTUNNEL_ENCAP_MAX")
STRUCTS = (OPS, ENCAP)                 # what these functions read at the kernel's offsets
# uapi/linux/lwtunnel.h's enum lwtunnel_encap_types, for the registration's name
NAMES = "NONE MPLS IP ILA IP6 SEG6 BPF SEG6_LOCAL RPL IOAM6 XFRM".split()
REGISTRY = "lwtunnel_encap"


def _builtin(kernel: Any) -> set[int]:
    """The types the kernel's own code registered at boot."""
    e = kernel.layouts[ENCAP]
    types = {e.LWTUNNEL_ENCAP_IP, e.LWTUNNEL_ENCAP_IP6}
    for option, served in (("LWTUNNEL_BPF", (e.LWTUNNEL_ENCAP_BPF,)),
                           ("IPV6_SEG6_LWTUNNEL", (e.LWTUNNEL_ENCAP_SEG6, e.LWTUNNEL_ENCAP_SEG6_LOCAL)),
                           ("IPV6_RPL_LWTUNNEL", (e.LWTUNNEL_ENCAP_RPL,)),
                           ("IPV6_IOAM6_LWTUNNEL", (e.LWTUNNEL_ENCAP_IOAM6,))):
        if kernel.builds_in(option):
            types.update(served)
    return types


def _name(num: int) -> str:
    return NAMES[num] if num < len(NAMES) else str(num)


@export("lwtunnel_encap_add_ops",
        "int lwtunnel_encap_add_ops(const struct lwtunnel_encap_ops *op, unsigned int num)", nargs=2, gpl=True)
def lwtunnel_encap_add_ops(ctx: Any, ops: int, num: int) -> int:
    num &= 0xFFFFFFFF
    if num > ctx.kernel.layouts[ENCAP].LWTUNNEL_ENCAP_MAX:
        return -errno.ERANGE
    registry = ctx.kernel.registrations.registry(REGISTRY)
    if num in _builtin(ctx.kernel) or registry.find(num) is not None:
        return -1
    owner = owner_of(ctx.kernel, ops, ctx.mem.read_u64(ops + ctx.kernel.layouts[OPS].owner))
    registry.add(num, f"lwtunnel encap type {_name(num)}", owner=owner, address=ops)
    return 0


@export("lwtunnel_encap_del_ops",
        "int lwtunnel_encap_del_ops(const struct lwtunnel_encap_ops *op, unsigned int encap_type)",
        nargs=2, gpl=True)
def lwtunnel_encap_del_ops(ctx: Any, ops: int, num: int) -> int:
    """(Linux then waits in synchronize_net(): no reader holds the ops here.)"""
    num &= 0xFFFFFFFF
    e = ctx.kernel.layouts[ENCAP]
    if num == e.LWTUNNEL_ENCAP_NONE or num > e.LWTUNNEL_ENCAP_MAX:
        return -errno.ERANGE
    registry = ctx.kernel.registrations.registry(REGISTRY)
    entry = registry.find(num)
    if entry is None or entry.address != ops:
        return -1
    registry.remove(num)
    return 0
