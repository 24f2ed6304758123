"""net/ipv4/ip_tunnel_core.c's `iptun_encaps`: the array of
MAX_IPTUN_ENCAP_OPS (8) `struct ip_tunnel_encap_ops *` that
ip_tunnel_encap_add_ops() (in ip_tunnel.ko) fills by cmpxchg for FOU and
GUE, all NULL at boot.  Any release.
"""

from __future__ import annotations

from ...kernel.kdata import DataExport, export_data

MAX_IPTUN_ENCAP_OPS = 8

export_data("iptun_encaps", DataExport(lambda _profile: 8 * MAX_IPTUN_ENCAP_OPS))
