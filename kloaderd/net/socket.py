"""net/socket.c: address families (`sock_register`), what socket(2) looks up.

As Linux 6.1: a family at or beyond NPROTO (46) is "protocol F >=
NPROTO(46)" at KERN_CRIT and -ENOBUFS; a family already served is -EEXIST;
either way "NET: Registered PF_X protocol family" is logged, as Linux logs
it.  `sock_unregister` empties the slot, waits for an RCU grace period and
logs "NET: Unregistered PF_X protocol family"; a family out of range is
BUG().  The kernel's own families (UNIX, INET, INET6, NETLINK, and PACKET
and XDP when the profile's .config builds them in) hold their slots.
Layout: net_proto_family.family@0.
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export
from ..kernel.oops import KernelBug
from ..kernel.printk import KERN_CRIT, KERN_INFO
from ..kernel.rcu import synchronize_rcu
from ..kernel.registry import owner_of

NPROTO = 46
PF_NAMES = ("PF_UNSPEC PF_UNIX/PF_LOCAL PF_INET PF_AX25 PF_IPX PF_APPLETALK PF_NETROM PF_BRIDGE "
            "PF_ATMPVC PF_X25 PF_INET6 PF_ROSE PF_DECnet PF_NETBEUI PF_SECURITY PF_KEY "
            "PF_NETLINK/PF_ROUTE PF_PACKET PF_ASH PF_ECONET PF_ATMSVC PF_RDS PF_SNA PF_IRDA "
            "PF_PPPOX PF_WANPIPE PF_LLC PF_IB PF_MPLS PF_CAN PF_TIPC PF_BLUETOOTH PF_IUCV "
            "PF_RXRPC PF_ISDN PF_PHONET PF_IEEE802154 PF_CAIF PF_ALG PF_NFC PF_VSOCK PF_KCM "
            "PF_QIPCRTR PF_SMC PF_XDP PF_MCTP").split()
BUILTIN = {1: "UNIX", 2: None, 10: "IPV6", 16: None, 17: "PACKET", 44: "XDP_SOCKETS"}


def _builtin(ctx: Any) -> set[int]:
    return {family for family, option in BUILTIN.items()
            if option is None or ctx.kernel.builds_in(option)}


def _log(ctx: Any, level: int, text: str) -> None:
    ctx.kernel.log.emit(level, text, getattr(ctx.module, "name", None))


@export("sock_register", "int sock_register(const struct net_proto_family *fam)", nargs=1)
def sock_register(ctx: Any, ops: int) -> int:
    family = ctx.mem.read_u32(ops)
    if family >= NPROTO:
        _log(ctx, KERN_CRIT, f"protocol {family} >= NPROTO({NPROTO})")
        return -errno.ENOBUFS
    registry = ctx.kernel.registrations.registry("net_family")
    err = 0
    if family in _builtin(ctx) or registry.find(family) is not None:
        err = -errno.EEXIST
    else:
        registry.add(family, f"socket family {PF_NAMES[family]}", owner=owner_of(ctx.kernel, ops),
                     address=ops)
    _log(ctx, KERN_INFO, f"NET: Registered {PF_NAMES[family]} protocol family")
    return err


@export("sock_unregister", "void sock_unregister(int family)", nargs=1)
def sock_unregister(ctx: Any, family: int) -> Any:
    family &= 0xFFFFFFFF
    if family >= NPROTO:                      # also a negative int
        raise KernelBug("net/socket.c:3195")
    ctx.kernel.registrations.registry("net_family").remove(family)
    waited = synchronize_rcu(ctx)
    message = f"NET: Unregistered {PF_NAMES[family]} protocol family"
    if isinstance(waited, int):
        _log(ctx, KERN_INFO, message)
        return 0

    async def after() -> int:
        await waited
        _log(ctx, KERN_INFO, message)
        return 0
    return after()
