/* SPDX-License-Identifier: GPL-2.0 */
/*
 * struct page: one page's entry in the memmap (Linux 6.6's x86-64 layout,
 * 64 bytes; kloader keeps `flags` and `_refcount`).
 */
#ifndef _LINUX_MM_TYPES_H
#define _LINUX_MM_TYPES_H

#include <linux/types.h>

struct page {
	unsigned long flags;
	unsigned long __kloader_words[5];	/* lru, mapping, index, private */
	atomic_t _mapcount;
	atomic_t _refcount;
	unsigned long memcg_data;
};

_Static_assert(sizeof(struct page) == 64, "struct page is 64 bytes");

#endif /* _LINUX_MM_TYPES_H */
