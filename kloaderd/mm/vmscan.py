"""mm/vmscan.c's shrinkers: the registry (`shrinker_list`, the ids of
memcg-aware ones), Linux 6.1's `register_shrinker`/`unregister_shrinker`,
and reclaim as `drop_slab()` does it (kloaderd/fs/drop_caches.py writes
2 or 3 to /proc/sys/vm/drop_caches to run it).  6.7+'s allocated
shrinkers (`shrinker_alloc`, ...) are in shrinker.py, on the same list.

A module's `struct shrinker` (its callbacks, batch, seeks, flags, list, id
and nr_deferred, at the kernel's offsets: kernel/layouts.py; the flag bits
measured too, as they moved in 6.7) is prepared as __prealloc_shrinker()
prepares it — a memcg-aware one gets the lowest free shrinker id, any
other its `nr_deferred` counter (one node) — then linked on `shrinker_list`
and flagged SHRINKER_REGISTERED.  Unregistering waits for a count or scan
running in it (Linux: shrinker_rwsem, 6.7+ the shrinker's refcount and
`done`), unlinks it, clears the flag and frees `nr_deferred`; one never
registered is ignored, as Linux ignores it.  A shrinker its module leaves
registered is reported and unlinked when the module goes.

Reclaim is do_shrink_slab() at priority 0 for each shrinker, with Linux's
arithmetic (the deferred count, `seeks`, `batch` or SHRINK_BATCH, SHRINK_STOP
and SHRINK_EMPTY), repeated while it frees, as drop_slab() repeats.  Where
kloader differs: only drop_caches applies pressure (the heap never runs
short of pages), and `shrink_control.memcg` is NULL, as with memory
cgroups disabled, so a memcg-aware shrinker is asked for the whole node.
"""

from __future__ import annotations

import errno
from typing import Any

import trio

from ..kernel.api import export
from ..kernel.api.printk import format_guest
from ..kernel.layouts import constants, struct
from ..lib.list import GuestList

SHRINKER = struct("struct shrinker", "linux/shrinker.h", "count_objects", "scan_objects", "batch", "seeks",
                  "flags", "list", "id", "nr_deferred")
FLAGS = constants("shrinker flags", "linux/shrinker.h", "SHRINKER_REGISTERED", "SHRINKER_NUMA_AWARE",
                  "SHRINKER_MEMCG_AWARE", optional=("SHRINKER_ALLOCATED",))    # 6.7+
CONTROL = struct("struct shrink_control", "linux/shrinker.h", "gfp_mask", "nid", "nr_to_scan", "nr_scanned",
                 "memcg")
STRUCTS = (SHRINKER, FLAGS, CONTROL)
SHRINK_BATCH = 128
SHRINK_STOP = (1 << 64) - 1
SHRINK_EMPTY = (1 << 64) - 2
GFP_KERNEL = 0xcc0
_MASK64 = (1 << 64) - 1
NAME_ROOM = 64          # of a shrinker's name, kept for the reports
MAX_SCANS = 4096        # scan_objects calls per shrinker per pass: one that never
                        # reports progress (nr_scanned 0) would loop for ever in Linux
MAX_PASSES = 64         # drop_slab's passes: its shift has consumed any count by then


class Shrinkers:
    """shrinker_list and shrinker_idr of one kernel, and the calls running."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.list = GuestList(kernel)
        self.ids: dict[int, int] = {}               # id -> shrinker
        self.running: dict[int, trio.Event] = {}    # shrinker -> set when its call returns
        self.reclaim = trio.Lock()                  # one drop_slab at a time

    def flag(self, name: str) -> int:
        return getattr(self.kernel.layouts[FLAGS], name)

    def registered(self, shrinker: int) -> bool:
        return bool(self.kernel.mem.read_u32(shrinker + self.kernel.layouts[SHRINKER].flags)
                    & self.flag("SHRINKER_REGISTERED"))

    def prepare(self, shrinker: int) -> int:
        """Its id, or its nr_deferred counter: 0 or -ENOMEM."""
        kernel, mem, at = self.kernel, self.kernel.mem, self.kernel.layouts[SHRINKER]
        if mem.read_u32(shrinker + at.flags) & self.flag("SHRINKER_MEMCG_AWARE"):
            ident = next(i for i in range(len(self.ids) + 1) if i not in self.ids)
            self.ids[ident] = shrinker
            mem.write_u32(shrinker + at.id, ident)
            return 0
        deferred = kernel.slab.alloc(8, None, zero=True)     # one node: nr_node_ids is 1
        if not deferred:
            return -errno.ENOMEM
        mem.write_u64(shrinker + at.nr_deferred, deferred)
        return 0

    def link(self, ctx: Any, shrinker: int) -> None:
        mem, at = self.kernel.mem, self.kernel.layouts[SHRINKER]
        self.list.add_tail(ctx, shrinker + at.list)
        mem.write_u32(shrinker + at.flags, mem.read_u32(shrinker + at.flags) | self.flag("SHRINKER_REGISTERED"))

    async def unlink(self, ctx: Any, shrinker: int) -> None:
        """Off the list once no count or scan runs in it, and released."""
        while shrinker in self.running:
            await self.running[shrinker].wait()
        if self.registered(shrinker):               # not unregistered while this waited
            self.list.delete(ctx, shrinker + self.kernel.layouts[SHRINKER].list, rcu=True)
        self.release(shrinker)

    def release(self, shrinker: int) -> None:
        """Not registered, no id, no nr_deferred."""
        kernel, mem, at = self.kernel, self.kernel.mem, self.kernel.layouts[SHRINKER]
        flags = mem.read_u32(shrinker + at.flags)
        mem.write_u32(shrinker + at.flags, flags & ~self.flag("SHRINKER_REGISTERED"))
        if flags & self.flag("SHRINKER_MEMCG_AWARE"):
            self.ids.pop(mem.read_u32(shrinker + at.id), None)
        deferred = mem.read_u64(shrinker + at.nr_deferred)
        if deferred:
            kernel.slab.free(deferred, None)
        mem.write_u64(shrinker + at.nr_deferred, 0)

    def leftover(self, shrinker: int) -> None:
        """Its module went with it registered: off the list, no module code run."""
        if self.registered(shrinker):
            self.list.unlink_quietly(shrinker + self.kernel.layouts[SHRINKER].list)
            self.release(shrinker)

    # -- reclaim --------------------------------------------------------------------------

    async def drop_slab(self, comm: str) -> int:
        """drop_slab(): shrink every shrinker until a pass frees (almost)
        nothing; the objects freed."""
        async with self.reclaim:
            total = 0
            for shift in range(MAX_PASSES):
                freed = await self.shrink_slab(comm)
                total += freed
                if freed >> shift <= 1:
                    break
            return total

    async def shrink_slab(self, comm: str) -> int:
        kernel = self.kernel
        control = kernel.layouts[CONTROL]
        sc = kernel.slab.alloc(control.size, None, zero=True)
        if not sc:
            return 0
        freed = 0
        try:
            for node in list(self.list):
                shrinker = node - kernel.layouts[SHRINKER].list
                if not self.registered(shrinker):
                    continue                        # unregistered during an earlier call
                done = self.running[shrinker] = trio.Event()
                try:
                    kernel.mem.write(sc, bytes(control.size))
                    kernel.mem.write_u32(sc + control.gfp_mask, GFP_KERNEL)
                    ret = await self._do_shrink(shrinker, sc, comm)
                finally:
                    del self.running[shrinker]
                    done.set()
                freed += 0 if ret == SHRINK_EMPTY else ret
        finally:
            kernel.slab.free(sc, None)
        return freed

    async def _do_shrink(self, shrinker: int, sc: int, comm: str) -> int:
        """do_shrink_slab() at priority 0."""
        kernel, mem, at, control = self.kernel, self.kernel.mem, self.kernel.layouts[SHRINKER], \
            self.kernel.layouts[CONTROL]

        async def call(member: str) -> int:
            fn = mem.read_u64(shrinker + getattr(at, member))
            return await kernel.sanitizer.call_pointer(fn, shrinker, sc, via="do_shrink_slab", comm=comm,
                                                       check=False) & _MASK64
        freeable = await call("count_objects")
        if freeable in (0, SHRINK_EMPTY):
            return freeable
        freeable = _signed(freeable)               # Linux keeps it in a long
        if freeable < 0:
            return 0
        deferred = mem.read_u64(shrinker + at.nr_deferred)   # memcg-aware: kept per memcg, none here
        nr = _signed(mem.read_u64(deferred)) if deferred else 0
        if deferred:
            mem.write_u64(deferred, 0)
        seeks = _signed(mem.read_u32(shrinker + at.seeks), 32)
        delta = freeable * 4 // seeks if seeks else freeable // 2
        total_scan = min(nr + delta, 2 * freeable)
        batch = _signed(mem.read_u64(shrinker + at.batch)) or SHRINK_BATCH
        freed = scanned = 0
        for _ in range(MAX_SCANS):
            if total_scan < batch and total_scan < freeable:
                break
            nr_to_scan = min(batch, total_scan)
            mem.write_u64(sc + control.nr_to_scan, nr_to_scan)
            mem.write_u64(sc + control.nr_scanned, nr_to_scan)
            ret = await call("scan_objects")
            if ret == SHRINK_STOP:
                break
            freed = (freed + ret) & _MASK64
            done = mem.read_u64(sc + control.nr_scanned)
            total_scan -= done
            scanned += done
        if deferred:
            next_deferred = min(max(nr + delta - scanned, 0), 2 * freeable)
            mem.write_u64(deferred, (_signed(mem.read_u64(deferred)) + next_deferred) & _MASK64)
        return freed


def _signed(value: int, bits: int = 64) -> int:
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


def shrinkers(kernel: Any) -> Shrinkers:
    return kernel.subsystem(Shrinkers)


def _leftover(entry: Any) -> None:
    entry.data.leftover(entry.address)


def described(ctx: Any, fmt: int) -> str:
    """What the registry calls a shrinker: its printf-formatted name (Linux
    keeps it only for debugfs, CONFIG_SHRINKER_DEBUG)."""
    name = format_guest(ctx, fmt, ctx.va(), room=NAME_ROOM)[0].decode(errors="replace") if fmt else ""
    return f'shrinker "{name}"'


@export("register_shrinker", "int register_shrinker(struct shrinker *shrinker, const char *fmt, ...)",
        nargs=2, variadic=True)
def register_shrinker(ctx: Any, shrinker: int, fmt: int) -> int:
    state = shrinkers(ctx.kernel)
    err = state.prepare(shrinker)
    if err:
        return err
    state.link(ctx, shrinker)
    ctx.kernel.registrations.registry("shrinker").add(
        shrinker, described(ctx, fmt), owner=ctx.module, address=shrinker, data=state, on_leftover=_leftover)
    return 0


@export("unregister_shrinker", "void unregister_shrinker(struct shrinker *shrinker)", nargs=1)
async def unregister_shrinker(ctx: Any, shrinker: int) -> None:
    state = shrinkers(ctx.kernel)
    if state.registered(shrinker):
        ctx.kernel.registrations.registry("shrinker").remove(shrinker)
        await state.unlink(ctx, shrinker)
