"""lib/cpumask.c with CONFIG_CPUMASK_OFFSTACK (Debian's: NR_CPUS 8192):
a `cpumask_var_t` is a pointer to a cpumask on the heap.
`alloc_cpumask_var_node()` stores a new one through its first argument and
says whether it got one (`zalloc_cpumask_var()` passes __GFP_ZERO);
`free_cpumask_var()` frees it.

The mask is NR_CPUS bits, the size of the kernel's own masks
(`__cpu_online_mask`, kernel/kdata.py), so any cpumask operation a module
runs on it stays inside it; Linux sizes it by `nr_cpu_ids` when NR_CPUS is
large, which on one CPU is one word.  Under kloader's own kernel (no
profile) it is one word.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.api.slab import __kmalloc, kfree
from ..kernel.kdata import nr_cpus
from .bitmap import bitmap_bytes


def cpumask_size(ctx: Any) -> int:
    profile = ctx.kernel.profile
    return bitmap_bytes(nr_cpus(profile) if profile is not None else 1)


@export("alloc_cpumask_var_node", "bool alloc_cpumask_var_node(cpumask_var_t *mask, gfp_t flags, "
        "int node)", nargs=3)
def alloc_cpumask_var_node(ctx: Any, mask: int, flags: int, node: int) -> int:
    address = __kmalloc(ctx, cpumask_size(ctx), flags)
    ctx.mem.write_u64(mask, address)
    return int(address != 0)


@export("free_cpumask_var", "void free_cpumask_var(cpumask_var_t mask)", nargs=1)
def free_cpumask_var(ctx: Any, mask: int) -> int:
    return kfree(ctx, mask)
