"""mm/shrinker.c (Linux 6.7+): shrinkers the kernel allocates —
`shrinker_alloc`, `shrinker_register`, `shrinker_free` — on the same
`shrinker_list` as 6.1's registered ones (vmscan.py), and reclaimed the same
way.

`shrinker_alloc(flags, fmt, ...)` zero-allocates a `struct shrinker` of the
running kernel's size, flagged SHRINKER_ALLOCATED with DEFAULT_SEEKS, and
gives it its id (memcg-aware) or `nr_deferred`; the module fills in its
callbacks and `private_data`, then `shrinker_register` links it.  One not
from shrinker_alloc is Linux's warning, "Must use shrinker_alloc() to
dynamically allocate the shrinker", and not registered.  `shrinker_free`
(NULL is fine) waits for a count or scan running in it, unlinks it and
frees it (Linux: after an RCU grace period).  Every shrinker a module
allocated is recorded from alloc to free: one left when the module goes is
reported as `NAME: leaked registration: shrinker "FMT"`, unlinked and freed.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.printk import KERN_WARNING
from .vmscan import SHRINKER, STRUCTS as VMSCAN_STRUCTS, described, shrinkers

STRUCTS = VMSCAN_STRUCTS
DEFAULT_SEEKS = 2


def _leftover(entry: Any) -> None:
    state, shrinker = entry.data, entry.address
    state.leftover(shrinker)
    state.kernel.slab.free(shrinker, None)


@export("shrinker_alloc", "struct shrinker *shrinker_alloc(unsigned int flags, const char *fmt, ...)",
        nargs=2, variadic=True)
def shrinker_alloc(ctx: Any, flags: int, fmt: int) -> int:
    kernel, state = ctx.kernel, shrinkers(ctx.kernel)
    at = kernel.layouts[SHRINKER]
    what = described(ctx, fmt)
    shrinker = kernel.slab.alloc(at.size, None, zero=True)
    if not shrinker:
        return 0
    ctx.mem.write_u32(shrinker + at.flags, (flags | state.flag("SHRINKER_ALLOCATED")) & 0xFFFFFFFF)
    ctx.mem.write_u32(shrinker + at.seeks, DEFAULT_SEEKS)
    if state.prepare(shrinker):
        kernel.slab.free(shrinker, None)
        return 0
    kernel.registrations.registry("shrinker").add(
        shrinker, what, owner=ctx.module, address=shrinker, data=state, on_leftover=_leftover)
    return shrinker


@export("shrinker_register", "void shrinker_register(struct shrinker *shrinker)", nargs=1)
def shrinker_register(ctx: Any, shrinker: int) -> None:
    state = shrinkers(ctx.kernel)
    at = ctx.kernel.layouts[SHRINKER]
    if not ctx.mem.read_u32(shrinker + at.flags) & state.flag("SHRINKER_ALLOCATED"):
        ctx.kernel.log.emit(KERN_WARNING, "Must use shrinker_alloc() to dynamically allocate the shrinker",
                            ctx.module)
        return
    state.link(ctx, shrinker)


@export("shrinker_free", "void shrinker_free(struct shrinker *shrinker)", nargs=1)
async def shrinker_free(ctx: Any, shrinker: int) -> None:
    if not shrinker:
        return
    state = shrinkers(ctx.kernel)
    ctx.kernel.registrations.registry("shrinker").remove(shrinker)
    await state.unlink(ctx, shrinker)
    ctx.kernel.slab.free(shrinker, None)
