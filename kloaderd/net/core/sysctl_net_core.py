"""net/core/sysctl_net_core.c: the core network sysctls that modules read
directly.

`sysctl_fb_tunnels_only_for_init_net` (`int`, 0, /proc/sys/net/core/
fb_tunnels_only_for_init_net): whether tunnel drivers (ipip, ip_gre, sit,
ip6_tunnel, ip_vti) make their fallback device in init_net only (1), in
every namespace (0) or in none (2); their pernet init reads it through
`net_has_fallback_tunnels()`.  Linux's default, 0, is what it holds; no
sysctl file writes it here.
"""

from __future__ import annotations

from ...kernel.kdata import DataExport, export_data

export_data("sysctl_fb_tunnels_only_for_init_net", DataExport(lambda _profile: 4))     # an int, any release
