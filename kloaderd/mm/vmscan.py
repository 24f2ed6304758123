"""mm/vmscan.c's shrinker registry: `register_shrinker`, `unregister_shrinker`.

A module's `struct shrinker` (its flags, list, id and nr_deferred, at the
kernel's offsets: kernel/layouts.py) is prepared as __prealloc_shrinker() prepares it —
a memcg-aware one gets the lowest free shrinker id, any other its
`nr_deferred` counter(s) (one per node when NUMA-aware) — then linked on
`shrinker_list` and flagged SHRINKER_REGISTERED.  Unregistering unlinks it,
clears the flag and frees `nr_deferred`; one never registered is ignored,
as Linux ignores it.  A shrinker its module leaves registered is reported
and unlinked when the module goes.  Where kloader differs: nothing ever
applies memory pressure, so no shrinker's count or scan runs.
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export
from ..kernel.layouts import struct
from ..lib.list import GuestList

SHRINKER = struct("struct shrinker", "linux/shrinker.h", "flags", "list", "id", "nr_deferred")
STRUCTS = (SHRINKER,)
SHRINKER_REGISTERED, SHRINKER_NUMA_AWARE, SHRINKER_MEMCG_AWARE = 1, 2, 4


class Shrinkers:
    """shrinker_list and shrinker_idr of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)
        self.ids: dict[int, int] = {}          # id -> shrinker


def _shrinkers(ctx: Any) -> Shrinkers:
    return ctx.kernel.subsystem(Shrinkers)


def _release(kernel: Any, state: Shrinkers, shrinker: int) -> None:
    mem, at = kernel.mem, kernel.layouts[SHRINKER]
    flags = mem.read_u32(shrinker + at.flags)
    mem.write_u32(shrinker + at.flags, flags & ~SHRINKER_REGISTERED)
    if flags & SHRINKER_MEMCG_AWARE:
        state.ids.pop(mem.read_u32(shrinker + at.id), None)
    deferred = mem.read_u64(shrinker + at.nr_deferred)
    if deferred:
        kernel.slab.free(deferred, None)
    mem.write_u64(shrinker + at.nr_deferred, 0)


@export("register_shrinker", "int register_shrinker(struct shrinker *shrinker, const char *fmt, ...)",
        nargs=2, variadic=True)
def register_shrinker(ctx: Any, shrinker: int, fmt: int) -> int:
    mem, state, at = ctx.mem, _shrinkers(ctx), ctx.kernel.layouts[SHRINKER]
    flags = mem.read_u32(shrinker + at.flags)
    if flags & SHRINKER_MEMCG_AWARE:
        ident = next(i for i in range(len(state.ids) + 1) if i not in state.ids)
        state.ids[ident] = shrinker
        mem.write_u32(shrinker + at.id, ident)
    else:
        deferred = ctx.kernel.slab.alloc(8, None, zero=True)   # one node: nr_node_ids is 1
        if not deferred:
            return -errno.ENOMEM
        mem.write_u64(shrinker + at.nr_deferred, deferred)
    state.list.add_tail(ctx, shrinker + at.list)
    mem.write_u32(shrinker + at.flags, flags | SHRINKER_REGISTERED)
    ctx.kernel.registrations.registry("shrinker").add(
        shrinker, "shrinker", owner=ctx.module, address=shrinker, data=(ctx.kernel, state),
        on_leftover=_leftover)
    return 0


def _leftover(entry: Any) -> None:
    kernel, state = entry.data
    state.list.unlink_quietly(entry.address + kernel.layouts[SHRINKER].list)
    _release(kernel, state, entry.address)


@export("unregister_shrinker", "void unregister_shrinker(struct shrinker *shrinker)", nargs=1)
def unregister_shrinker(ctx: Any, shrinker: int) -> None:
    at = ctx.kernel.layouts[SHRINKER]
    if not ctx.mem.read_u32(shrinker + at.flags) & SHRINKER_REGISTERED:
        return
    state = _shrinkers(ctx)
    ctx.kernel.registrations.registry("shrinker").remove(shrinker)
    state.list.delete(ctx, shrinker + at.list)
    _release(ctx.kernel, state, shrinker)
