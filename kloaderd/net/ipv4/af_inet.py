"""net/ipv4/af_inet.c and net/ipv6/af_inet6.c: the socket switch tables
(`inet_register_protosw`, `inet6_register_protosw`) that socket(2) of
PF_INET/PF_INET6 walks to find the `struct proto` and `proto_ops` of a
(type, protocol) pair.  SCTP, DCCP and L2TP/IP add themselves here.

As Linux: one list per socket type (`inetsw[SOCK_MAX]`, `inetsw6[SOCK_MAX]`),
linked through the protosw's `list` in guest memory (list_add_rcu).  A type
at or beyond SOCK_MAX is "IPv4: Ignoring attempt to register invalid socket
type T" (inet6: -EINVAL); a protocol a permanent entry of that type already
serves is "IPv4: Attempt to override permanent protocol P" (inet6: -EPERM);
both logged at KERN_ERR, and IPv4's function returns nothing, so the module
cannot tell.  Otherwise the entry goes after the last permanent one, ahead of
the non-permanent entries it overrides.  Unregistering a permanent entry is
"Attempt to unregister permanent protocol P" and leaves it; any other is
unlinked (list_del_rcu) and waits for an RCU grace period (synchronize_net).

The kernel's own entries (inetsw_array and what the IPv4/IPv6 inits add:
TCP, UDP, UDP-Lite permanent; ping and raw; MPTCP where the .config builds
it) are kloader objects holding type, protocol and flags, not guest
structures: a module walking the list from its own entry finds only the
modules' entries.  No socket is ever created from these tables.
`struct inet_protosw` {list, type, protocol, prot, flags} is read at the
running kernel's offsets.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.printk import KERN_ERR
from ...kernel.rcu import synchronize_rcu
from ...kernel.registry import leftover_unlinks
from ...lib.list import GuestList
from ..core.sock import PROTO, PROTO_NAME_LEN

PROTOSW = struct("struct inet_protosw", "net/protocol.h", "list", "type", "protocol", "prot", "flags")
STRUCTS = (PROTOSW, PROTO)          # what these functions read at the kernel's offsets
SOCK_MAX = 11                       # SOCK_PACKET + 1
INET_PROTOSW_REUSE, INET_PROTOSW_PERMANENT, INET_PROTOSW_ICSK = 0x01, 0x02, 0x04
SOCK_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET",
              6: "SOCK_DCCP", 10: "SOCK_PACKET"}
IPPROTO_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 0, 1, 6, 17
IPPROTO_ICMPV6, IPPROTO_UDPLITE, IPPROTO_MPTCP = 58, 136, 262
PERM = INET_PROTOSW_PERMANENT
# The kernel's own entries, per family, in each list's order at boot:
# (type, protocol, flags, name of the proto, CONFIG option or None).
BUILTIN = {
    "inet": ((1, IPPROTO_TCP, PERM | INET_PROTOSW_ICSK, "TCP", None),
             (1, IPPROTO_MPTCP, INET_PROTOSW_ICSK, "MPTCP", "MPTCP"),
             (2, IPPROTO_UDP, PERM, "UDP", None),
             (2, IPPROTO_UDPLITE, PERM, "UDP-Lite", None),
             (2, IPPROTO_ICMP, INET_PROTOSW_REUSE, "PING", None),
             (3, IPPROTO_IP, INET_PROTOSW_REUSE, "RAW", None)),
    "inet6": ((1, IPPROTO_TCP, PERM | INET_PROTOSW_ICSK, "TCPv6", None),
              (1, IPPROTO_MPTCP, INET_PROTOSW_ICSK, "MPTCPv6", "MPTCP_IPV6"),
              (2, IPPROTO_UDP, PERM, "UDPv6", None),
              (2, IPPROTO_UDPLITE, PERM, "UDPLITEv6", None),
              (2, IPPROTO_ICMPV6, INET_PROTOSW_REUSE, "PINGv6", None),
              (3, IPPROTO_IP, INET_PROTOSW_REUSE, "RAWv6", None)),
}
PR_FMT = {"inet": "IPv4: ", "inet6": "IPv6: "}


@dataclass
class Inetsw:
    """One family's `inetsw[]`: the built-in entries of each type and the
    guest list the modules' entries are linked on."""
    family: str
    builtin: dict[int, list[tuple[int, int, str]]] = field(default_factory=dict)   # type -> (protocol, flags, name)
    lists: dict[int, GuestList] = field(default_factory=dict)

    def list_of(self, kernel: Any, sock_type: int) -> GuestList:
        found = self.lists.get(sock_type)
        if found is None:
            found = self.lists[sock_type] = GuestList(kernel)
        return found


class InetswTables:
    """inetsw (IPv4) and inetsw6 (IPv6) of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.tables: dict[str, Inetsw] = {}
        for family, entries in BUILTIN.items():
            table = self.tables[family] = Inetsw(family)
            if family == "inet6" and not kernel.builds_in("IPV6"):
                continue
            for sock_type, protocol, flags, name, option in entries:
                if option is None or kernel.builds_in(option):
                    table.builtin.setdefault(sock_type, []).append((protocol, flags, name))


def _log(ctx: Any, family: str, text: str) -> None:
    ctx.kernel.log.emit(KERN_ERR, PR_FMT[family] + text, getattr(ctx.module, "name", None))


def _read(ctx: Any, p: int) -> tuple[int, int, int]:
    """(type, protocol, flags) of a protosw."""
    sw = ctx.kernel.layouts[PROTOSW]
    return ctx.mem.read_u16(p + sw.type), ctx.mem.read_u16(p + sw.protocol), ctx.mem.read_u8(p + sw.flags)


def _proto_name(ctx: Any, p: int) -> str:
    prot = ctx.mem.read_u64(p + ctx.kernel.layouts[PROTOSW].prot)
    if not prot:
        return "no proto"
    raw = ctx.mem.read(prot + ctx.kernel.layouts[PROTO].name, PROTO_NAME_LEN)
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _last_permanent(ctx: Any, family: str, guest: GuestList, protocol: int) -> int | None:
    """Where the new entry goes (the list_head it follows), or None when a
    permanent entry of the list serves `protocol`.  IPv4 stops at the first
    entry that is not permanent; IPv6 looks at every entry."""
    mem, sw = ctx.mem, ctx.kernel.layouts[PROTOSW]
    last = guest.head
    for node in guest:
        entry = node - sw.list
        flags = mem.read_u8(entry + sw.flags)
        if not flags & INET_PROTOSW_PERMANENT:
            if family == "inet":
                break
            continue
        if mem.read_u16(entry + sw.protocol) == protocol:
            return None
        last = node
    return last


def register_protosw(ctx: Any, family: str, p: int) -> int:
    """inet_register_protosw()/inet6_register_protosw(): 0, -EINVAL or -EPERM."""
    sock_type, protocol, flags = _read(ctx, p)
    if sock_type >= SOCK_MAX:
        _log(ctx, family, f"Ignoring attempt to register invalid socket type {sock_type}")
        return -errno.EINVAL
    table = ctx.kernel.subsystem(InetswTables).tables[family]
    guest = table.list_of(ctx.kernel, sock_type)
    builtin_perm = any(proto == protocol and f & INET_PROTOSW_PERMANENT
                       for proto, f, _ in table.builtin.get(sock_type, ()))
    after = None if builtin_perm else _last_permanent(ctx, family, guest, protocol)
    if after is None:
        _log(ctx, family, f"Attempt to override permanent protocol {protocol}")
        return -errno.EPERM
    node = p + ctx.kernel.layouts[PROTOSW].list
    guest.insert_before(ctx, node, ctx.mem.read_u64(after))       # list_add_rcu(node, after)
    regs = ctx.kernel.registrations
    owner = regs.module_at(p) or ctx.module       # a protosw has no owner field: its module's memory
    what = (f"{family} protosw {SOCK_TYPES.get(sock_type, sock_type)} protocol {protocol} "
            f"({_proto_name(ctx, p)})")
    regs.registry(f"{family}_protosw").add(p, what, owner=owner, address=p, data=(guest, node - p),
                                           on_leftover=leftover_unlinks)
    return 0


def unregister_protosw(ctx: Any, family: str, p: int) -> Any:
    """inet_unregister_protosw()/inet6_unregister_protosw()."""
    _, protocol, flags = _read(ctx, p)
    if flags & INET_PROTOSW_PERMANENT:
        _log(ctx, family, f"Attempt to unregister permanent protocol {protocol}")
        return 0
    GuestList.delete(ctx, p + ctx.kernel.layouts[PROTOSW].list, rcu=True)
    ctx.kernel.registrations.registry(f"{family}_protosw").remove(p)
    return synchronize_rcu(ctx)



@export("inet_register_protosw", "void inet_register_protosw(struct inet_protosw *p)", nargs=1)
def inet_register_protosw(ctx: Any, p: int) -> None:
    register_protosw(ctx, "inet", p)


@export("inet_unregister_protosw", "void inet_unregister_protosw(struct inet_protosw *p)", nargs=1)
def inet_unregister_protosw(ctx: Any, p: int) -> Any:
    return unregister_protosw(ctx, "inet", p)
