"""lib/percpu_counter.c: counters whose hot path is a per-CPU s32 and
whose `count` is folded in only when a CPU's delta reaches the batch.

`struct percpu_counter` is the module's own memory, read and written at
the running kernel's offsets (`lock`, `count`, `counters`, and `list` under
CONFIG_HOTPLUG_CPU).  `counters` is a `s32 __percpu *`: an offset from the
GS base into the per-CPU area (kernel/percpu.py), so the inline
`percpu_counter_read()`/`percpu_counter_add()` of the module and these
functions see the same CPU 0 copy.

Linux 6.1 exports `__percpu_counter_init` and `percpu_counter_destroy`;
6.5 made them `__percpu_counter_init_many`/`percpu_counter_destroy_many`
over an array of counters sharing one per-CPU allocation (the one-counter
calls became inlines over them).  Both spellings are here, each under the
kernels that export it.

Each initialised counter (or array) is a registration of the calling
module, so one its module never destroys is reported when the module is
freed ("leaked registration: percpu_counter at ADDR") and its per-CPU
memory given back.  Where kloader differs: Linux links every counter on
`percpu_counters` to fold a dead CPU's delta in; one CPU never dies here,
so kloader keeps the counters in its registry and each counter's `list`
is an empty list head until destroy poisons it as `list_del()` does.
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export, export_object
from ..kernel.layouts import struct
from ..kernel.panic import warn
from .list_debug import LIST_POISON1, LIST_POISON2

PERCPU_COUNTER = struct("struct percpu_counter", "linux/percpu_counter.h", "lock", "count", "counters",
                        optional=("list",))
STRUCTS = (PERCPU_COUNTER,)
COUNTER_SIZE = 4                 # s32, its own alignment: ALIGN(sizeof, __alignof__)
NUM_ONLINE_CPUS = 1
# compute_batch_value(): max(32, 2 * num_online_cpus()), as boot leaves it on one CPU.
PERCPU_COUNTER_BATCH = max(32, 2 * NUM_ONLINE_CPUS)

export_object("percpu_counter_batch", "int percpu_counter_batch", 4,
              PERCPU_COUNTER_BATCH.to_bytes(4, "little"), writable=True)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _s64(value: int) -> int:
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value & (1 << 63) else value


class _Counter:
    """One `struct percpu_counter` in guest memory, at this kernel's offsets."""

    def __init__(self, ctx: Any, fbc: int) -> None:
        self.mem = ctx.mem
        self.layout = ctx.kernel.layouts[PERCPU_COUNTER]
        self.fbc = fbc
        self.percpu_base = ctx.kernel.percpu.base

    @property
    def counters(self) -> int:
        return self.mem.read_u64(self.fbc + self.layout.counters)

    @property
    def count(self) -> int:
        return _s64(self.mem.read_u64(self.fbc + self.layout.count))

    @count.setter
    def count(self, value: int) -> None:
        self.mem.write_u64(self.fbc + self.layout.count, value & 0xFFFFFFFFFFFFFFFF)

    @property
    def local(self) -> int:
        """CPU 0's s32 delta: *this_cpu_ptr(fbc->counters)."""
        return _s32(self.mem.read_u32(self.percpu_base + self.counters))

    @local.setter
    def local(self, value: int) -> None:
        self.mem.write_u32(self.percpu_base + self.counters, value & 0xFFFFFFFF)

    def init(self, amount: int, counters: int) -> None:
        """raw_spin_lock_init(), the count, the per-CPU pointer, INIT_LIST_HEAD()."""
        self.mem.write_u32(self.fbc + self.layout.lock, 0)
        self.count = amount
        self.mem.write_u64(self.fbc + self.layout.counters, counters)
        if self.layout.list is not None:
            head = self.fbc + self.layout.list
            self.mem.write_u64(head, head)
            self.mem.write_u64(head + 8, head)

    def destroy(self) -> None:
        """list_del() and `counters = NULL`."""
        if self.layout.list is not None:
            self.mem.write_u64(self.fbc + self.layout.list, LIST_POISON1)
            self.mem.write_u64(self.fbc + self.layout.list + 8, LIST_POISON2)
        self.mem.write_u64(self.fbc + self.layout.counters, 0)

    def sum(self) -> int:
        """count plus every online CPU's delta (there is one)."""
        return self.count + self.local


def _init_many(ctx: Any, fbc: int, amount: int, nr_counters: int) -> int:
    area = ctx.kernel.percpu
    layout = ctx.kernel.layouts[PERCPU_COUNTER]
    size = nr_counters * COUNTER_SIZE
    counters = area.dynamic_alloc(size) if nr_counters else None
    if counters is None:
        ctx.mem.write_u64(fbc + layout.counters, 0)
        return -errno.ENOMEM
    amount = _s64(amount)
    for i in range(nr_counters):
        _Counter(ctx, fbc + i * layout.size).init(amount, counters + i * COUNTER_SIZE)
    what = "percpu_counter" if nr_counters == 1 else f"percpu_counter array of {nr_counters}"
    ctx.kernel.registrations.registry("percpu_counter").add(
        fbc, f"{what} at {fbc:#x}", owner=ctx.module, address=fbc, data=(area, counters, nr_counters),
        on_leftover=lambda entry: entry.data[0].dynamic_free(entry.data[1]))
    return 0


def _destroy_many(ctx: Any, fbc: int, nr_counters: int) -> None:
    if not ctx.mem.read_u64(fbc + ctx.kernel.layouts[PERCPU_COUNTER].counters):
        return                  # never initialised, or its init failed: nothing to free
    entry = ctx.kernel.registrations.registry("percpu_counter").remove(fbc)
    if entry is None:
        # Not a counter kloader initialised (or destroyed twice with its
        # pointer restored): free_percpu() of a pointer it never handed out.
        warn(ctx, "", "mm/percpu.c:2268", "free_percpu")
        return
    area, counters, _nr = entry.data
    size = ctx.kernel.layouts[PERCPU_COUNTER].size
    for i in range(nr_counters):
        _Counter(ctx, fbc + i * size).destroy()
    area.dynamic_free(counters)


@export("__percpu_counter_init", "int __percpu_counter_init(struct percpu_counter *fbc, s64 amount, "
        "gfp_t gfp, struct lock_class_key *key)", nargs=4)
def __percpu_counter_init(ctx: Any, fbc: int, amount: int, gfp: int, key: int) -> int:
    return _init_many(ctx, fbc, amount, 1)


@export("__percpu_counter_init_many", "int __percpu_counter_init_many(struct percpu_counter *fbc, "
        "s64 amount, gfp_t gfp, u32 nr_counters, struct lock_class_key *key)", nargs=5)
def __percpu_counter_init_many(ctx: Any, fbc: int, amount: int, gfp: int, nr_counters: int,
                               key: int) -> int:
    return _init_many(ctx, fbc, amount, nr_counters & 0xFFFFFFFF)


@export("percpu_counter_destroy", "void percpu_counter_destroy(struct percpu_counter *fbc)", nargs=1)
def percpu_counter_destroy(ctx: Any, fbc: int) -> None:
    _destroy_many(ctx, fbc, 1)


@export("percpu_counter_destroy_many", "void percpu_counter_destroy_many(struct percpu_counter *fbc, "
        "u32 nr_counters)", nargs=2)
def percpu_counter_destroy_many(ctx: Any, fbc: int, nr_counters: int) -> None:
    _destroy_many(ctx, fbc, nr_counters & 0xFFFFFFFF)


@export("percpu_counter_set", "void percpu_counter_set(struct percpu_counter *fbc, s64 amount)", nargs=2)
def percpu_counter_set(ctx: Any, fbc: int, amount: int) -> None:
    counter = _Counter(ctx, fbc)
    counter.local = 0
    counter.count = amount


@export("percpu_counter_add_batch", "void percpu_counter_add_batch(struct percpu_counter *fbc, "
        "s64 amount, s32 batch)", nargs=3)
def percpu_counter_add_batch(ctx: Any, fbc: int, amount: int, batch: int) -> None:
    """The delta goes to CPU 0's s32 until its magnitude reaches `batch`;
    then the whole delta is folded into `count` under the lock."""
    counter = _Counter(ctx, fbc)
    amount = _s64(amount)
    local = counter.local + amount
    if abs(local) >= _s32(batch):
        counter.count = counter.count + local
        counter.local = 0
    else:
        counter.local = local


@export("percpu_counter_sync", "void percpu_counter_sync(struct percpu_counter *fbc)", nargs=1)
def percpu_counter_sync(ctx: Any, fbc: int) -> None:
    counter = _Counter(ctx, fbc)
    counter.count = counter.count + counter.local
    counter.local = 0


@export("__percpu_counter_sum", "s64 __percpu_counter_sum(struct percpu_counter *fbc)", nargs=1)
def __percpu_counter_sum(ctx: Any, fbc: int) -> int:
    return _Counter(ctx, fbc).sum()


@export("__percpu_counter_compare", "int __percpu_counter_compare(struct percpu_counter *fbc, "
        "s64 rhs, s32 batch)", nargs=3)
def __percpu_counter_compare(ctx: Any, fbc: int, rhs: int, batch: int) -> int:
    """The rough `count` when it is further from `rhs` than every CPU's
    batch could make up, else the precise sum."""
    counter = _Counter(ctx, fbc)
    rhs = _s64(rhs)
    count = counter.count
    if abs(count - rhs) <= _s32(batch) * NUM_ONLINE_CPUS:
        count = counter.sum()
    return (count > rhs) - (count < rhs)
