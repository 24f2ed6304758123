"""fs/nfs_common/nfs_ssc.c: `nfs_ssc_client_tbl`, the table through which
knfsd's server-to-server copy reaches the NFS client modules' operations,
and its setters `nfs_ssc_register`/`nfs_ssc_unregister` (nfs.ko's
init_nfs_fs and exit) and `nfs42_ssc_register`/`nfs42_ssc_unregister`
(nfsv4.ko's, through nfs42_ssc_register_ops).

Debian builds this into vmlinux (CONFIG_NFS_V4_2_SSC_HELPER=y, both 6.1 and
6.12: Module.symvers names vmlinux), so the table is kernel data: a
`struct nfs_ssc_client_ops_tbl` of the running kernel's layout, whose
`ssc_nfs_ops` and `ssc_nfs4_ops` pointers the register calls write and
nfsd's inline nfs42_ssc_open()/nfs_do_sb_deactive() read.

As Linux: register stores its ops whatever the slot held (no errno, the
functions are void); unregister clears the slot only when it holds the ops
it is given, and otherwise does nothing.  kloader also records each slot's
holder as a registration of the module that set it, so a module unloaded
with its ops still in the table is reported ("nfs: leaked registration:
NFS SSC client ops nfs_ssc_clnt_ops_tbl [nfs]") and the slot is cleared,
rather than left pointing into freed code.  No server-to-server copy
happens in kloader (there is no nfsd I/O), so the ops are never called.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.kdata import DataExport, export_data
from ...kernel.layouts import struct

SSC_TBL = struct("struct nfs_ssc_client_ops_tbl", "linux/nfs_ssc.h", "ssc_nfs4_ops", "ssc_nfs_ops")
STRUCTS = (SSC_TBL,)
TABLE = "nfs_ssc_client_tbl"
REGISTRY = "nfs ssc"

export_data(TABLE, DataExport(struct=SSC_TBL))


def _slot(ctx: Any, member: str) -> int:
    """The address of one of the table's two pointers in this kernel."""
    return ctx.kernel.symbols.get(TABLE).address + getattr(ctx.kernel.layouts[SSC_TBL], member)


def _describe(ctx: Any, kind: str, ops: int) -> str:
    return f"{kind} SSC client ops {ctx.kernel.symbolize(ops, False) or f'{ops:#x}'}"


def _leftover(entry: Any) -> None:
    """The holder's module is going: clear the slot if its ops are still there."""
    mem, slot, ops = entry.data
    if mem.read_u64(slot) == ops:
        mem.write_u64(slot, 0)


def _register(ctx: Any, member: str, kind: str, ops: int) -> None:
    slot = _slot(ctx, member)
    ctx.mem.write_u64(slot, ops)
    registry = ctx.kernel.registrations.registry(REGISTRY)
    registry.remove(member)                       # Linux overwrites whoever held it
    if ops:
        registry.add(member, _describe(ctx, kind, ops), owner=ctx.module, points_to=(ops,),
                     data=(ctx.mem, slot, ops), on_leftover=_leftover)


def _unregister(ctx: Any, member: str, ops: int) -> None:
    slot = _slot(ctx, member)
    if ctx.mem.read_u64(slot) != ops:
        return
    ctx.mem.write_u64(slot, 0)
    ctx.kernel.registrations.registry(REGISTRY).remove(member)


@export("nfs_ssc_register", "void nfs_ssc_register(const struct nfs_ssc_client_ops *ops)",
        nargs=1, gpl=True)
def nfs_ssc_register(ctx: Any, ops: int) -> None:
    _register(ctx, "ssc_nfs_ops", "NFS", ops)


@export("nfs_ssc_unregister", "void nfs_ssc_unregister(const struct nfs_ssc_client_ops *ops)",
        nargs=1, gpl=True)
def nfs_ssc_unregister(ctx: Any, ops: int) -> None:
    _unregister(ctx, "ssc_nfs_ops", ops)


@export("nfs42_ssc_register", "void nfs42_ssc_register(const struct nfs4_ssc_client_ops *ops)",
        nargs=1, gpl=True)
def nfs42_ssc_register(ctx: Any, ops: int) -> None:
    _register(ctx, "ssc_nfs4_ops", "NFSv4.2", ops)


@export("nfs42_ssc_unregister", "void nfs42_ssc_unregister(const struct nfs4_ssc_client_ops *ops)",
        nargs=1, gpl=True)
def nfs42_ssc_unregister(ctx: Any, ops: int) -> None:
    _unregister(ctx, "ssc_nfs4_ops", ops)
