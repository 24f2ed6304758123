"""net/ipv6/addrconf_core.c: `__ipv6_addr_type`, the class and scope of an
IPv6 address (`ipv6_addr_type()` is an inline over it; tunnels classify
their endpoints when a device is set up).

As Linux: a first 3 bits other than 000 and 111 is global unicast;
ff00::/8 multicast with the scope of its 4 scope bits (node-local counts
as loopback, link-local and site-local add their flag); fe80::/10
link-local and fec0::/10 site-local unicast; fc00::/7 (RFC 4193) global
unicast; :: any, ::1 loopback (link-local scope), other ::/96
IPv4-compatible, ::ffff:0:0/96 IPv4-mapped; anything else global unicast.
The scope is in bits 16 and up (IPV6_ADDR_SCOPE_TYPE).
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export

IPV6_ADDR_ANY, IPV6_ADDR_UNICAST, IPV6_ADDR_MULTICAST = 0x0000, 0x0001, 0x0002
IPV6_ADDR_LOOPBACK, IPV6_ADDR_LINKLOCAL, IPV6_ADDR_SITELOCAL = 0x0010, 0x0020, 0x0040
IPV6_ADDR_COMPATV4, IPV6_ADDR_MAPPED = 0x0080, 0x1000
SCOPE_NODELOCAL, SCOPE_LINKLOCAL, SCOPE_SITELOCAL, SCOPE_GLOBAL = 0x01, 0x02, 0x05, 0x0e
_SCOPE_FLAG = {SCOPE_NODELOCAL: IPV6_ADDR_LOOPBACK, SCOPE_LINKLOCAL: IPV6_ADDR_LINKLOCAL,
               SCOPE_SITELOCAL: IPV6_ADDR_SITELOCAL}


def _scope(scope: int) -> int:
    return scope << 16


def addr_type(addr: bytes) -> int:
    """__ipv6_addr_type() of the 16 bytes of an in6_addr."""
    w = [int.from_bytes(addr[i:i + 4], "big") for i in range(0, 16, 4)]
    top = w[0] & 0xE0000000
    if top not in (0, 0xE0000000):
        return IPV6_ADDR_UNICAST | _scope(SCOPE_GLOBAL)
    if w[0] & 0xFF000000 == 0xFF000000:
        scope = addr[1] & 0x0F                  # IPV6_ADDR_MC_SCOPE()
        return IPV6_ADDR_MULTICAST | _scope(scope) | _SCOPE_FLAG.get(scope, 0)
    if w[0] & 0xFFC00000 == 0xFE800000:
        return IPV6_ADDR_LINKLOCAL | IPV6_ADDR_UNICAST | _scope(SCOPE_LINKLOCAL)
    if w[0] & 0xFFC00000 == 0xFEC00000:
        return IPV6_ADDR_SITELOCAL | IPV6_ADDR_UNICAST | _scope(SCOPE_SITELOCAL)
    if w[0] & 0xFE000000 == 0xFC000000:
        return IPV6_ADDR_UNICAST | _scope(SCOPE_GLOBAL)
    if w[0] | w[1] == 0:
        if w[2] == 0:
            if w[3] == 0:
                return IPV6_ADDR_ANY
            if w[3] == 1:
                return IPV6_ADDR_LOOPBACK | IPV6_ADDR_UNICAST | _scope(SCOPE_LINKLOCAL)
            return IPV6_ADDR_COMPATV4 | IPV6_ADDR_UNICAST | _scope(SCOPE_GLOBAL)
        if w[2] == 0x0000FFFF:
            return IPV6_ADDR_MAPPED | _scope(SCOPE_GLOBAL)
    return IPV6_ADDR_UNICAST | _scope(SCOPE_GLOBAL)


@export("__ipv6_addr_type", "int __ipv6_addr_type(const struct in6_addr *addr)", nargs=1)
def __ipv6_addr_type(ctx: Any, addr: int) -> int:
    return addr_type(ctx.mem.read(addr, 16))
