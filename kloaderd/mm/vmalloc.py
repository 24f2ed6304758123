"""mm/vmalloc.c for module code: virtually contiguous allocations
(`vmalloc`, `vzalloc`, `__vmalloc`, the `_node`, `_user`, `_32`, `_huge`
and array forms, `vfree`, `is_vmalloc_addr`).

Each allocation is whole pages, accounted to the calling module as
kmalloc's memory is (a leak is reported and reclaimed when the module is
freed), and recorded so that `vfree` and `kvfree` know it and
`is_vmalloc_addr` answers true for any byte of it.  `vfree(NULL)` does
nothing; `vfree` of memory vmalloc did not hand out is Linux's WARN
"Trying to vfree() nonexistent vm area (ADDR)" and frees nothing.  The
size is checked as Linux checks it: 0, or an array whose size overflows,
is NULL.

Where kloader differs: the pages come from the kernel heap (the direct
map) rather than a range of vmalloc space of their own, so an allocation
is bounded by the heap's largest block (KMALLOC_MAX_SIZE, 4 MiB) — larger
is "vmalloc error: size N, vm_struct allocation failed" and NULL, where
Linux would find the pages — and the inline `is_vmalloc_addr()` a header
may compile in (Linux's exported one is this file's) compares the address
with VMALLOC_START..VMALLOC_END and says false.  `vmalloc_to_page` is not
emulated.  The WARN names mm/vmalloc.c without Linux's line number.  6.10's `*_noprof` names run the same code.
"""

from __future__ import annotations

from typing import Any

from ..config import PAGE_SIZE
from ..kernel.api import export
from ..kernel.panic import warn
from ..kernel.printk import KERN_WARNING
from ..kernel.slab import KMALLOC_MAX_SIZE

__GFP_ZERO = 0x100
GFP_KERNEL = 0xCC0
SIZE_MAX = (1 << 64) - 1


class VmallocAreas:
    """The vm areas of one kernel: address -> size in pages' bytes."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.areas: dict[int, int] = {}
        kernel.sanitizer.leftover_checks.append(self._module_freed)

    def find(self, address: int) -> int | None:
        """The start of the area holding `address`, if any."""
        for start, size in self.areas.items():
            if start <= address < start + size:
                return start
        return None

    def _module_freed(self, mod: Any) -> None:
        """Its leaked areas go with its heap memory (reported as leaks there)."""
        holds = self.kernel.slab.holds
        for start in [a for a in self.areas if holds(a, mod.name)]:
            del self.areas[start]


def areas(ctx: Any) -> VmallocAreas:
    return ctx.kernel.subsystem(VmallocAreas)


def vmalloc_pages(ctx: Any, size: int, zero: bool) -> int:
    """__vmalloc_node_range: whole pages, or NULL."""
    size &= SIZE_MAX
    if not size:
        return 0
    size = -(-size // PAGE_SIZE) * PAGE_SIZE
    owner = getattr(ctx.module, "name", None)
    if size > KMALLOC_MAX_SIZE:
        ctx.kernel.log.emit(KERN_WARNING, f"vmalloc error: size {size}, vm_struct allocation failed", owner)
        return 0
    address = ctx.kernel.slab.alloc(size, owner, zero=zero)
    if address:
        areas(ctx).areas[address] = size
    return address


def vfree_area(ctx: Any, address: int) -> bool:
    """Free a vm area; False (nothing freed) when `address` starts none."""
    if areas(ctx).areas.pop(address, None) is None:
        return False
    ctx.kernel.slab.free(address, getattr(ctx.module, "name", None))
    return True


@export("vmalloc_noprof", "void *vmalloc_noprof(unsigned long size)", nargs=1)
@export("vmalloc", "void *vmalloc(unsigned long size)", nargs=1)
@export("vmalloc_32_noprof", "void *vmalloc_32_noprof(unsigned long size)", nargs=1)
@export("vmalloc_32", "void *vmalloc_32(unsigned long size)", nargs=1)
def vmalloc(ctx: Any, size: int) -> int:
    """vmalloc_32 too: its "32-bit addressable" pages are the heap's like any
    (kloader has no DMA zones to pick from)."""
    return vmalloc_pages(ctx, size, False)


@export("vzalloc_noprof", "void *vzalloc_noprof(unsigned long size)", nargs=1)
@export("vzalloc", "void *vzalloc(unsigned long size)", nargs=1)
@export("vmalloc_user_noprof", "void *vmalloc_user_noprof(unsigned long size)", nargs=1)
@export("vmalloc_32_user_noprof", "void *vmalloc_32_user_noprof(unsigned long size)", nargs=1)
@export("vmalloc_user", "void *vmalloc_user(unsigned long size)", nargs=1)
@export("vmalloc_32_user", "void *vmalloc_32_user(unsigned long size)", nargs=1)
def vzalloc(ctx: Any, size: int) -> int:
    """vmalloc_user's too: zeroed, as memory that may be mapped to user space is."""
    return vmalloc_pages(ctx, size, True)


@export("vmalloc_node_noprof", "void *vmalloc_node_noprof(unsigned long size, int node)", nargs=2)
@export("vmalloc_node", "void *vmalloc_node(unsigned long size, int node)", nargs=2)
def vmalloc_node(ctx: Any, size: int, node: int) -> int:
    return vmalloc_pages(ctx, size, False)


@export("vzalloc_node_noprof", "void *vzalloc_node_noprof(unsigned long size, int node)", nargs=2)
@export("vzalloc_node", "void *vzalloc_node(unsigned long size, int node)", nargs=2)
def vzalloc_node(ctx: Any, size: int, node: int) -> int:
    return vmalloc_pages(ctx, size, True)


@export("__vmalloc_noprof", "void *__vmalloc_noprof(unsigned long size, gfp_t gfp_mask)", nargs=2)
@export("__vmalloc", "void *__vmalloc(unsigned long size, gfp_t gfp_mask)", nargs=2)
@export("vmalloc_huge_noprof", "void *vmalloc_huge_noprof(unsigned long size, gfp_t gfp_mask)", nargs=2)
@export("vmalloc_huge", "void *vmalloc_huge(unsigned long size, gfp_t gfp_mask)", nargs=2)
def __vmalloc(ctx: Any, size: int, gfp: int) -> int:
    return vmalloc_pages(ctx, size, bool(gfp & __GFP_ZERO))


def _array(ctx: Any, n: int, size: int, gfp: int) -> int:
    """check_mul_overflow: an overflowing array is NULL."""
    total = (n & SIZE_MAX) * (size & SIZE_MAX)
    return 0 if total > SIZE_MAX else vmalloc_pages(ctx, total, bool(gfp & __GFP_ZERO))


@export("__vmalloc_array_noprof", "void *__vmalloc_array_noprof(size_t n, size_t size, gfp_t flags)", nargs=3)
@export("__vmalloc_array", "void *__vmalloc_array(size_t n, size_t size, gfp_t flags)", nargs=3)
def __vmalloc_array(ctx: Any, n: int, size: int, gfp: int) -> int:
    return _array(ctx, n, size, gfp)


@export("vmalloc_array_noprof", "void *vmalloc_array_noprof(size_t n, size_t size)", nargs=2)
@export("vmalloc_array", "void *vmalloc_array(size_t n, size_t size)", nargs=2)
def vmalloc_array(ctx: Any, n: int, size: int) -> int:
    return _array(ctx, n, size, GFP_KERNEL)


@export("__vcalloc_noprof", "void *__vcalloc_noprof(size_t n, size_t size, gfp_t flags)", nargs=3)
@export("__vcalloc", "void *__vcalloc(size_t n, size_t size, gfp_t flags)", nargs=3)
def __vcalloc(ctx: Any, n: int, size: int, gfp: int) -> int:
    return _array(ctx, n, size, gfp | __GFP_ZERO)


@export("vcalloc_noprof", "void *vcalloc_noprof(size_t n, size_t size)", nargs=2)
@export("vcalloc", "void *vcalloc(size_t n, size_t size)", nargs=2)
def vcalloc(ctx: Any, n: int, size: int) -> int:
    return _array(ctx, n, size, GFP_KERNEL | __GFP_ZERO)


@export("vfree", "void vfree(const void *addr)", nargs=1)
def vfree(ctx: Any, addr: int) -> None:
    if addr and not vfree_area(ctx, addr):
        warn(ctx, f"Trying to vfree() nonexistent vm area ({addr:016x})", "mm/vmalloc.c", "vfree")


@export("is_vmalloc_addr", "bool is_vmalloc_addr(const void *x)", nargs=1)
def is_vmalloc_addr(ctx: Any, x: int) -> int:
    return int(areas(ctx).find(x) is not None)
