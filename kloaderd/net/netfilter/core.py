"""net/netfilter/core.c: the netfilter core's variables that conntrack,
NAT and nfnetlink modules read and publish directly.

- `nf_ct_hook`, `nf_nat_hook`, `nfnl_ct_hook` (`const struct ... __rcu *`,
  NULL): the hooks through which the core and other modules reach
  conntrack, NAT and ctnetlink once those modules are loaded; each
  module's init points its hook at its own table (RCU_INIT_POINTER) and its
  exit sets it back to NULL.
- `nf_defrag_v4_hook`, `nf_defrag_v6_hook` (6.6 and later, `const struct
  nf_defrag_hook __rcu *`, NULL): nf_defrag_ipv4's and nf_defrag_ipv6's
  enable/disable pair for BPF's netfilter links, published the same way.
- `nf_ct_zone_dflt` (`const struct nf_conntrack_zone`, read-only): the
  default zone, id `NF_CT_DEFAULT_ZONE_ID` (0), no flags, both directions
  (`NF_CT_DEFAULT_ZONE_DIR`, 3).

They are plain memory of Linux's size for any release; no packet passes
through the hooks here.
"""

from __future__ import annotations

from ...kernel.kdata import DataExport, export_data

for _hook in ("nf_ct_hook", "nf_nat_hook", "nfnl_ct_hook", "nf_defrag_v4_hook", "nf_defrag_v6_hook"):
    export_data(_hook, DataExport(lambda _profile: 8))          # a pointer
# struct nf_conntrack_zone { u16 id; u8 flags; u8 dir; }
export_data("nf_ct_zone_dflt", DataExport(lambda _profile: 4, lambda _profile, _base, _layouts: b"\0\0\0\3",
                                          writable=False))
