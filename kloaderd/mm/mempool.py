"""mm/mempool.c for module code: memory pools with a reserve
(`mempool_create`, `mempool_create_node`, `mempool_init`,
`mempool_init_node`, `mempool_alloc`, `mempool_free`, `mempool_exit`,
`mempool_destroy`) and the standard element functions
(`mempool_alloc_slab`/`mempool_free_slab`, `mempool_kmalloc`/`mempool_kfree`,
`mempool_alloc_pages`/`mempool_free_pages`: struct pages of mm/page_alloc.py).

`mempool_t` is read and written at the kernel's offsets (kernel/layouts.py),
so a module's inline `mempool_initialized()` reads what Linux's would.  The pool's alloc and free
functions are called through their pointers, whether the kernel's or the
module's own (module code runs on a task of its own,
kernel/callback.py).  Creating fills the reserve with `min_nr` elements,
undone and NULL (-ENOMEM for init) if one fails; allocating tries the
function first, then the reserve, and when both fail and the gfp mask
allows sleeping (__GFP_DIRECT_RECLAIM) waits for an element to be freed
(up to 5 s at a time, as io_schedule_timeout(5*HZ)) and tries again;
freeing refills the reserve before giving elements back.
"""

from __future__ import annotations

import errno
from typing import Any

import trio

from ..kernel.api import export
from ..kernel.api.slab import kfree, _kmalloc
from ..kernel.callback import call_module_code
from ..kernel.layouts import struct
from ..lib.list import init_list_head
from .page_alloc import PAGE, __free_pages, alloc_pages
from .slab_common import kmem_cache_alloc, kmem_cache_free

MEMPOOL = struct("mempool_t", "linux/mempool.h", "lock", "min_nr", "curr_nr", "elements", "pool_data", "alloc",
                 "free", "wait")
STRUCTS = (MEMPOOL,)
GFP_KERNEL = 0xCC0
__GFP_DIRECT_RECLAIM, __GFP_IO = 0x400, 0x40
__GFP_NOWARN, __GFP_NORETRY, __GFP_NOMEMALLOC = 0x2000, 0x10000, 0x80000
MAX_MIN_NR = 1 << 16          # a reserve larger than this is refused (-ENOMEM), a bound of kloader's


class Waiters:
    """pool->wait: an event per pool, set when an element comes back."""

    def __init__(self, kernel: Any) -> None:
        self.events: dict[int, trio.Event] = {}

    def wake(self, pool: int) -> None:
        event = self.events.pop(pool, None)
        if event is not None:
            event.set()

    def event(self, pool: int) -> trio.Event:
        return self.events.setdefault(pool, trio.Event())


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _dispatch(ctx: Any, fn: int, *args: int) -> Any:
    """pool->alloc or pool->free: the kernel's standard element functions
    run here, in the caller's context (an int); the module's own on a task
    (a coroutine)."""
    symbols = ctx.machine.kernel_symbols()
    for name, impl in STANDARD.items():
        if symbols.get(name) == fn:
            return impl(ctx, *args) or 0
    return call_module_code(ctx, fn, *args)


async def _call(ctx: Any, fn: int, *args: int) -> int:
    result = _dispatch(ctx, fn, *args)
    return result if isinstance(result, int) else await result


async def _element_alloc(ctx: Any, pool: int, gfp: int) -> int:
    pl = ctx.kernel.layouts[MEMPOOL]
    mem = ctx.mem
    return await _call(ctx, mem.read_u64(pool + pl.alloc), gfp, mem.read_u64(pool + pl.pool_data))


async def _element_free(ctx: Any, pool: int, element: int) -> None:
    pl = ctx.kernel.layouts[MEMPOOL]
    mem = ctx.mem
    await _call(ctx, mem.read_u64(pool + pl.free), element, mem.read_u64(pool + pl.pool_data))


def _add(ctx: Any, pool: int, element: int) -> None:
    pl = ctx.kernel.layouts[MEMPOOL]
    mem = ctx.mem
    count = mem.read_u32(pool + pl.curr_nr)
    mem.write_u64(mem.read_u64(pool + pl.elements) + 8 * count, element)
    mem.write_u32(pool + pl.curr_nr, count + 1)


def _remove(ctx: Any, pool: int) -> int:
    pl = ctx.kernel.layouts[MEMPOOL]
    mem = ctx.mem
    count = mem.read_u32(pool + pl.curr_nr) - 1
    mem.write_u32(pool + pl.curr_nr, count)
    return mem.read_u64(mem.read_u64(pool + pl.elements) + 8 * count)


async def _exit(ctx: Any, pool: int) -> None:
    """mempool_exit(): the reserve back through pool->free, the array freed."""
    pl = ctx.kernel.layouts[MEMPOOL]
    mem = ctx.mem
    while mem.read_u32(pool + pl.curr_nr):
        await _element_free(ctx, pool, _remove(ctx, pool))
    elements = mem.read_u64(pool + pl.elements)
    if elements:
        kfree(ctx, elements)
    mem.write_u64(pool + pl.elements, 0)


async def _init(ctx: Any, pool: int, min_nr: int, alloc: int, free: int, data: int,
                gfp: int) -> int:
    """mempool_init_node()."""
    pl = ctx.kernel.layouts[MEMPOOL]
    mem = ctx.mem
    min_nr = _s32(min_nr)
    mem.write_u32(pool + pl.lock, 0)
    mem.write_u32(pool + pl.min_nr, min_nr & 0xFFFFFFFF)
    mem.write_u32(pool + pl.curr_nr, 0)
    mem.write_u64(pool + pl.pool_data, data)
    mem.write_u64(pool + pl.alloc, alloc)
    mem.write_u64(pool + pl.free, free)
    mem.write_u32(pool + pl.wait, 0)
    init_list_head(mem, pool + pl.wait + 8)
    elements = _kmalloc(ctx, 8 * max(min_nr, 1), gfp) if 0 <= min_nr <= MAX_MIN_NR else 0
    mem.write_u64(pool + pl.elements, elements)
    if not elements:
        return -errno.ENOMEM
    while mem.read_u32(pool + pl.curr_nr) < min_nr:
        element = await _element_alloc(ctx, pool, gfp)
        if not element:
            await _exit(ctx, pool)
            return -errno.ENOMEM
        _add(ctx, pool, element)
    return 0


@export("mempool_init_node", "int mempool_init_node(mempool_t *pool, int min_nr, "
        "mempool_alloc_t *alloc_fn, mempool_free_t *free_fn, void *pool_data, gfp_t gfp_mask, "
        "int node_id)", nargs=7)
def mempool_init_node(ctx: Any, pool: int, min_nr: int, alloc: int, free: int, data: int,
                      gfp: int, node: int) -> Any:
    return _init(ctx, pool, min_nr, alloc, free, data, gfp)


@export("mempool_init_noprof", "int mempool_init_noprof(mempool_t *pool, int min_nr, mempool_alloc_t *alloc_fn, "
        "mempool_free_t *free_fn, void *pool_data)", nargs=5)
@export("mempool_init", "int mempool_init(mempool_t *pool, int min_nr, mempool_alloc_t *alloc_fn, "
        "mempool_free_t *free_fn, void *pool_data)", nargs=5)
def mempool_init(ctx: Any, pool: int, min_nr: int, alloc: int, free: int, data: int) -> Any:
    return _init(ctx, pool, min_nr, alloc, free, data, GFP_KERNEL)


async def _create(ctx: Any, min_nr: int, alloc: int, free: int, data: int, gfp: int) -> int:
    pl = ctx.kernel.layouts[MEMPOOL]
    pool = _kmalloc(ctx, pl.size, gfp | 0x100)                 # kzalloc_node
    if not pool:
        return 0
    if await _init(ctx, pool, min_nr, alloc, free, data, gfp):
        kfree(ctx, pool)
        return 0
    return pool


@export("mempool_create_node_noprof", "mempool_t *mempool_create_node_noprof(int min_nr, "
        "mempool_alloc_t *alloc_fn, mempool_free_t *free_fn, void *pool_data, gfp_t gfp_mask, "
        "int nid)", nargs=6)
@export("mempool_create_node", "mempool_t *mempool_create_node(int min_nr, "
        "mempool_alloc_t *alloc_fn, mempool_free_t *free_fn, void *pool_data, gfp_t gfp_mask, "
        "int nid)", nargs=6)
def mempool_create_node(ctx: Any, min_nr: int, alloc: int, free: int, data: int, gfp: int,
                        nid: int) -> Any:
    return _create(ctx, min_nr, alloc, free, data, gfp)


@export("mempool_create", "mempool_t *mempool_create(int min_nr, mempool_alloc_t *alloc_fn, "
        "mempool_free_t *free_fn, void *pool_data)", nargs=4)
def mempool_create(ctx: Any, min_nr: int, alloc: int, free: int, data: int) -> Any:
    return _create(ctx, min_nr, alloc, free, data, GFP_KERNEL)


@export("mempool_exit", "void mempool_exit(mempool_t *pool)", nargs=1)
def mempool_exit(ctx: Any, pool: int) -> Any:
    return _exit(ctx, pool)


@export("mempool_destroy", "void mempool_destroy(mempool_t *pool)", nargs=1)
def mempool_destroy(ctx: Any, pool: int) -> Any:
    if not pool:
        return 0

    async def destroying() -> int:
        await _exit(ctx, pool)
        kfree(ctx, pool)
        return 0
    return destroying()


@export("mempool_alloc_noprof", "void *mempool_alloc_noprof(mempool_t *pool, gfp_t gfp_mask)", nargs=2)
@export("mempool_alloc", "void *mempool_alloc(mempool_t *pool, gfp_t gfp_mask)", nargs=2)
def mempool_alloc(ctx: Any, pool: int, gfp: int) -> Any:
    pl = ctx.kernel.layouts[MEMPOOL]
    gfp |= __GFP_NOMEMALLOC | __GFP_NORETRY | __GFP_NOWARN
    mem, waiters = ctx.mem, ctx.kernel.subsystem(Waiters)
    gfp_temp = gfp & ~(__GFP_DIRECT_RECLAIM | __GFP_IO)
    first = _dispatch(ctx, mem.read_u64(pool + pl.alloc), gfp_temp, mem.read_u64(pool + pl.pool_data))
    if isinstance(first, int):                 # the kernel's function: no sleep unless needed
        if first:
            return first
        if mem.read_u32(pool + pl.curr_nr):
            return _remove(ctx, pool)

    async def allocating() -> int:
        nonlocal gfp_temp
        element = first if isinstance(first, int) else await first
        while True:
            if element:
                return element
            if mem.read_u32(pool + pl.curr_nr):
                return _remove(ctx, pool)
            if gfp_temp != gfp:
                gfp_temp = gfp
            elif not gfp & __GFP_DIRECT_RECLAIM:
                return 0
            else:
                with trio.move_on_after(5):
                    await waiters.event(pool).wait()
            element = await _element_alloc(ctx, pool, gfp_temp)
    if isinstance(first, int) and not gfp & __GFP_DIRECT_RECLAIM and gfp_temp == gfp:
        return 0
    return allocating()


@export("mempool_free", "void mempool_free(void *element, mempool_t *pool)", nargs=2)
def mempool_free(ctx: Any, element: int, pool: int) -> Any:
    pl = ctx.kernel.layouts[MEMPOOL]
    if not element:
        return 0
    mem = ctx.mem
    if mem.read_u32(pool + pl.curr_nr) < mem.read_u32(pool + pl.min_nr):
        _add(ctx, pool, element)
        ctx.kernel.subsystem(Waiters).wake(pool)
        return 0
    return _dispatch(ctx, mem.read_u64(pool + pl.free), element, mem.read_u64(pool + pl.pool_data))


# --- the standard element functions --------------------------------------------------

@export("mempool_alloc_slab", "void *mempool_alloc_slab(gfp_t gfp_mask, void *pool_data)", nargs=2)
def mempool_alloc_slab(ctx: Any, gfp: int, cache: int) -> Any:
    return kmem_cache_alloc(ctx, cache, gfp)


@export("mempool_free_slab", "void mempool_free_slab(void *element, void *pool_data)", nargs=2)
def mempool_free_slab(ctx: Any, element: int, cache: int) -> Any:
    return kmem_cache_free(ctx, cache, element)


@export("mempool_kmalloc", "void *mempool_kmalloc(gfp_t gfp_mask, void *pool_data)", nargs=2)
def mempool_kmalloc(ctx: Any, gfp: int, size: int) -> int:
    return _kmalloc(ctx, size, gfp)


@export("mempool_kfree", "void mempool_kfree(void *element, void *pool_data)", nargs=2)
def mempool_kfree(ctx: Any, element: int, size: int) -> int:
    return kfree(ctx, element)


@export("mempool_alloc_pages", "void *mempool_alloc_pages(gfp_t gfp_mask, void *pool_data)", nargs=2,
        structs=(PAGE,))
def mempool_alloc_pages(ctx: Any, gfp: int, order: int) -> int:
    """Pages of order `pool_data` (mempool_init_page_pool): the element is the struct page."""
    return alloc_pages(ctx, gfp, order & 0xFFFFFFFF)


@export("mempool_free_pages", "void mempool_free_pages(void *element, void *pool_data)", nargs=2,
        structs=(PAGE,))
def mempool_free_pages(ctx: Any, element: int, order: int) -> None:
    __free_pages(ctx, element, order & 0xFFFFFFFF)


STANDARD = {"mempool_alloc_slab": mempool_alloc_slab, "mempool_free_slab": mempool_free_slab,
            "mempool_kmalloc": mempool_kmalloc, "mempool_kfree": mempool_kfree,
            "mempool_alloc_pages": mempool_alloc_pages, "mempool_free_pages": mempool_free_pages}
