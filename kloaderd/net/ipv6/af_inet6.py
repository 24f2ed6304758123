"""net/ipv6/af_inet6.c: whether IPv6 is usable (`ipv6_mod_enabled`).

IPv6 is enabled unless the kernel was booted with `ipv6.disable=1`;
kloader's kernel has no command line, so it is enabled when the profile
builds IPv6 (`CONFIG_IPV6`), as Debian's kernels do.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export


@export("ipv6_mod_enabled", "bool ipv6_mod_enabled(void)", nargs=0)
def ipv6_mod_enabled(ctx: Any) -> int:
    return int(ctx.kernel.builds_in("IPV6"))
