"""net/core/filter.c: what nf_conntrack hands BPF through the core.

`nfct_btf_struct_access` (a function pointer, NULL) is how the BPF
verifier checks a program's writes into `struct nf_conn`: nf_conntrack's
init sets it to its own checker and its exit clears it, each under
`nf_conn_btf_access_lock` (a `DEFINE_MUTEX`: unlocked, zero).  Both are
plain kernel variables; no BPF program runs in kloader, so nothing calls
through the pointer.
"""

from __future__ import annotations

from ...kernel.kdata import DataExport, export_data

MUTEX_SIZE = 32          # struct mutex, Linux 6.1 x86-64 (no debug options)

export_data("nf_conn_btf_access_lock", DataExport(lambda _profile: MUTEX_SIZE))
export_data("nfct_btf_struct_access", DataExport(lambda _profile: 8))
