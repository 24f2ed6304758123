"""net/netlink/af_netlink.c: the kernel's own netlink sockets
(`netlink_kernel_create`, `netlink_kernel_release`), one per protocol and
namespace, through which user space talks to a subsystem (nfnetlink's
NETLINK_NETFILTER, xfrm_user's NETLINK_XFRM, ...).

As Linux 6.1: a protocol outside 0..MAX_LINKS-1 is NULL; a protocol that
already has a kernel socket in the namespace is NULL (netlink_insert finds
portid 0 taken).  The kernel's built-in sockets hold theirs in init_net:
NETLINK_ROUTE, NETLINK_SOCK_DIAG, NETLINK_FIB_LOOKUP,
NETLINK_KOBJECT_UEVENT and NETLINK_GENERIC, and NETLINK_SELINUX,
NETLINK_AUDIT and NETLINK_CONNECTOR when the profile's .config builds
them in.  The socket is recorded with its `input`, `bind` and `unbind`
callbacks; `netlink_kernel_release` (of NULL: nothing) takes it back.

Where kloader differs: no message ever arrives (kloader has no user-space
netlink), so the callbacks are never called, and the `struct sock *`
returned is a handle in the direct map where nothing is mapped: a module
that reads the socket's fields oopses there rather than reading invented
ones.  netlink_kernel_cfg {input, bind, unbind} is read at the running
kernel's offsets.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.registry import owner_of

CFG = struct("struct netlink_kernel_cfg", "linux/netlink.h", "input", "bind", "unbind")
STRUCTS = (CFG,)           # what these functions read at the kernel's offsets
MAX_LINKS = 32
SOCK_HANDLE_BASE = 0xFFFF888C00000000
SOCK_HANDLE_STEP = 0x1000
NAMES = {0: "NETLINK_ROUTE", 4: "NETLINK_SOCK_DIAG", 6: "NETLINK_XFRM", 7: "NETLINK_SELINUX",
         8: "NETLINK_ISCSI", 9: "NETLINK_AUDIT", 10: "NETLINK_FIB_LOOKUP",
         11: "NETLINK_CONNECTOR", 12: "NETLINK_NETFILTER", 15: "NETLINK_KOBJECT_UEVENT",
         16: "NETLINK_GENERIC", 18: "NETLINK_SCSITRANSPORT", 19: "NETLINK_ECRYPTFS",
         20: "NETLINK_RDMA", 21: "NETLINK_CRYPTO", 22: "NETLINK_SMC"}
BUILTIN = (0, 4, 10, 15, 16)
BUILTIN_IF = {7: "SECURITY_SELINUX", 9: "AUDIT", 11: "CONNECTOR"}


class KernelSockets:
    """The kernel netlink sockets of one kernel, by (net, protocol)."""

    def __init__(self, kernel: Any) -> None:
        self.builtin = set(BUILTIN) | {unit for unit, option in BUILTIN_IF.items()
                                       if kernel.builds_in(option)}
        self.handles = 0


def _name(unit: int) -> str:
    return NAMES.get(unit, f"netlink protocol {unit}")


@export("__netlink_kernel_create", "struct sock *__netlink_kernel_create(struct net *net, "
        "int unit, struct module *module, struct netlink_kernel_cfg *cfg)", nargs=4)
def __netlink_kernel_create(ctx: Any, net: int, unit: int, module: int, cfg: int) -> int:
    unit = unit & 0xFFFFFFFF
    if unit >= MAX_LINKS:
        return 0
    state, registry = ctx.kernel.subsystem(KernelSockets), ctx.kernel.registrations.registry(
        "netlink_kernel")
    if unit in state.builtin or any(e.data == (net, unit) for e in registry.entries()):
        return 0
    c = ctx.kernel.layouts[CFG]
    callbacks = tuple(ctx.mem.read_u64(cfg + off) for off in (c.input, c.bind, c.unbind)) if cfg else ()
    sock = SOCK_HANDLE_BASE + state.handles * SOCK_HANDLE_STEP
    state.handles += 1
    registry.add(sock, f"netlink kernel socket {_name(unit)}",
                 owner=owner_of(ctx.kernel, cfg or net, module), points_to=callbacks,
                 data=(net, unit))
    return sock


@export("netlink_kernel_release", "void netlink_kernel_release(struct sock *sk)", nargs=1)
def netlink_kernel_release(ctx: Any, sk: int) -> None:
    if sk:
        ctx.kernel.registrations.registry("netlink_kernel").remove(sk)
