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

The socket is kernel memory of the running kernel's `sizeof(struct sock)`
holding what `netlink_kernel_create` and `sock_init_data` set that a
module reads or writes: `sk_family` AF_NETLINK, `sk_net` the namespace,
`sk_type` SOCK_DGRAM, `sk_protocol` the unit and both timeouts
MAX_SCHEDULE_TIMEOUT (ib_core sets its `sk_sndtimeo`).  Released, or left
behind by its module, it is freed.

Where kloader differs: no message ever arrives (kloader has no user-space
netlink), so the callbacks are never called, and the rest of the socket
(buffers, queues, `struct netlink_sock`'s own fields) is zero.
netlink_kernel_cfg {input, bind, unbind} and the struct sock members are
read at the running kernel's offsets.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.registry import owner_of

CFG = struct("struct netlink_kernel_cfg", "linux/netlink.h", "input", "bind", "unbind")
SOCK = struct("struct sock", "net/sock.h", "__sk_common.skc_family", "__sk_common.skc_net",
              "sk_type", "sk_protocol", "sk_rcvtimeo", "sk_sndtimeo")
STRUCTS = (CFG, SOCK)      # what these functions read and write at the kernel's offsets
MAX_LINKS = 32
AF_NETLINK = 16
SOCK_DGRAM = 2
MAX_SCHEDULE_TIMEOUT = (1 << 63) - 1       # LONG_MAX
NAMES = {0: "NETLINK_ROUTE", 4: "NETLINK_SOCK_DIAG", 6: "NETLINK_XFRM", 7: "NETLINK_SELINUX",
         8: "NETLINK_ISCSI", 9: "NETLINK_AUDIT", 10: "NETLINK_FIB_LOOKUP",
         11: "NETLINK_CONNECTOR", 12: "NETLINK_NETFILTER", 15: "NETLINK_KOBJECT_UEVENT",
         16: "NETLINK_GENERIC", 18: "NETLINK_SCSITRANSPORT", 19: "NETLINK_ECRYPTFS",
         20: "NETLINK_RDMA", 21: "NETLINK_CRYPTO", 22: "NETLINK_SMC"}
BUILTIN = (0, 4, 10, 15, 16)
BUILTIN_IF = {7: "SECURITY_SELINUX", 9: "AUDIT", 11: "CONNECTOR"}


class KernelSockets:
    """The protocols whose kernel sockets are built in."""

    def __init__(self, kernel: Any) -> None:
        self.builtin = set(BUILTIN) | {unit for unit, option in BUILTIN_IF.items()
                                       if kernel.builds_in(option)}


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
    if unit in state.builtin or any(e.data[:2] == (net, unit) for e in registry.entries()):
        return 0
    c = ctx.kernel.layouts[CFG]
    callbacks = tuple(ctx.mem.read_u64(cfg + off) for off in (c.input, c.bind, c.unbind)) if cfg else ()
    sock = _new_sock(ctx, net, unit)
    if not sock:
        return 0
    registry.add(sock, f"netlink kernel socket {_name(unit)}",
                 owner=owner_of(ctx.kernel, cfg or net, module), points_to=callbacks,
                 data=(net, unit, ctx.kernel), on_leftover=_free_sock)
    return sock


def _new_sock(ctx: Any, net: int, unit: int) -> int:
    """sk_alloc() and sock_init_data() of what a module can see: 0 without memory."""
    mem, sk = ctx.mem, ctx.kernel.layouts[SOCK]
    sock = ctx.kernel.slab.alloc(sk.size, None, zero=True)
    if sock:
        mem.write(sock + sk.__sk_common_skc_family, AF_NETLINK.to_bytes(2, "little"))
        mem.write_u64(sock + sk.__sk_common_skc_net, net)
        mem.write(sock + sk.sk_type, SOCK_DGRAM.to_bytes(2, "little"))
        mem.write(sock + sk.sk_protocol, unit.to_bytes(2, "little"))
        mem.write_u64(sock + sk.sk_rcvtimeo, MAX_SCHEDULE_TIMEOUT)
        mem.write_u64(sock + sk.sk_sndtimeo, MAX_SCHEDULE_TIMEOUT)
    return sock


def _free_sock(entry: Any) -> None:
    """on_leftover: a module freed with its kernel socket not released."""
    entry.data[2].slab.free(entry.key, None)


@export("netlink_kernel_release", "void netlink_kernel_release(struct sock *sk)", nargs=1)
def netlink_kernel_release(ctx: Any, sk: int) -> None:
    if sk and ctx.kernel.registrations.registry("netlink_kernel").remove(sk) is not None:
        ctx.kernel.slab.free(sk, None)
