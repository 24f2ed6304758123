/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel heap.  kmalloc and friends are inline over the exported
 * __kmalloc, as in Linux; kzalloc is kmalloc with __GFP_ZERO.
 */
#ifndef _LINUX_SLAB_H
#define _LINUX_SLAB_H

#include <linux/compiler.h>
#include <linux/gfp.h>
#include <linux/types.h>

/* SLUB's limit: MAX_ORDER + PAGE_SHIFT = 22 bits (4 MiB). */
#define KMALLOC_SHIFT_MAX	22
#define KMALLOC_MAX_SIZE	(1UL << KMALLOC_SHIFT_MAX)

/* What kmalloc(0) returns: not NULL, but faults on any access. */
#define ZERO_SIZE_PTR		((void *)16)
#define ZERO_OR_NULL_PTR(x)	((unsigned long)(x) <= (unsigned long)ZERO_SIZE_PTR)

void *__kmalloc(size_t size, gfp_t flags) __alloc_size(1) __malloc;
void *krealloc(const void *objp, size_t new_size, gfp_t flags) __alloc_size(2) __must_check;
void kfree(const void *objp);
size_t ksize(const void *objp);

/* Named object caches (mm/slab_common.c); struct kmem_cache is opaque. */
struct kmem_cache;
typedef unsigned int slab_flags_t;
#define SLAB_HWCACHE_ALIGN	((slab_flags_t)0x00002000U)
#define SLAB_PANIC		((slab_flags_t)0x00040000U)
struct kmem_cache *kmem_cache_create(const char *name, unsigned int size, unsigned int align,
				     slab_flags_t flags, void (*ctor)(void *));
/* 6.11's form, which kmem_cache_create() is a macro over there: NULL args are the defaults. */
struct kmem_cache_args {
	unsigned int align;
	unsigned int useroffset;
	unsigned int usersize;
	unsigned int freeptr_offset;
	bool use_freeptr_offset;
	void (*ctor)(void *);
};
struct kmem_cache *__kmem_cache_create_args(const char *name, unsigned int object_size,
					    struct kmem_cache_args *args, slab_flags_t flags);
void kmem_cache_destroy(struct kmem_cache *s);
void *kmem_cache_alloc(struct kmem_cache *s, gfp_t flags) __malloc;
void kmem_cache_free(struct kmem_cache *s, void *objp);
unsigned int kmem_cache_size(struct kmem_cache *s);
static inline void *kmem_cache_zalloc(struct kmem_cache *k, gfp_t flags)
{
	return kmem_cache_alloc(k, flags | __GFP_ZERO);
}

static __always_inline __alloc_size(1) void *kmalloc(size_t size, gfp_t flags)
{
	return __kmalloc(size, flags);
}

static inline __alloc_size(1) void *kzalloc(size_t size, gfp_t flags)
{
	return kmalloc(size, flags | __GFP_ZERO);
}

/* NULL, not a short allocation, when n * size overflows. */
static inline __alloc_size(1, 2) void *kmalloc_array(size_t n, size_t size, gfp_t flags)
{
	size_t bytes;

	if (unlikely(__builtin_mul_overflow(n, size, &bytes)))
		return NULL;
	return __kmalloc(bytes, flags);
}

static inline __alloc_size(1, 2) void *kcalloc(size_t n, size_t size, gfp_t flags)
{
	return kmalloc_array(n, size, flags | __GFP_ZERO);
}

static inline __alloc_size(2, 3) __must_check void *
krealloc_array(void *p, size_t new_n, size_t new_size, gfp_t flags)
{
	size_t bytes;

	if (unlikely(__builtin_mul_overflow(new_n, new_size, &bytes)))
		return NULL;
	return krealloc(p, bytes, flags);
}

#endif /* _LINUX_SLAB_H */
