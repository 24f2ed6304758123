"""mm/slab_common.c and SLUB's kmem_cache API: named object caches.

A cache made by `kmem_cache_create` is a kloader object (modules treat
`struct kmem_cache` as opaque) recorded in the "slab_cache" registry, so a
module that forgets `kmem_cache_destroy` is told at unload.  Its objects
come from the kernel heap (`Slab`), accounted to the allocating module as
kmalloc's are, so objects not freed are that module's leaks.  As Linux:

* flags outside SLAB_FLAGS_PERMITTED are "kmem_cache_create(NAME) failed
  with error -22" and NULL (SLAB_PANIC makes it a panic); 6.12's
  `__kmem_cache_create_args` (kmem_cache_create() became a macro over it,
  its alignment and constructor in a `struct kmem_cache_args`, NULL for
  none) says "__kmem_cache_create_args(NAME) failed with error -22".  The
  flags' values are each release's (6.10 renumbered them), measured as
  layouts are (kernel/layouts.py); the permitted ones are every SLAB_ flag
  the release defines;
* alignment is calculate_alignment()'s: SLAB_HWCACHE_ALIGN aligns to the
  64-byte line (halved while the object fits in half), never below 8;
* a constructor runs on each object before it is handed out;
* `kmem_cache_free` of an object of another cache is the WARN
  "cache_from_obj: Wrong slab cache. A but object is from B" (SLUB under
  slab_debug) and the object is freed to its own cache;
* `kmem_cache_destroy` of a cache with objects still allocated reports
  "BUG NAME (Tainted): Objects remaining in NAME on __kmem_cache_shutdown()"
  and the WARN "kmem_cache_destroy NAME: Slab cache still has objects", and
  keeps the cache (Linux leaks it); destroying NULL does nothing.

`kmem_cache_create_usercopy` (6.1) makes the same cache and keeps its
usercopy region, cleared when it does not lie within the object as Linux
clears it (without Linux's WARN); CONFIG_HARDENED_USERCOPY's check of each
copy_to_user/copy_from_user against the region is not emulated.

Where kloader differs: caches are never merged with one another (slab
merging is invisible to modules), and a constructor runs for every
allocation rather than once per object of a new slab page.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.callback import call_module_code
from ..kernel.layouts import constants, struct
from ..kernel.panic import warn
from ..kernel.printk import KERN_ERR, KERN_WARNING
from ..kernel.slab import KMALLOC_MAX_SIZE

__GFP_ZERO = 0x100
# SLAB_FLAGS_PERMITTED for SLUB (mm/slab.h): the core flags, the debug flags
# (RED_ZONE, POISON, STORE_USER, TRACE, CONSISTENCY_CHECKS), KASAN, SKIP_KFENCE
# and those a release adds or drops (MEM_SPREAD until 6.8, NO_MERGE from 6.5).
SLAB_FLAGS = constants("slab flags", "linux/slab.h", "SLAB_HWCACHE_ALIGN", "SLAB_PANIC", "SLAB_ACCOUNT", optional=(
    "SLAB_CACHE_DMA", "SLAB_CACHE_DMA32", "SLAB_TYPESAFE_BY_RCU", "SLAB_DEBUG_OBJECTS", "SLAB_NOLEAKTRACE",
    "SLAB_RECLAIM_ACCOUNT", "SLAB_NO_USER_FLAGS", "SLAB_RED_ZONE", "SLAB_POISON",
    "SLAB_STORE_USER", "SLAB_TRACE", "SLAB_CONSISTENCY_CHECKS", "SLAB_MEM_SPREAD", "SLAB_KASAN",
    "SLAB_SKIP_KFENCE", "SLAB_NO_MERGE", "SLAB_KMALLOC", "SLAB_NO_OBJ_EXT"))
STRUCTS = (SLAB_FLAGS,)
# 6.11+: what __kmem_cache_create_args() takes beside the size and flags.
CACHE_ARGS = struct("struct kmem_cache_args", "linux/slab.h", "align", "ctor")
CACHE_LINE = 64
NAME_LIMIT = 256
CACHE_OBJECT_SIZE = 64          # the kloader object a `struct kmem_cache *` points at


class KmemCache:
    def __init__(self, name: str, size: int, align: int, ctor: int) -> None:
        self.name, self.size, self.align, self.ctor = name, size, align, ctor
        # The usercopy region (kmem_cache_create_usercopy); the hardened
        # usercopy checks of copies against it are not emulated.
        self.useroffset = self.usersize = 0
        self.objects: set[int] = set()

    def alloc_size(self) -> int:
        """A size the heap hands out aligned to `align`: power-of-two sizes
        come back naturally aligned, others at 8."""
        size = -(-max(self.size, 1) // self.align) * self.align
        if self.align > 8:
            size = 1 << (size - 1).bit_length()
        return size


class Caches:
    def __init__(self, kernel: Any) -> None:
        self.by_address: dict[int, KmemCache] = {}


def calculate_alignment(hwcache_align: bool, align: int, size: int) -> int:
    if hwcache_align:
        ralign = CACHE_LINE
        while size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    return max(align, 8)


def _owner(ctx: Any) -> str | None:
    return getattr(ctx.module, "name", None)


def create(ctx: Any, func: str, name: int, size: int, align: int, flags: int, ctor: int) -> int:
    """kmem_cache_create_usercopy() of 6.1, __kmem_cache_create_args() of
    6.11+: `func` names the function in the failure's message."""
    text = ctx.mem.read_cstr(name, NAME_LIMIT).decode("utf-8", "replace") if name else "(null)"
    size, align, flags = size & 0xFFFFFFFF, align & 0xFFFFFFFF, flags & 0xFFFFFFFF
    known = ctx.kernel.layouts[SLAB_FLAGS]
    permitted = 0
    for value in vars(known).values():
        permitted |= value or 0
    if flags & ~permitted or not name or size > KMALLOC_MAX_SIZE or size < 8:
        if flags & known.SLAB_PANIC:
            from ..kernel.oops import Panic
            raise Panic(f"{func}: Failed to create slab '{text}'. Error -22")
        ctx.kernel.log.emit(KERN_WARNING, f"{func}({text}) failed with error -22", _owner(ctx))
        return 0
    cache = ctx.kernel.slab.alloc(CACHE_OBJECT_SIZE, None, zero=True)
    if not cache:
        return 0
    state = KmemCache(text, size, calculate_alignment(bool(flags & known.SLAB_HWCACHE_ALIGN), align, size), ctor)
    ctx.kernel.subsystem(Caches).by_address[cache] = state
    regs = ctx.kernel.registrations
    regs.registry("slab_cache").add(cache, f"kmem_cache {text}", owner=regs.module_at(name)
                                    or ctx.module, address=cache, points_to=(ctor,),
                                    data=(ctx.kernel, state), on_leftover=_leftover)
    return cache


def kernel_cache(kernel: Any, name: str, size: int, align: int = 8) -> int:
    """A cache of the core kernel's own (block/bio.c's `bio-N`): no
    module's registration, never a leftover; `destroy_kernel_cache` ends it."""
    cache = kernel.slab.alloc(CACHE_OBJECT_SIZE, None, zero=True)
    if cache:
        kernel.subsystem(Caches).by_address[cache] = KmemCache(name, size, max(align, 8), 0)
    return cache


def destroy_kernel_cache(kernel: Any, cache: int) -> None:
    kernel.subsystem(Caches).by_address.pop(cache, None)
    kernel.slab.free(cache, None)


@export("kmem_cache_create", "struct kmem_cache *kmem_cache_create(const char *name, "
        "unsigned int size, unsigned int align, slab_flags_t flags, void (*ctor)(void *))",
        nargs=5)
def kmem_cache_create(ctx: Any, name: int, size: int, align: int, flags: int, ctor: int) -> int:
    return create(ctx, "kmem_cache_create", name, size, align, flags, ctor)


@export("kmem_cache_create_usercopy", "struct kmem_cache *kmem_cache_create_usercopy(const char *name, "
        "unsigned int size, unsigned int align, slab_flags_t flags, unsigned int useroffset, "
        "unsigned int usersize, void (*ctor)(void *))", nargs=7)
def kmem_cache_create_usercopy(ctx: Any, name: int, size: int, align: int, flags: int, useroffset: int,
                               usersize: int, ctor: int) -> int:
    """6.1's (6.12 makes it a macro over __kmem_cache_create_args): a cache
    whose objects may be copied to and from user space only within
    [useroffset, useroffset + usersize); a region outside the object is
    dropped (both 0), as Linux's "fail closed"."""
    cache = create(ctx, "kmem_cache_create_usercopy", name, size, align, flags, ctor)
    size, useroffset, usersize = size & 0xFFFFFFFF, useroffset & 0xFFFFFFFF, usersize & 0xFFFFFFFF
    if (not usersize and useroffset) or size < usersize or size - usersize < useroffset:
        useroffset = usersize = 0
    if cache:
        state = ctx.kernel.subsystem(Caches).by_address[cache]
        state.useroffset, state.usersize = useroffset, usersize
    return cache


@export("__kmem_cache_create_args", "struct kmem_cache *__kmem_cache_create_args(const char *name, "
        "unsigned int object_size, struct kmem_cache_args *args, slab_flags_t flags)", nargs=4,
        structs=(CACHE_ARGS,))
def __kmem_cache_create_args(ctx: Any, name: int, size: int, args: int, flags: int) -> int:
    align = ctor = 0
    if args:                                        # NULL: every argument its default
        at = ctx.kernel.layouts[CACHE_ARGS]
        align, ctor = ctx.mem.read_u32(args + at.align), ctx.mem.read_u64(args + at.ctor)
    return create(ctx, "__kmem_cache_create_args", name, size, align, flags, ctor)


def _cache(ctx: Any, s: int) -> KmemCache | None:
    return ctx.kernel.subsystem(Caches).by_address.get(s)


def _alloc(ctx: Any, s: int, flags: int) -> Any:
    cache = _cache(ctx, s)
    if cache is None:
        raise ValueError(f"kmem_cache_alloc: {s:#x} is not a kmem_cache")
    obj = ctx.kernel.slab.alloc(cache.alloc_size(), _owner(ctx), zero=bool(flags & __GFP_ZERO))
    if not obj:
        return 0
    cache.objects.add(obj)
    if not cache.ctor:
        return obj
    construct = call_module_code(ctx, cache.ctor, obj)

    async def constructed() -> int:
        await construct
        return obj
    return constructed()


@export("kmem_cache_alloc_noprof", "void *kmem_cache_alloc_noprof(struct kmem_cache *s, gfp_t gfpflags)",
        nargs=2)
@export("kmem_cache_alloc", "void *kmem_cache_alloc(struct kmem_cache *s, gfp_t gfpflags)",
        nargs=2)
def kmem_cache_alloc(ctx: Any, s: int, flags: int) -> Any:
    return _alloc(ctx, s, flags)


@export("kmem_cache_alloc_lru_noprof", "void *kmem_cache_alloc_lru_noprof(struct kmem_cache *s, "
        "struct list_lru *lru, gfp_t gfpflags)", nargs=3)
@export("kmem_cache_alloc_lru", "void *kmem_cache_alloc_lru(struct kmem_cache *s, "
        "struct list_lru *lru, gfp_t gfpflags)", nargs=3)
def kmem_cache_alloc_lru(ctx: Any, s: int, lru: int, flags: int) -> Any:
    return _alloc(ctx, s, flags)


@export("kmem_cache_alloc_node_noprof", "void *kmem_cache_alloc_node_noprof(struct kmem_cache *s, "
        "gfp_t gfpflags, int node)", nargs=3)
@export("kmem_cache_alloc_node", "void *kmem_cache_alloc_node(struct kmem_cache *s, "
        "gfp_t gfpflags, int node)", nargs=3)
def kmem_cache_alloc_node(ctx: Any, s: int, flags: int, node: int) -> Any:
    return _alloc(ctx, s, flags)


@export("kmem_cache_free", "void kmem_cache_free(struct kmem_cache *s, void *x)", nargs=2)
def kmem_cache_free(ctx: Any, s: int, x: int) -> None:
    if not x:
        return
    caches = ctx.kernel.subsystem(Caches).by_address
    home = next((c for c in caches.values() if x in c.objects), None)
    cache = caches.get(s)
    if home is not None and home is not cache:
        warn(ctx, f"cache_from_obj: Wrong slab cache. {cache.name if cache else '(null)'} but "
                  f"object is from {home.name}", "mm/slab.h:640", "kmem_cache_free")
    if home is not None:
        home.objects.discard(x)
    ctx.kernel.slab.free(x, _owner(ctx))


@export("kmem_cache_size", "unsigned int kmem_cache_size(struct kmem_cache *s)", nargs=1)
def kmem_cache_size(ctx: Any, s: int) -> int:
    cache = _cache(ctx, s)
    return cache.size if cache is not None else 0


@export("kmem_cache_destroy", "void kmem_cache_destroy(struct kmem_cache *s)", nargs=1)
def kmem_cache_destroy(ctx: Any, s: int) -> None:
    cache = _cache(ctx, s)
    if cache is None:
        return
    live = {obj for obj in cache.objects if ctx.kernel.slab.ksize(obj)}
    cache.objects = live
    if live:
        taint = ctx.kernel.taint_string()
        ctx.kernel.log.emit(KERN_ERR, f"BUG {cache.name} ({taint}): Objects remaining in "
                                      f"{cache.name} on __kmem_cache_shutdown()", _owner(ctx))
        warn(ctx, f"kmem_cache_destroy {cache.name}: Slab cache still has objects when called "
                  f"from {ctx.machine.symbol_name(ctx.caller)}", "mm/slab_common.c:497",
             "kmem_cache_destroy")
        return
    ctx.kernel.registrations.registry("slab_cache").remove(s)
    del ctx.kernel.subsystem(Caches).by_address[s]
    ctx.kernel.slab.free(s, None)


def _leftover(entry: Any) -> None:
    kernel, state = entry.data
    kernel.subsystem(Caches).by_address.pop(entry.address, None)
    kernel.slab.free(entry.address, None)
