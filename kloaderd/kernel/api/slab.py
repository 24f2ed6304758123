"""kmalloc and friends for module code, over the kernel's `Slab`.

Memory a module allocates is accounted to it (`ctx.module.name`), so what
it leaks is reported and reclaimed when it is freed; the core kernel's own
allocations (a call from no module) belong to None.
"""

from __future__ import annotations

from ...config import KERNEL_TEXT_BASE, MODULES_VADDR
from . import export

__GFP_ZERO = 0x100            # Linux 6.6 include/linux/gfp_types.h
STRDUP_LIMIT = 1 << 20        # longest string kstrdup reads from the guest


def _owner(ctx) -> str | None:
    return ctx.module.name if ctx.module is not None else None


def _bad_free(ctx) -> None:
    """A SLUB report taints the kernel 'B' (TAINT_BAD_PAGE), as object_err() does."""
    ctx.kernel.add_taint("B")


@export("__kmalloc_noprof", "void *__kmalloc_noprof(size_t size, gfp_t flags)", nargs=2)
@export("__kmalloc", "void *__kmalloc(size_t size, gfp_t flags)", nargs=2)
def __kmalloc(ctx, size: int, flags: int) -> int:
    return ctx.kernel.slab.alloc(size, _owner(ctx), zero=bool(flags & __GFP_ZERO))


@export("kfree", "void kfree(const void *objp)", nargs=1)
def kfree(ctx, objp: int) -> int:
    if not ctx.kernel.slab.free(objp, _owner(ctx)):
        _bad_free(ctx)
    return 0


@export("krealloc_noprof", "void *krealloc_noprof(const void *objp, size_t new_size, gfp_t flags)", nargs=3)
@export("krealloc", "void *krealloc(const void *objp, size_t new_size, gfp_t flags)", nargs=3)
def krealloc(ctx, objp: int, new_size: int, flags: int) -> int:
    slab = ctx.kernel.slab
    known = objp <= 16 or slab.ksize(objp)
    result = slab.realloc(objp, new_size, _owner(ctx), zero=bool(flags & __GFP_ZERO))
    if not known:
        _bad_free(ctx)
    return result


@export("kmemdup_noprof", "void *kmemdup_noprof(const void *src, size_t len, gfp_t gfp)", nargs=3)
@export("kmemdup", "void *kmemdup(const void *src, size_t len, gfp_t gfp)", nargs=3)
def kmemdup(ctx, src: int, length: int, gfp: int) -> int:
    data = ctx.mem.read(src, length)            # fault before allocating: nothing leaks
    addr = ctx.kernel.slab.alloc(length, _owner(ctx))
    if addr and length:
        ctx.mem.write(addr, data)
    return addr


def _dup_cstr(ctx, s: int, limit: int) -> int:
    """At most `limit` bytes of the string at `s`, NUL-terminated, in a new allocation."""
    if not s:
        return 0
    data = ctx.mem.read_cstr(s, limit) + b"\0"
    addr = ctx.kernel.slab.alloc(len(data), _owner(ctx))
    if addr:
        ctx.mem.write(addr, data)
    return addr


@export("kstrdup", "char *kstrdup(const char *s, gfp_t gfp)", nargs=2)
def kstrdup(ctx, s: int, gfp: int) -> int:
    return _dup_cstr(ctx, s, STRDUP_LIMIT)


def is_kernel_rodata(ctx, addr: int) -> bool:
    """The core kernel's read-only data: the image's objects without write
    permission (a module's .rodata is never the kernel's)."""
    return KERNEL_TEXT_BASE <= addr < MODULES_VADDR and ctx.mem.perms(addr) == "r--"


@export("kstrdup_const", "const char *kstrdup_const(const char *s, gfp_t gfp)", nargs=2)
def kstrdup_const(ctx, s: int, gfp: int) -> int:
    """The kernel's own constant strings are handed back; any other is kstrdup()'d."""
    return s if is_kernel_rodata(ctx, s) else kstrdup(ctx, s, gfp)


@export("kfree_const", "void kfree_const(const void *x)", nargs=1)
def kfree_const(ctx, x: int) -> int:
    """kstrdup_const()'s pair: kfree() but of the kernel's constant strings."""
    return 0 if is_kernel_rodata(ctx, x) else kfree(ctx, x)


@export("kstrndup", "char *kstrndup(const char *s, size_t max, gfp_t gfp)", nargs=3)
def kstrndup(ctx, s: int, max_len: int, gfp: int) -> int:
    return _dup_cstr(ctx, s, min(max_len, STRDUP_LIMIT))


@export("ksize", "size_t ksize(const void *objp)", nargs=1)
def ksize(ctx, objp: int) -> int:
    return ctx.kernel.slab.ksize(objp)


# --- what Linux 6.1's inline kmalloc() calls (include/linux/slab.h) -----------
# A constant size picks its kmalloc cache at compile time (`kmalloc_caches`)
# and passes it with the size; the size alone decides here, so the cache
# argument is only carried.  NUMA node hints mean nothing on one node.
# 6.10 renamed the allocators `*_noprof` (memory allocation profiling wraps
# them in macros): the same functions, the same code.  Those that take a
# size may take `kmem_buckets *b` after it (DECL_BUCKET_PARAMS, with
# CONFIG_SLAB_BUCKETS), which only picks the caches, as the cache argument does.

def _kmalloc(ctx, size: int, flags: int) -> int:
    return ctx.kernel.slab.alloc(size, _owner(ctx), zero=bool(flags & __GFP_ZERO))


@export("__kmalloc_cache_noprof", "void *__kmalloc_cache_noprof(struct kmem_cache *s, gfp_t flags, size_t size)",
        nargs=3)
@export("kmalloc_trace", "void *kmalloc_trace(struct kmem_cache *s, gfp_t flags, size_t size)",
        nargs=3)
def kmalloc_trace(ctx, s: int, flags: int, size: int) -> int:
    return _kmalloc(ctx, size, flags)


@export("__kmalloc_cache_node_noprof", "void *__kmalloc_cache_node_noprof(struct kmem_cache *s, gfp_t gfpflags, "
        "int node, size_t size)", nargs=4)
@export("kmalloc_node_trace", "void *kmalloc_node_trace(struct kmem_cache *s, gfp_t gfpflags, "
        "int node, size_t size)", nargs=4)
def kmalloc_node_trace(ctx, s: int, flags: int, node: int, size: int) -> int:
    return _kmalloc(ctx, size, flags)


@export("__kmalloc_node", "void *__kmalloc_node(size_t size, gfp_t flags, int node)", nargs=3)
def __kmalloc_node(ctx, size: int, flags: int, node: int) -> int:
    return _kmalloc(ctx, size, flags)


@export("__kmalloc_large_noprof", "void *__kmalloc_large_noprof(size_t size, gfp_t flags)", nargs=2)
@export("kmalloc_large", "void *kmalloc_large(size_t size, gfp_t flags)", nargs=2)
def kmalloc_large(ctx, size: int, flags: int) -> int:
    return _kmalloc(ctx, size, flags)


@export("__kmalloc_large_node_noprof", "void *__kmalloc_large_node_noprof(size_t size, gfp_t flags, int node)",
        nargs=3)
@export("kmalloc_large_node", "void *kmalloc_large_node(size_t size, gfp_t flags, int node)",
        nargs=3)
def kmalloc_large_node(ctx, size: int, flags: int, node: int) -> int:
    return _kmalloc(ctx, size, flags)


def _after_buckets(ctx, b: int, flags: int) -> int:
    """The gfp flags of a DECL_BUCKET_PARAMS call: after `b` in a kernel
    with CONFIG_SLAB_BUCKETS, else where `b` is."""
    profile = ctx.kernel.profile
    return flags if profile is not None and profile.enabled("SLAB_BUCKETS") else b


@export("__kmalloc_node_noprof", "void *__kmalloc_node_noprof(size_t size, kmem_buckets *b, gfp_t flags, "
        "int node)", nargs=4)
def __kmalloc_node_noprof(ctx, size: int, b: int, flags: int, node: int) -> int:
    return _kmalloc(ctx, size, _after_buckets(ctx, b, flags))


@export("__kvmalloc_node_noprof", "void *__kvmalloc_node_noprof(size_t size, kmem_buckets *b, gfp_t flags, "
        "int node)", nargs=4)
def __kvmalloc_node_noprof(ctx, size: int, b: int, flags: int, node: int) -> int:
    """As kvmalloc_node: no vmalloc fallback."""
    return _kmalloc(ctx, size, _after_buckets(ctx, b, flags))


@export("kvmalloc_node", "void *kvmalloc_node(size_t size, gfp_t flags, int node)", nargs=3)
def kvmalloc_node(ctx, size: int, flags: int, node: int) -> int:
    """Unlike Linux, no vmalloc fallback: beyond KMALLOC_MAX_SIZE it is NULL."""
    return _kmalloc(ctx, size, flags)


@export("kvfree", "void kvfree(const void *addr)", nargs=1)
def kvfree(ctx, addr: int) -> int:
    """vfree() for what vmalloc handed out (is_vmalloc_addr), else kfree()."""
    from ...mm.vmalloc import vfree_area
    if addr and vfree_area(ctx, addr):
        return 0
    return kfree(ctx, addr)


@export("kfree_sensitive", "void kfree_sensitive(const void *p)", nargs=1)
def kfree_sensitive(ctx, p: int) -> int:
    """memzero_explicit() over the whole object (ksize), then kfree()."""
    size = ctx.kernel.slab.ksize(p) if p > 16 else 0
    if size:
        ctx.mem.write(p, bytes(size))
    return kfree(ctx, p)
