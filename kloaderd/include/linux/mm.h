/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pages by struct page (Linux 6.6's x86-64 inlines): the memmap starts at
 * vmemmap_base, the direct map at page_offset_base, so a page's struct
 * page and its address convert both ways without a call.
 */
#ifndef _LINUX_MM_H
#define _LINUX_MM_H

#include <linux/atomic.h>
#include <linux/gfp.h>
#include <linux/mm_types.h>

#define PAGE_SHIFT	12
#ifndef PAGE_SIZE
#define PAGE_SIZE	(1UL << PAGE_SHIFT)
#endif

extern unsigned long page_offset_base;
extern unsigned long vmemmap_base;
extern unsigned long phys_base;

#define vmemmap			((struct page *)vmemmap_base)
#define __pa(x)			((unsigned long)(x) - page_offset_base)
#define __va(x)			((void *)((unsigned long)(x) + page_offset_base))
#define page_to_pfn(page)	((unsigned long)((page) - vmemmap))
#define pfn_to_page(pfn)	(vmemmap + (pfn))
#define virt_to_page(kaddr)	pfn_to_page(__pa(kaddr) >> PAGE_SHIFT)
#define page_address(page)	__va(page_to_pfn(page) << PAGE_SHIFT)

static inline int page_ref_count(const struct page *page)
{
	return atomic_read(&page->_refcount);
}

static inline void get_page(struct page *page)
{
	atomic_inc(&((struct page *)page)->_refcount);
}

struct page *alloc_pages(gfp_t gfp, unsigned int order);
unsigned long __get_free_pages(gfp_t gfp_mask, unsigned int order);
void free_pages(unsigned long addr, unsigned int order);
void __free_pages(struct page *page, unsigned int order);
#define alloc_page(gfp)		alloc_pages(gfp, 0)
#define __free_page(page)	__free_pages((page), 0)

static inline void put_page(struct page *page)
{
	__free_pages(page, 0);
}

#endif /* _LINUX_MM_H */
