"""mm/percpu.c for module code: `__alloc_percpu`, `__alloc_percpu_gfp`,
`free_percpu`.

A dynamic per-CPU pointer is, as in x86-64 Linux, an offset from the GS
base like a static per-CPU variable's, so `this_cpu_ptr()`, `per_cpu_ptr()`
and `%gs:`-relative accesses reach CPU 0's copy in the per-CPU area
(kernel/percpu.py).  The memory is zeroed.  A size of 0 or above
PCPU_MIN_UNIT_SIZE, or an alignment above PAGE_SIZE, is Linux's WARN
"illegal size (N) or align (A) for percpu allocation" and NULL.  Each
allocation is a registration of the calling module, so one it never frees
is reported ("leaked registration: percpu allocation of N bytes") and
given back when the module goes.  Where kloader differs: chunks are page
granular, and a full area is NULL without Linux's "allocation failed" line.
"""

from __future__ import annotations

from typing import Any

from ..config import PAGE_SIZE
from ..kernel.api import export
from ..kernel.panic import warn

PCPU_MIN_UNIT_SIZE = 32 << 10


def _alloc(ctx: Any, size: int, align: int) -> int:
    if not size or size > PCPU_MIN_UNIT_SIZE or align > PAGE_SIZE:
        warn(ctx, f"illegal size ({size}) or align ({align}) for percpu allocation",
             "mm/percpu.c:1746", "__alloc_percpu")
        return 0
    area = ctx.kernel.percpu
    offset = area.dynamic_alloc(size)
    if offset is None:
        return 0
    ctx.kernel.registrations.registry("percpu").add(
        offset, f"percpu allocation of {size} bytes", owner=ctx.module, address=area.base + offset,
        data=area, on_leftover=lambda entry: entry.data.dynamic_free(entry.key))
    return offset


@export("__alloc_percpu", "void __percpu *__alloc_percpu(size_t size, size_t align)", nargs=2,
        gpl=True)
def __alloc_percpu(ctx: Any, size: int, align: int) -> int:
    return _alloc(ctx, size, align)


@export("__alloc_percpu_gfp", "void __percpu *__alloc_percpu_gfp(size_t size, size_t align, "
        "gfp_t gfp)", nargs=3, gpl=True)
def __alloc_percpu_gfp(ctx: Any, size: int, align: int, gfp: int) -> int:
    return _alloc(ctx, size, align)


@export("pcpu_alloc_noprof", "void __percpu *pcpu_alloc_noprof(size_t size, size_t align, bool reserved, "
        "gfp_t gfp)", nargs=4, gpl=True)
def pcpu_alloc_noprof(ctx: Any, size: int, align: int, reserved: int, gfp: int) -> int:
    """6.10+: what __alloc_percpu() and __alloc_percpu_gfp() became macros over."""
    return _alloc(ctx, size, align)


@export("free_percpu", "void free_percpu(void __percpu *ptr)", nargs=1)
def free_percpu(ctx: Any, ptr: int) -> None:
    if not ptr:
        return
    if ctx.kernel.registrations.registry("percpu").remove(ptr) is None:
        warn(ctx, "", "mm/percpu.c:2268", "free_percpu")
        return
    ctx.kernel.percpu.dynamic_free(ptr)
