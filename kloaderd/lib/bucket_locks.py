"""lib/bucket_locks.c: an array of spinlocks a hash table's buckets share
(`alloc_bucket_spinlocks()`; ila's locks, for one).

`max_size` locks, or `cpu_mult` per possible CPU (one here) when that is
fewer; zeroed (unlocked `spinlock_t`s, 4 bytes each without lockdep, as
Debian builds) from kvmalloc, and the mask, one less than the count, stored
for the caller.  `free_bucket_spinlocks()` is kvfree().
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export
from ..kernel.api.slab import kvfree, kvmalloc_node
from ..mm.slab_common import __GFP_ZERO

SPINLOCK_SIZE = 4
NR_POSSIBLE_CPUS = 1


@export("__alloc_bucket_spinlocks", "int __alloc_bucket_spinlocks(spinlock_t **locks, "
        "unsigned int *locks_mask, size_t max_size, unsigned int cpu_mult, gfp_t gfp, "
        "const char *name, struct lock_class_key *key)", nargs=7)
def __alloc_bucket_spinlocks(ctx: Any, locks: int, locks_mask: int, max_size: int, cpu_mult: int,
                             gfp: int, name: int, key: int) -> int:
    cpu_mult &= 0xFFFFFFFF
    size = min(min(NR_POSSIBLE_CPUS, 64) * cpu_mult, max_size) if cpu_mult else max_size
    size &= 0xFFFFFFFF                            # unsigned int, as Linux's
    tlocks = kvmalloc_node(ctx, size * SPINLOCK_SIZE, gfp | __GFP_ZERO, -1)
    if not tlocks:
        return -errno.ENOMEM
    ctx.mem.write_u64(locks, tlocks)
    ctx.mem.write_u32(locks_mask, (size - 1) & 0xFFFFFFFF)
    return 0


@export("free_bucket_spinlocks", "void free_bucket_spinlocks(spinlock_t *locks)", nargs=1)
def free_bucket_spinlocks(ctx: Any, locks: int) -> int:
    return kvfree(ctx, locks)
