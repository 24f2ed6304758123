"""kernel/bpf/btf.c: `register_btf_kfunc_id_set`, how a module offers
kernel functions (kfuncs) to BPF programs of one type, named by their BTF
ids (nf_conntrack's `bpf_skb_ct_lookup` and friends for XDP and tc).

As Linux 6.1: the set belongs to its owner's BTF.  A module's BTF is its
`.BTF` section, which Linux keeps from MODULE_STATE_COMING to GOING; a
module without one, under a kernel with CONFIG_DEBUG_INFO_BTF_MODULES, is
"missing module BTF, cannot register kfuncs" and -ENOENT (without that
option, 0 and nothing recorded); a set with no owner belongs to vmlinux's
BTF, which a profile does not have ("missing vmlinux BTF, cannot register
kfuncs", -ENOENT, under CONFIG_DEBUG_INFO_BTF).  There is no unregister:
the sets go with the module's BTF when it is freed, so they are recorded
(visible in module_info as "BTF kfunc set") and dropped then, never
reported as left behind.

Where kloader differs: no BPF program ever runs, so nothing looks the
sets up, and the module's BTF is not parsed against vmlinux's (Linux
refuses a module whose BTF does not match).  `struct btf_kfunc_id_set`
and `struct btf_id_set8` are read at the kernel's offsets (kernel/layouts.py).
"""

from __future__ import annotations

import errno
from typing import Any

from ..api import export
from ..layouts import struct
from ..printk import KERN_ERR

KFUNC_ID_SET = struct("struct btf_kfunc_id_set", "linux/btf.h", "owner", "set")
ID_SET8 = struct("struct btf_id_set8", "linux/btf_ids.h", "cnt")
STRUCTS = (KFUNC_ID_SET, ID_SET8)
PROG_TYPES = ("UNSPEC", "SOCKET_FILTER", "KPROBE", "SCHED_CLS", "SCHED_ACT", "TRACEPOINT", "XDP",
              "PERF_EVENT", "CGROUP_SKB", "CGROUP_SOCK", "LWT_IN", "LWT_OUT", "LWT_XMIT",
              "SOCK_OPS", "SK_SKB", "CGROUP_DEVICE", "SK_MSG", "RAW_TRACEPOINT",
              "CGROUP_SOCK_ADDR", "LWT_SEG6LOCAL", "LIRC_MODE2", "SK_REUSEPORT",
              "FLOW_DISSECTOR", "CGROUP_SYSCTL", "RAW_TRACEPOINT_WRITABLE", "CGROUP_SOCKOPT",
              "TRACING", "STRUCT_OPS", "EXT", "LSM", "SK_LOOKUP", "SYSCALL")


class ModuleBtf:
    """The kfunc sets of each module's BTF, freed with the module."""

    def __init__(self, kernel: Any) -> None:
        self.registry = kernel.registrations.registry("btf_kfunc")
        kernel.sanitizer.leftover_checks.append(self._module_freed)

    def _module_freed(self, mod: Any) -> None:
        """btf_module_notify(MODULE_STATE_GOING): the BTF and its sets go."""
        for entry in self.registry.entries():
            if entry.owner is mod:
                self.registry.remove(entry.key)


def _missing(ctx: Any, what: str, option: str) -> int:
    profile = ctx.kernel.profile
    if profile is None or not profile.enabled(option):
        return 0
    ctx.kernel.log.emit(KERN_ERR, f"missing {what} BTF, cannot register kfuncs",
                        getattr(ctx.module, "name", None))
    return -errno.ENOENT


@export("register_btf_kfunc_id_set", "int register_btf_kfunc_id_set(enum bpf_prog_type prog_type, "
        "const struct btf_kfunc_id_set *kset)", nargs=2)
def register_btf_kfunc_id_set(ctx: Any, prog_type: int, kset: int) -> int:
    at = ctx.kernel.layouts[KFUNC_ID_SET]
    owner = ctx.mem.read_u64(kset + at.owner)
    if not owner:
        return _missing(ctx, "vmlinux", "DEBUG_INFO_BTF")
    mod = ctx.kernel.module_by_struct(owner)
    if mod is None or mod.image.section(".BTF") is None:
        return _missing(ctx, "module", "DEBUG_INFO_BTF_MODULES")
    prog_type &= 0xFFFFFFFF
    kind = PROG_TYPES[prog_type] if prog_type < len(PROG_TYPES) else str(prog_type)
    count = ctx.mem.read_u32(ctx.mem.read_u64(kset + at.set) + ctx.kernel.layouts[ID_SET8].cnt)
    ctx.kernel.subsystem(ModuleBtf).registry.add(
        (kset, prog_type), f"BTF kfunc set of {count} functions for BPF_PROG_TYPE_{kind}",
        owner=mod, address=kset)
    return 0
