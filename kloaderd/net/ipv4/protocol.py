"""net/ipv4/protocol.c and net/ipv6/protocol.c: the IP protocol handler
tables (`inet_add_protocol`, `inet6_add_protocol`).

As Linux: one slot per protocol number, taken with cmpxchg from NULL, so a
taken slot is -1 (not an errno); removing succeeds only for the handler in
the slot (else -1) and waits for a network RCU grace period.  The kernel's
own handlers occupy their slots: ICMP, IGMP, TCP, UDP and UDP-Lite for
IPv4; TCP, UDP, UDP-Lite, ICMPv6 and the routing, fragment, no-next-header
and destination-options headers for IPv6.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.rcu import synchronize_rcu
from ...kernel.registry import owner_of

MAX_INET_PROTOS = 256
BUILTIN = {"inet": {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 136: "udplite"},
           "inet6": {6: "tcp", 17: "udp", 136: "udplite", 58: "icmpv6", 43: "routing",
                     44: "fragment", 59: "nonext", 60: "dstopts"}}


def add_protocol(ctx: Any, family: str, prot: int, protocol: int) -> int:
    protocol &= 0xFF
    registry = ctx.kernel.registrations.registry(f"{family}_protocol")
    if protocol in BUILTIN[family] or registry.find(protocol) is not None:
        return -1
    registry.add(protocol, f"{family} protocol {protocol} handler", owner=owner_of(ctx.kernel, prot),
                 address=prot, data=prot)
    return 0


def del_protocol(ctx: Any, family: str, prot: int, protocol: int) -> Any:
    registry = ctx.kernel.registrations.registry(f"{family}_protocol")
    entry = registry.find(protocol & 0xFF)
    ok = entry is not None and entry.data == prot
    if ok:
        registry.remove(protocol & 0xFF)
    waited = synchronize_rcu(ctx)
    if isinstance(waited, int):
        return 0 if ok else -1

    async def after() -> int:
        await waited
        return 0 if ok else -1
    return after()


@export("inet_add_protocol", "int inet_add_protocol(const struct net_protocol *prot, "
        "unsigned char protocol)", nargs=2)
def inet_add_protocol(ctx: Any, prot: int, protocol: int) -> int:
    return add_protocol(ctx, "inet", prot, protocol)


@export("inet_del_protocol", "int inet_del_protocol(const struct net_protocol *prot, "
        "unsigned char protocol)", nargs=2)
def inet_del_protocol(ctx: Any, prot: int, protocol: int) -> Any:
    return del_protocol(ctx, "inet", prot, protocol)


@export("inet6_add_protocol", "int inet6_add_protocol(const struct inet6_protocol *prot, "
        "unsigned char protocol)", nargs=2)
def inet6_add_protocol(ctx: Any, prot: int, protocol: int) -> int:
    return add_protocol(ctx, "inet6", prot, protocol)


@export("inet6_del_protocol", "int inet6_del_protocol(const struct inet6_protocol *prot, "
        "unsigned char protocol)", nargs=2)
def inet6_del_protocol(ctx: Any, prot: int, protocol: int) -> Any:
    return del_protocol(ctx, "inet6", prot, protocol)
