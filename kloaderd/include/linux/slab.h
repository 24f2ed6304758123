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
