"""net/ipv4/inet_hashtables.c for a module's own hash tables:
`inet_hashinfo2_init_mod` (DCCP's listening table) and
`inet_ehash_locks_alloc` (its established table's locks).

The table is `INET_LHTABLE_SIZE` listening buckets, kmalloc'd for the
caller (dccp frees it with kfree at exit), `lhash2_mask` one less, each
bucket's lock unlocked and its `nulls_head` the empty nulls list ending in
its own index plus LISTENING_NULLS_BASE, as init_hashinfo_lhash2() makes
them.  Structures and constants at the running kernel's offsets and values.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import constants, struct

HASHINFO = struct("struct inet_hashinfo", "net/inet_hashtables.h", "lhash2_mask", "lhash2", "ehash_mask",
                  "ehash_locks", "ehash_locks_mask")
SPINLOCK = struct("spinlock_t", "linux/spinlock.h")        # its size: 4, more with lock debugging
BUCKET = struct("struct inet_listen_hashbucket", "net/inet_hashtables.h", "lock", "nulls_head")
SIZES = constants("inet_hashtables constants", "net/inet_hashtables.h", "INET_LHTABLE_SIZE",
                  "LISTENING_NULLS_BASE")
STRUCTS = (HASHINFO, BUCKET, SIZES, SPINLOCK)
L1_CACHE_BYTES = 64                 # x86-64's
PAGE_SIZE = 4096
POSSIBLE_CPUS = ONLINE_NODES = 1    # kloader's machine: CPU 0 on node 0


@export("inet_hashinfo2_init_mod", "int inet_hashinfo2_init_mod(struct inet_hashinfo *h)", nargs=1, gpl=True)
def inet_hashinfo2_init_mod(ctx: Any, h: int) -> int:
    kernel, mem = ctx.kernel, ctx.mem
    at, bucket, sizes = kernel.layouts[HASHINFO], kernel.layouts[BUCKET], kernel.layouts[SIZES]
    count = sizes.INET_LHTABLE_SIZE
    table = kernel.slab.alloc(count * bucket.size, getattr(ctx.module, "name", None))
    if not table:
        return -errno.ENOMEM
    mem.write_u64(h + at.lhash2, table)
    mem.write_u32(h + at.lhash2_mask, count - 1)
    for i in range(count):
        entry = table + i * bucket.size
        mem.write(entry + bucket.lock, bytes(bucket.nulls_head - bucket.lock))   # spin_lock_init
        mem.write_u64(entry + bucket.nulls_head, (i + sizes.LISTENING_NULLS_BASE) << 1 | 1)   # INIT_HLIST_NULLS_HEAD
    return 0


@export("inet_ehash_locks_alloc", "int inet_ehash_locks_alloc(struct inet_hashinfo *hashinfo)", nargs=1, gpl=True)
def inet_ehash_locks_alloc(ctx: Any, hashinfo: int) -> int:
    """The established table's locks: two cache lines of them per possible
    CPU, at least a page of them per node, a power of two, no more than
    the table has buckets; each unlocked.  One CPU and one node here, so
    kvmalloc'd (the caller frees them with kvfree)."""
    kernel, mem = ctx.kernel, ctx.mem
    at, lock = kernel.layouts[HASHINFO], kernel.layouts[SPINLOCK].size
    blocks = 1
    if lock:
        blocks = max(max(2 * L1_CACHE_BYTES // lock, 1) * POSSIBLE_CPUS, ONLINE_NODES * PAGE_SIZE // lock)
        blocks = 1 << (blocks - 1).bit_length()                               # roundup_pow_of_two
        blocks = min(blocks, mem.read_u32(at.ehash_mask + hashinfo) + 1)
        locks = kernel.slab.alloc(blocks * lock, getattr(ctx.module, "name", None), zero=True)
        if not locks:
            return -errno.ENOMEM
        mem.write_u64(hashinfo + at.ehash_locks, locks)
    mem.write_u32(hashinfo + at.ehash_locks_mask, blocks - 1)
    return 0
