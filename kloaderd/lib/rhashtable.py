"""lib/rhashtable.c: resizable, RCU-protected hash tables, in guest memory.

Modules do most of the work themselves: lookup, insert and remove are
inlines of `<linux/rhashtable.h>` that hash the key, walk the bucket chains
of `ht->tbl` and lock a bucket with bit 0 of its pointer.  So the table is
Linux's own in guest memory: a `struct bucket_table` allocated as
`kvzalloc` does (accounted to the module that made the table), empty
buckets NULL, chains ending in the bucket's nulls marker (its address | 1),
`nelems` counted by the inlines.  The kernel's part is what they call:

- `rhashtable_init`/`rhltable_init`: parameters checked (-EINVAL without a
  key length or object hash function, or an object hash without a compare
  function), sizes rounded as Linux rounds them (64 buckets by default,
  `nelem_hint * 4 / 3` rounded up, at least `min_size` and 4), the hash
  function defaulted to `jhash`, or `rhashtable_jhash2` for a key of whole
  words (`key_len` then counted in words), a random `hash_rnd`, and
  `run_work` set up to run `rht_deferred_worker`.
- `rhashtable_insert_slow`, where the inline insert goes when a resize is
  under way, a chain is longer than 16 or the table is over 100 %: the
  duplicate check in every table (the module's `obj_cmpfn` or a memcmp of
  the key), rhltable's insertion into an existing key's list, -E2BIG at
  `max_elems`, and a table twice the size attached as `future_tbl` when the
  table is full (`rhashtable_insert_rehash`).
- `rht_deferred_worker`, the `run_work` the inlines schedule above 75 %
  (and below 30 % with `automatic_shrinking`): the table is doubled (or
  shrunk), the entries moved chain by chain, last entry first, into the
  future table, which then replaces `ht->tbl`; the old one is freed after a
  grace period.  Hashing an entry calls the module's `obj_hashfn` or
  `hashfn` where it has one.
- `rhashtable_free_and_destroy`/`rhashtable_destroy`: the resize cancelled,
  `free_fn(obj, arg)` called for every entry (every member of each rhlist),
  every table freed.

Where kloader differs: a table is never nested (Linux falls back to one
when an atomic allocation of a big table fails: here that allocation
fails the insert's rehash, -ENOMEM, and the worker retries), so the
`rht_bucket_nested*` functions stay not emulated; `bucket_table_alloc`'s
`__GFP_NOFAIL` retry in `rhashtable_init` can fail (-ENOMEM) when the heap
is exhausted; the walkers (`rhashtable_walk_*`) are not emulated yet.
A table never destroyed is found by the leak check, as its memory.

Layouts: `struct rhashtable`, its `rhashtable_params`, `bucket_table` and
`rhlist_head` are read at the kernel's offsets (kernel/layouts.py); the
member sizes are 6.1's and 6.12's (key_offset, head_offset, min_size u16,
max_size u32); an rhash_head's `next` begins it, and
rhashtable_compare_arg is {ht@0, key@8}.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from ..kernel.api import export
from ..kernel.api.sched import mutex_lock, mutex_unlock
from ..kernel.callback import call_module_code, finished
from ..kernel.layouts import struct
from ..kernel.rcu import synchronize_rcu
from ..workqueue.workqueue import cancel_work_sync, init_work, schedule_work
from .jhash import jhash, jhash2

RHASHTABLE = struct("struct rhashtable", "linux/rhashtable-types.h", "tbl", "key_len", "max_elems", "p",
                    "rhlist", "run_work", "mutex", "lock", "nelems")
PARAMS = struct("struct rhashtable_params", "linux/rhashtable-types.h", "nelem_hint", "key_len", "key_offset",
                "head_offset", "max_size", "min_size", "automatic_shrinking", "hashfn", "obj_hashfn",
                "obj_cmpfn")
BUCKET_TABLE = struct("struct bucket_table", "linux/rhashtable.h", "size", "nest", "hash_rnd", "walkers",
                      "future_tbl", "buckets")
RHLIST_HEAD = struct("struct rhlist_head", "linux/rhashtable-types.h", "next")
STRUCTS = (RHASHTABLE, PARAMS, BUCKET_TABLE, RHLIST_HEAD)
HASH_DEFAULT_SIZE = 64
HASH_MIN_SIZE = 4
RHT_ELASTICITY = 16
U32 = 0xFFFFFFFF


def _err(value: int) -> int:
    """ERR_PTR(value) as a pointer-sized return."""
    return value & 0xFFFFFFFFFFFFFFFF


def _is_err(value: int) -> bool:
    return value >= _err(-4095)


def _roundup_pow_of_two(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _rounddown_pow_of_two(n: int) -> int:
    return 1 << (n.bit_length() - 1)


def _u16(mem: Any, address: int) -> int:
    return int.from_bytes(mem.read(address, 2), "little")


def _s32(value: int) -> int:
    value &= U32
    return value - (1 << 32) if value >> 31 else value


class Rhashtables:
    """Which module a table's memory is accounted to (the one that made it:
    a resize in a kworker allocates on its behalf)."""

    def __init__(self, kernel: Any) -> None:
        self.owner: dict[int, str | None] = {}


class Table:
    """A `struct rhashtable` in guest memory, read as lib/rhashtable.c reads it."""

    def __init__(self, ctx: Any, ht: int) -> None:
        at_p = ctx.kernel.layouts[PARAMS]
        at_ht = ctx.kernel.layouts[RHASHTABLE]
        self.ctx, self.mem, self.ht, self.kernel = ctx, ctx.mem, ht, ctx.kernel
        mem = self.mem
        self.key_len = _u16(mem, ht + at_ht.p + at_p.key_len)
        self.key_offset = _u16(mem, ht + at_ht.p + at_p.key_offset)
        self.head_offset = _u16(mem, ht + at_ht.p + at_p.head_offset)
        self.max_size = mem.read_u32(ht + at_ht.p + at_p.max_size)
        self.min_size = _u16(mem, ht + at_ht.p + at_p.min_size)
        self.automatic_shrinking = bool(mem.read_u8(ht + at_ht.p + at_p.automatic_shrinking))
        self.hashfn = mem.read_u64(ht + at_ht.p + at_p.hashfn)
        self.obj_hashfn = mem.read_u64(ht + at_ht.p + at_p.obj_hashfn)
        self.obj_cmpfn = mem.read_u64(ht + at_ht.p + at_p.obj_cmpfn)
        self.hash_key_len = mem.read_u32(ht + at_ht.key_len)     # words for rhashtable_jhash2
        self.max_elems = mem.read_u32(ht + at_ht.max_elems)
        self.rhlist = bool(mem.read_u8(ht + at_ht.rhlist))
        self.owner = ctx.kernel.subsystem(Rhashtables).owner.get(ht)

    # -- the table's state, read afresh: module code changes it between calls --
    @property
    def tbl(self) -> int:
        at_ht = self.kernel.layouts[RHASHTABLE]
        return self.mem.read_u64(self.ht + at_ht.tbl)

    @property
    def nelems(self) -> int:
        at_ht = self.kernel.layouts[RHASHTABLE]
        return self.mem.read_u32(self.ht + at_ht.nelems)

    def size(self, tbl: int) -> int:
        at_tbl = self.kernel.layouts[BUCKET_TABLE]
        return self.mem.read_u32(tbl + at_tbl.size)

    def future(self, tbl: int) -> int:
        at_tbl = self.kernel.layouts[BUCKET_TABLE]
        return self.mem.read_u64(tbl + at_tbl.future_tbl)

    def last_table(self, tbl: int) -> int:
        """rhashtable_last_table()."""
        while self.future(tbl):
            tbl = self.future(tbl)
        return tbl

    def bucket(self, tbl: int, index: int) -> int:
        at_tbl = self.kernel.layouts[BUCKET_TABLE]
        return tbl + at_tbl.buckets + 8 * index

    def first(self, bkt: int) -> int:
        """rht_ptr(): the chain's first entry, or the bucket's nulls marker."""
        head = self.mem.read_u64(bkt) & ~1
        return head or bkt | 1

    def assign(self, bkt: int, obj: int) -> None:
        """rht_assign_locked(): NULL for an empty chain, the lock bit kept."""
        lock = self.mem.read_u64(bkt) & 1
        self.mem.write_u64(bkt, (0 if obj & 1 else obj) | lock)

    def chain(self, bkt: int) -> list[int]:
        """The rhash_heads of a bucket's chain, first to last."""
        heads, pos = [], self.first(bkt)
        while not pos & 1:
            heads.append(pos)
            pos = self.mem.read_u64(pos)
        return heads

    # -- the load thresholds of <linux/rhashtable.h> ------------------------------
    def grow_above_75(self, tbl: int) -> bool:
        size = self.size(tbl)
        return self.nelems > size // 4 * 3 and (not self.max_size or size < self.max_size)

    def shrink_below_30(self, tbl: int) -> bool:
        size = self.size(tbl)
        return self.nelems < size * 3 // 10 and size > self.min_size

    def grow_above_100(self, tbl: int) -> bool:
        size = self.size(tbl)
        return self.nelems > size and (not self.max_size or size < self.max_size)

    def grow_above_max(self) -> bool:
        return self.nelems >= self.max_elems

    # -- hashing -------------------------------------------------------------------
    def calls_module_code(self, key: int) -> bool:
        """Whether hashing or comparing an entry runs the module's functions."""
        symbols = self.ctx.kernel.machine.kernel_symbols()
        kernel_hash = self.hashfn in (symbols.get("jhash"), symbols.get("rhashtable_jhash2"))
        return bool(self.obj_hashfn or not kernel_hash or key and self.obj_cmpfn)

    async def hash_key(self, tbl: int, key: int) -> int:
        """rht_key_hashfn() with the table's own parameters:
        ht->p.hashfn(key, ht->key_len, hash_rnd), the bucket index."""
        at_tbl = self.kernel.layouts[BUCKET_TABLE]
        rnd = self.mem.read_u32(tbl + at_tbl.hash_rnd)
        symbols = self.ctx.kernel.machine.kernel_symbols()
        if self.hashfn == symbols.get("jhash"):
            value = jhash(self.mem.read(key, self.hash_key_len), rnd)
        elif self.hashfn == symbols.get("rhashtable_jhash2"):
            data = self.mem.read(key, 4 * self.hash_key_len)
            value = jhash2([int.from_bytes(data[i:i + 4], "little")
                            for i in range(0, len(data), 4)], rnd)
        else:
            value = await call_module_code(self.ctx, self.hashfn, key, self.hash_key_len, rnd)
        return (value & U32) & (self.size(tbl) - 1)

    async def hash_head(self, tbl: int, head: int) -> int:
        """rht_head_hashfn(ht, tbl, head, ht->p)."""
        at_tbl = self.kernel.layouts[BUCKET_TABLE]
        obj = head - self.head_offset
        if self.obj_hashfn:
            rnd = self.mem.read_u32(tbl + at_tbl.hash_rnd)
            value = await call_module_code(self.ctx, self.obj_hashfn, obj, self.key_len, rnd)
            return (value & U32) & (self.size(tbl) - 1)
        return await self.hash_key(tbl, obj + self.key_offset)

    async def differs(self, key: int, head: int) -> bool:
        """The module's obj_cmpfn(&arg, obj), or rhashtable_compare(): a
        memcmp of the key (nonzero: not this one)."""
        obj = head - self.head_offset
        if not self.obj_cmpfn:
            return self.mem.read(obj + self.key_offset, self.key_len) != self.mem.read(key, self.key_len)
        slab = self.ctx.kernel.slab
        arg = slab.alloc(16, None)           # struct rhashtable_compare_arg, on Linux's stack
        if not arg:
            raise MemoryError("no memory for rhashtable_compare_arg")
        try:
            self.mem.write_u64(arg, self.ht)
            self.mem.write_u64(arg + 8, key)
            return _s32(await call_module_code(self.ctx, self.obj_cmpfn, arg, obj)) != 0
        finally:
            slab.free(arg, None)

    # -- tables ----------------------------------------------------------------------
    def alloc_table(self, nbuckets: int) -> int:
        """bucket_table_alloc(): zeroed buckets (NULL: empty), a fresh hash_rnd."""
        at_tbl = self.kernel.layouts[BUCKET_TABLE]
        tbl = self.ctx.kernel.slab.alloc(at_tbl.buckets + 8 * nbuckets, self.owner, zero=True)
        if not tbl:
            return 0
        mem = self.mem
        mem.write_u32(tbl + at_tbl.size, nbuckets)
        mem.write_u32(tbl + at_tbl.hash_rnd, int.from_bytes(os.urandom(4), "little"))
        mem.write_u64(tbl + at_tbl.walkers, tbl + at_tbl.walkers)
        mem.write_u64(tbl + at_tbl.walkers + 8, tbl + at_tbl.walkers)
        return tbl

    def free_table(self, tbl: int) -> None:
        self.ctx.kernel.slab.free(tbl, self.owner)

    def attach(self, tbl: int, new_tbl: int) -> int:
        """rhashtable_rehash_attach(): -EEXIST when a resize is already under way."""
        at_tbl = self.kernel.layouts[BUCKET_TABLE]
        if self.future(tbl):
            return -errno.EEXIST
        self.mem.write_u64(tbl + at_tbl.future_tbl, new_tbl)
        return 0


# --- init and destroy -------------------------------------------------------------

def _init(ctx: Any, ht: int, params: int) -> int:
    at_p = ctx.kernel.layouts[PARAMS]
    at_ht = ctx.kernel.layouts[RHASHTABLE]
    mem = ctx.mem
    key_len = _u16(mem, params + at_p.key_len)
    obj_hashfn = mem.read_u64(params + at_p.obj_hashfn)
    if (not key_len and not obj_hashfn) or (obj_hashfn and not mem.read_u64(params + at_p.obj_cmpfn)):
        return -errno.EINVAL
    mem.write(ht, bytes(at_ht.size))                # the mutex and spinlock unlocked
    mem.write(ht + at_ht.p, mem.read(params, at_p.size))
    p = ht + at_ht.p
    min_size = _u16(mem, params + at_p.min_size)
    if min_size:
        min_size = _roundup_pow_of_two(min_size) & 0xFFFF
    max_elems = 1 << 31
    max_size = mem.read_u32(params + at_p.max_size)
    if max_size:
        max_size = _rounddown_pow_of_two(max_size)
        mem.write_u32(p + at_p.max_size, max_size)
        if max_size < max_elems // 2:
            max_elems = max_size * 2
    mem.write_u32(ht + at_ht.max_elems, max_elems)
    min_size = max(min_size, HASH_MIN_SIZE)
    mem.write(p + at_p.min_size, min_size.to_bytes(2, "little"))
    hint = _u16(mem, params + at_p.nelem_hint)
    size = (max(_roundup_pow_of_two(hint * 4 // 3), min_size) if hint
            else max(HASH_DEFAULT_SIZE, min_size))
    hash_key_len = key_len
    if not mem.read_u64(params + at_p.hashfn):
        symbols = ctx.kernel.machine.kernel_symbols()
        hashfn = symbols["jhash"]
        if not key_len & 3:
            hash_key_len //= 4
            hashfn = symbols["rhashtable_jhash2"]
        mem.write_u64(p + at_p.hashfn, hashfn)
    mem.write_u32(ht + at_ht.key_len, hash_key_len)
    ctx.kernel.subsystem(Rhashtables).owner[ht] = getattr(ctx.module, "name", None)
    table = Table(ctx, ht)
    tbl = table.alloc_table(size) or table.alloc_table(min_size)
    if not tbl:
        return -errno.ENOMEM
    mem.write_u64(ht + at_ht.tbl, tbl)
    init_work(mem, ht + at_ht.run_work, ctx.kernel.machine.kernel_symbols()["rht_deferred_worker"])
    return 0


@export("rhashtable_init_noprof",
        "int rhashtable_init_noprof(struct rhashtable *ht, const struct rhashtable_params *params)",
        nargs=2, gpl=True)
@export("rhashtable_init",
        "int rhashtable_init(struct rhashtable *ht, const struct rhashtable_params *params)",
        nargs=2, gpl=True)
def rhashtable_init(ctx: Any, ht: int, params: int) -> int:
    return _init(ctx, ht, params)


@export("rhltable_init_noprof",
        "int rhltable_init_noprof(struct rhltable *hlt, const struct rhashtable_params *params)",
        nargs=2, gpl=True)
@export("rhltable_init",
        "int rhltable_init(struct rhltable *hlt, const struct rhashtable_params *params)",
        nargs=2, gpl=True)
def rhltable_init(ctx: Any, hlt: int, params: int) -> int:
    at_ht = ctx.kernel.layouts[RHASHTABLE]
    err = _init(ctx, hlt, params)
    ctx.mem.write_u8(hlt + at_ht.rhlist, 1)
    return err


async def _free_and_destroy(ctx: Any, ht: int, free_fn: int, arg: int) -> int:
    at_ht = ctx.kernel.layouts[RHASHTABLE]
    await finished(cancel_work_sync(ctx, ht + at_ht.run_work))
    await finished(mutex_lock(ctx, ht + at_ht.mutex))
    table = Table(ctx, ht)
    mem = ctx.mem
    tbl = table.tbl
    while tbl:
        if free_fn:
            for index in range(table.size(tbl)):
                pos = table.first(table.bucket(tbl, index))
                while not pos & 1:
                    after = mem.read_u64(pos)            # read before free_fn frees pos
                    await _free_one(ctx, table, pos, free_fn, arg)
                    pos = after
        next_tbl = table.future(tbl)
        table.free_table(tbl)
        tbl = next_tbl
    mutex_unlock(ctx, ht + at_ht.mutex)
    ctx.kernel.subsystem(Rhashtables).owner.pop(ht, None)
    return 0


async def _free_one(ctx: Any, table: Table, head: int, free_fn: int, arg: int) -> None:
    """rhashtable_free_one(): an entry, or each member of an rhlist."""
    at_rl = ctx.kernel.layouts[RHLIST_HEAD]
    if not table.rhlist:
        await call_module_code(ctx, free_fn, head - table.head_offset, arg)
        return
    member = head
    while member:
        after = ctx.mem.read_u64(member + at_rl.next)
        await call_module_code(ctx, free_fn, member - table.head_offset, arg)
        member = after


@export("rhashtable_free_and_destroy", "void rhashtable_free_and_destroy(struct rhashtable *ht, "
        "void (*free_fn)(void *ptr, void *arg), void *arg)", nargs=3, gpl=True)
def rhashtable_free_and_destroy(ctx: Any, ht: int, free_fn: int, arg: int) -> Any:
    return _free_and_destroy(ctx, ht, free_fn, arg)


@export("rhashtable_destroy", "void rhashtable_destroy(struct rhashtable *ht)", nargs=1, gpl=True)
def rhashtable_destroy(ctx: Any, ht: int) -> Any:
    return _free_and_destroy(ctx, ht, 0, 0)


# --- the hash functions rhashtable_init defaults to (not exported by Linux) --------------

@export("jhash", "u32 jhash(const void *key, u32 length, u32 initval)", nargs=3)
def _jhash(ctx: Any, key: int, length: int, initval: int) -> int:
    return jhash(ctx.mem.read(key, length & U32), initval & U32)


@export("rhashtable_jhash2", "u32 rhashtable_jhash2(const void *key, u32 length, u32 seed)", nargs=3)
def rhashtable_jhash2(ctx: Any, key: int, length: int, seed: int) -> int:
    data = ctx.mem.read(key, 4 * (length & U32))
    return jhash2([int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)],
                  seed & U32)


# --- the slow insert ------------------------------------------------------------------

async def _lookup_one(table: Table, tbl: int, bkt: int, key: int, obj: int) -> int:
    """rhashtable_lookup_one(): the object already under `key` (not an
    rhltable), NULL when an rhltable took obj into that key's list,
    ERR_PTR(-ENOENT) when absent, ERR_PTR(-EAGAIN) when the chain is too long."""
    at_rl = table.kernel.layouts[RHLIST_HEAD]
    mem = table.mem
    elasticity = RHT_ELASTICITY
    pprev = 0
    for head in table.chain(bkt):
        elasticity -= 1
        if not key or await table.differs(key, head):
            pprev = head
            continue
        if not table.rhlist:
            return head - table.head_offset
        mem.write_u64(obj + at_rl.next, head)            # list->next = plist
        mem.write_u64(obj, mem.read_u64(head))            # list->rhead.next = head->next
        if pprev:
            mem.write_u64(pprev, obj)
        else:
            table.assign(bkt, obj)
        return 0
    return _err(-errno.EAGAIN) if elasticity <= 0 else _err(-errno.ENOENT)


def _insert_one(ctx: Any, table: Table, tbl: int, bkt: int, obj: int, data: int) -> int:
    """rhashtable_insert_one(): the future table to retry in, NULL when
    inserted, else an ERR_PTR (-EEXIST: `data` is the answer)."""
    at_rl = ctx.kernel.layouts[RHLIST_HEAD]
    at_ht = ctx.kernel.layouts[RHASHTABLE]
    if data and not _is_err(data):
        return _err(-errno.EEXIST)
    if data not in (_err(-errno.EAGAIN), _err(-errno.ENOENT)):
        return data
    future = table.future(tbl)
    if future:
        return future
    if data != _err(-errno.ENOENT):
        return data
    if table.grow_above_max():
        return _err(-errno.E2BIG)
    if table.grow_above_100(tbl):
        return _err(-errno.EAGAIN)
    mem = table.mem
    mem.write_u64(obj, table.first(bkt))
    if table.rhlist:
        mem.write_u64(obj + at_rl.next, 0)
    table.assign(bkt, obj)
    mem.write_u32(table.ht + at_ht.nelems, (table.nelems + 1) & U32)
    if table.grow_above_75(tbl):
        schedule_work(ctx, table.ht + at_ht.run_work)
    return 0


def _insert_rehash(ctx: Any, table: Table, tbl: int) -> int:
    """rhashtable_insert_rehash(): attach a bigger (or a freshly hashed)
    table for the worker to move the entries into."""
    at_ht = ctx.kernel.layouts[RHASHTABLE]
    size = table.size(tbl)
    if table.grow_above_75(tbl):
        size *= 2
    elif table.tbl != tbl:
        return 0 if table.future(tbl) else -errno.EBUSY     # someone else's resize
    new_tbl = table.alloc_table(size)
    if not new_tbl:
        if not table.future(tbl):
            schedule_work(ctx, table.ht + at_ht.run_work)      # retry in process context
        return 0 if table.future(tbl) else -errno.ENOMEM
    if table.attach(tbl, new_tbl):
        table.free_table(new_tbl)
        return 0
    schedule_work(ctx, table.ht + at_ht.run_work)
    return 0


async def _try_insert(ctx: Any, table: Table, key: int, obj: int) -> int:
    new_tbl = table.tbl
    data = 0
    while True:
        tbl = new_tbl
        bkt = table.bucket(tbl, await table.hash_head(tbl, obj))
        data = await _lookup_one(table, tbl, bkt, key, obj)
        new_tbl = _insert_one(ctx, table, tbl, bkt, obj, data)
        if new_tbl != _err(-errno.EEXIST):
            data = new_tbl
        if not new_tbl or _is_err(new_tbl):
            break
    if data == _err(-errno.EAGAIN):
        data = _err(_insert_rehash(ctx, table, tbl) or -errno.EAGAIN)
    return data


async def _insert_slow(ctx: Any, ht: int, key: int, obj: int) -> int:
    table = Table(ctx, ht)
    while True:
        data = await _try_insert(ctx, table, key, obj)
        if data != _err(-errno.EAGAIN):
            return data


@export("rhashtable_insert_slow", "void *rhashtable_insert_slow(struct rhashtable *ht, "
        "const void *key, struct rhash_head *obj)", nargs=3, gpl=True)
def rhashtable_insert_slow(ctx: Any, ht: int, key: int, obj: int) -> Any:
    """Callers may be atomic (a spinlock, softirq): with the kernel's own
    hash and compare the insert is run to its end here, never sleeping;
    only a table with module hash or compare functions waits for them."""
    table = Table(ctx, ht)
    inserting = _insert_slow(ctx, ht, key, obj)
    if table.calls_module_code(key):
        return inserting
    try:
        inserting.send(None)
    except StopIteration as done:
        return done.value
    inserting.close()
    raise RuntimeError("rhashtable_insert_slow waited without module code to wait for")


# --- the deferred resize --------------------------------------------------------------

async def _rehash_chain(table: Table, old_tbl: int, new_tbl: int, index: int) -> None:
    """rhashtable_rehash_chain(): move a bucket's entries, last first, each
    to the head of its chain in the new table.  Hashing may run module code,
    during which module code may change the chain: the move is made only if
    the entry is still the last one where it was."""
    mem = table.mem
    bkt = table.bucket(old_tbl, index)
    while True:
        heads = table.chain(bkt)
        if not heads:
            return
        entry, pprev = heads[-1], heads[-2] if len(heads) > 1 else 0
        new_bkt = table.bucket(new_tbl, await table.hash_head(new_tbl, entry))
        now = table.chain(bkt)
        if not now or now[-1] != entry or (now[-2] if len(now) > 1 else 0) != pprev:
            continue
        mem.write_u64(entry, table.first(new_bkt))
        table.assign(new_bkt, entry)
        if pprev:
            mem.write_u64(pprev, bkt | 1)
        else:
            table.assign(bkt, bkt | 1)


async def _rehash_table(ctx: Any, table: Table) -> int:
    """rhashtable_rehash_table(): -EAGAIN when yet another table waits."""
    at_ht = ctx.kernel.layouts[RHASHTABLE]
    old_tbl = table.tbl
    new_tbl = table.future(old_tbl)
    if not new_tbl:
        return 0
    for index in range(table.size(old_tbl)):
        await _rehash_chain(table, old_tbl, new_tbl, index)
    ctx.mem.write_u64(table.ht + at_ht.tbl, new_tbl)
    await finished(synchronize_rcu(ctx))              # call_rcu(bucket_table_free_rcu)
    table.free_table(old_tbl)
    return -errno.EAGAIN if table.future(new_tbl) else 0


def _rehash_alloc(table: Table, old_tbl: int, size: int) -> int:
    new_tbl = table.alloc_table(size)
    if not new_tbl:
        return -errno.ENOMEM
    err = table.attach(old_tbl, new_tbl)
    if err:
        table.free_table(new_tbl)
    return err


def _shrink(table: Table) -> int:
    """rhashtable_shrink(): to 3/2 of the entries (a power of two, at least
    min_size), if that is smaller than the current table."""
    old_tbl, nelems = table.tbl, table.nelems
    size = max(_roundup_pow_of_two(nelems * 3 // 2) if nelems else 0, table.min_size)
    if table.size(old_tbl) <= size:
        return 0
    if table.future(old_tbl):
        return -errno.EEXIST
    return _rehash_alloc(table, old_tbl, size)


async def _deferred_worker(ctx: Any, work: int) -> int:
    at_ht = ctx.kernel.layouts[RHASHTABLE]
    ht = work - at_ht.run_work
    await finished(mutex_lock(ctx, ht + at_ht.mutex))
    table = Table(ctx, ht)
    tbl = table.last_table(table.tbl)
    err = 0
    if table.grow_above_75(tbl):
        err = _rehash_alloc(table, tbl, table.size(tbl) * 2)
    elif table.automatic_shrinking and table.shrink_below_30(tbl):
        err = _shrink(table)
    if not err or err == -errno.EEXIST:
        nerr = await _rehash_table(ctx, table)
        err = err or nerr
    mutex_unlock(ctx, ht + at_ht.mutex)
    if err:
        schedule_work(ctx, work)
    return 0


@export("rht_deferred_worker", "void rht_deferred_worker(struct work_struct *work)", nargs=1)
def rht_deferred_worker(ctx: Any, work: int) -> Any:
    return _deferred_worker(ctx, work)
