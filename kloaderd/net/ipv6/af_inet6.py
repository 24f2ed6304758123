"""net/ipv6/af_inet6.c: whether IPv6 is usable (`ipv6_mod_enabled`), and
the IPv6 socket switch (`inet6_register_protosw`, kept in
`net/ipv4/af_inet.py` beside IPv4's).

IPv6 is enabled unless the kernel was booted with `ipv6.disable=1`;
kloader's kernel has no command line, so it is enabled when the profile
builds IPv6 (`CONFIG_IPV6`), as Debian's kernels do.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ..ipv4.af_inet import STRUCTS as PROTOSW_STRUCTS, register_protosw, unregister_protosw


@export("ipv6_mod_enabled", "bool ipv6_mod_enabled(void)", nargs=0)
def ipv6_mod_enabled(ctx: Any) -> int:
    return int(ctx.kernel.builds_in("IPV6"))


@export("inet6_register_protosw", "int inet6_register_protosw(struct inet_protosw *p)", nargs=1,
        structs=PROTOSW_STRUCTS)
def inet6_register_protosw(ctx: Any, p: int) -> int:
    """net/ipv4/af_inet.py keeps inetsw6 with inetsw: -EINVAL, -EPERM as Linux."""
    return register_protosw(ctx, "inet6", p)


@export("inet6_unregister_protosw", "void inet6_unregister_protosw(struct inet_protosw *p)", nargs=1,
        structs=PROTOSW_STRUCTS)
def inet6_unregister_protosw(ctx: Any, p: int) -> Any:
    return unregister_protosw(ctx, "inet6", p)
