"""block/bio.c: bio sets (`bioset_init`, `bioset_exit`), the pools a
driver allocates its bios from.

As Linux: `front_pad` is kept; `BIOSET_NEED_BVECS` sets `back_pad` to four
inline `bio_vec`s and makes a reserve of `pool_size` biovec arrays from
the kernel's `biovec-max` cache; the bios come from a cache `bio-N` of the
kernel's, N the size of a bio with its padding, shared by every bio set of
that size and destroyed with the last; `bio_pool` is a mempool of
`pool_size` of them (mm/mempool.py, so the module's inline
`bioset_initialized()` and `mempool_initialized()` read what Linux's
would).  A failure undoes what was made and returns -ENOMEM.  A bio set is
a registration: one its module did not exit is reported ("leaked
registration: bio_set …") and its pools emptied.

Where kloader differs: no bio is ever submitted (no block I/O is
emulated), so `BIOSET_NEED_RESCUER` makes no rescuer workqueue and
`BIOSET_PERCPU_CACHE` no per-CPU cache; `rescue_workqueue` and `cache`
stay NULL (docs/semantics.md).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

from ..kernel.api import export
from ..kernel.layouts import struct
from ..mm.mempool import MEMPOOL, GFP_KERNEL, _exit as mempool_exit, _init as mempool_init
from ..mm.slab_common import destroy_kernel_cache, kernel_cache

BIO_SET = struct("struct bio_set", "linux/bio.h", "bio_slab", "front_pad", "bio_pool", "bvec_pool", "back_pad",
                 "rescue_list")
BIO = struct("struct bio", "linux/blk_types.h")
STRUCTS = (BIO_SET, BIO, MEMPOOL)

BIOSET_NEED_BVECS = 1 << 0
BIO_INLINE_VECS = 4
BIO_MAX_VECS = 256
BIO_VEC_SIZE = 16                 # struct bio_vec: page, len, offset


@dataclass(eq=False)
class Slab:
    cache: int
    refs: int = 0


class BioSlabs:
    """bio_slabs: the kernel's bio caches by object size, and biovec-max."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.by_size: dict[int, Slab] = {}
        self.biovec_max = kernel_cache(kernel, "biovec-max", BIO_MAX_VECS * BIO_VEC_SIZE, 64)

    def get(self, size: int) -> int:
        """bio_find_or_create_slab."""
        slab = self.by_size.get(size)
        if slab is None:
            cache = kernel_cache(self.kernel, f"bio-{size}", size, 64)
            if not cache:
                return 0
            slab = self.by_size[size] = Slab(cache)
        slab.refs += 1
        return slab.cache

    def put(self, cache: int) -> None:
        """bio_put_slab: the cache goes with the last bio set using it."""
        for size, slab in list(self.by_size.items()):
            if slab.cache == cache:
                slab.refs -= 1
                if not slab.refs:
                    del self.by_size[size]
                    destroy_kernel_cache(self.kernel, cache)
                return


def bio_slabs(kernel: Any) -> BioSlabs:
    return kernel.subsystem(BioSlabs)


def _standard(ctx: Any, name: str) -> int:
    return ctx.machine.kernel_symbols()[name]


async def _exit(ctx: Any, bs: int) -> None:
    kernel, mem, off = ctx.kernel, ctx.mem, ctx.kernel.layouts[BIO_SET]
    for pool in (bs + off.bio_pool, bs + off.bvec_pool):
        if mem.read_u64(pool + kernel.layouts[MEMPOOL].elements):
            await mempool_exit(ctx, pool)
    slab = mem.read_u64(bs + off.bio_slab)
    if slab:
        bio_slabs(kernel).put(slab)
    mem.write_u64(bs + off.bio_slab, 0)
    kernel.registrations.registry("bio_set").remove(bs)


async def _init(ctx: Any, bs: int, pool_size: int, front_pad: int, flags: int) -> int:
    kernel, mem, off = ctx.kernel, ctx.mem, ctx.kernel.layouts[BIO_SET]
    front_pad, flags = front_pad & 0xFFFFFFFF, flags & 0xFFFFFFFF
    back_pad = BIO_INLINE_VECS * BIO_VEC_SIZE if flags & BIOSET_NEED_BVECS else 0
    mem.write_u32(bs + off.front_pad, front_pad)
    mem.write_u32(bs + off.back_pad, back_pad)
    mem.write_u64(bs + off.rescue_list, 0)                     # bio_list_init: head, tail
    mem.write_u64(bs + off.rescue_list + 8, 0)
    slab = bio_slabs(kernel).get(front_pad + kernel.layouts[BIO].size + back_pad)
    if not slab:
        return -errno.ENOMEM
    mem.write_u64(bs + off.bio_slab, slab)
    regs = kernel.registrations
    regs.registry("bio_set").add(bs, f"bio_set at {bs:#x} (bioset_exit)", owner=regs.module_at(bs) or ctx.module,
                                 address=bs, data=slab,
                                 on_leftover=lambda entry: bio_slabs(kernel).put(entry.data))
    alloc, free = _standard(ctx, "mempool_alloc_slab"), _standard(ctx, "mempool_free_slab")
    pools = [(bs + off.bio_pool, slab)]
    if flags & BIOSET_NEED_BVECS:
        pools.append((bs + off.bvec_pool, bio_slabs(kernel).biovec_max))
    for pool, cache in pools:
        if await mempool_init(ctx, pool, pool_size, alloc, free, cache, GFP_KERNEL):
            await _exit(ctx, bs)
            return -errno.ENOMEM
    return 0


@export("bioset_init", "int bioset_init(struct bio_set *bs, unsigned int pool_size, unsigned int front_pad, "
        "int flags)", nargs=4)
def bioset_init(ctx: Any, bs: int, pool_size: int, front_pad: int, flags: int) -> Any:
    return _init(ctx, bs, pool_size, front_pad, flags)


@export("bioset_exit", "void bioset_exit(struct bio_set *bs)", nargs=1)
def bioset_exit(ctx: Any, bs: int) -> Any:
    return _exit(ctx, bs)
