"""net/core/dst_cache.c: `dst_cache_init` / `dst_cache_destroy`, the
per-CPU route cache tunnels keep (ip_tunnel, ip6_tunnel, sit, geneve).

As Linux: init allocates the zeroed per-CPU `struct dst_cache_pcpu`
(refresh_ts, dst, cookie, the cached source address: 40 bytes in 6.1 and
6.12) into `dst_cache->cache` — NULL and -ENOMEM when the per-CPU area is
full — and stamps `reset_ts` with jiffies (dst_cache_reset); destroy
releases each CPU's cached route and frees the area.  No route is ever
cached in kloader (nothing routes a packet), so destroy finds none.  The
allocation is the caller's per-CPU allocation (mm/percpu.py), reported if
never destroyed.  struct dst_cache {cache, reset_ts} is two words in every
release.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...mm.percpu import _alloc, free_percpu

DST_CACHE_PCPU_SIZE = 40
CACHE, RESET_TS = 0, 8


@export("dst_cache_init", "int dst_cache_init(struct dst_cache *dst_cache, gfp_t gfp)", nargs=2)
def dst_cache_init(ctx: Any, dst_cache: int, gfp: int) -> int:
    cache = _alloc(ctx, DST_CACHE_PCPU_SIZE, 8)
    ctx.mem.write_u64(dst_cache + CACHE, cache)
    if not cache:
        return -errno.ENOMEM
    ctx.mem.write_u64(dst_cache + RESET_TS, ctx.machine.jiffies())
    return 0


@export("dst_cache_destroy", "void dst_cache_destroy(struct dst_cache *dst_cache)", nargs=1)
def dst_cache_destroy(ctx: Any, dst_cache: int) -> None:
    cache = ctx.mem.read_u64(dst_cache + CACHE)
    if cache:
        free_percpu(ctx, cache)
