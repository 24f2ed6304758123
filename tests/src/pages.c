// SPDX-License-Identifier: GPL-2.0
/*
 * Pages by struct page: alloc_pages and __free_pages, with the header's
 * inline conversions (page_address, virt_to_page, page_to_pfn) checked
 * against each other and against __get_free_pages, and the page's
 * reference count as get_page/put_page see it.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/errno.h>

static int __init pages_init(void)
{
	struct page *page = alloc_pages(GFP_KERNEL, 2);
	unsigned long addr;
	char *p;
	void *obj;

	if (!page)
		return -ENOMEM;
	p = page_address(page);
	p[0] = 'k';
	p[4 * PAGE_SIZE - 1] = 'l';                     /* all four pages are there */
	pr_info("pages: aligned %d, round trip %d, refcount %d\n",
		((unsigned long)p & (4 * PAGE_SIZE - 1)) == 0, virt_to_page(p) == page, page_ref_count(page));
	get_page(page);
	pr_info("pages: after get_page %d\n", page_ref_count(page));
	__free_pages(page, 2);                          /* drops the get: still allocated */
	pr_info("pages: after one free %d, data %c%c\n", page_ref_count(page), p[0], p[4 * PAGE_SIZE - 1]);
	__free_pages(page, 2);

	addr = __get_free_pages(GFP_KERNEL, 0);
	pr_info("pages: __get_free_pages's page is %d\n",
		page_address(virt_to_page((void *)addr)) == (void *)addr);
	free_pages(addr, 0);
	obj = kmalloc(100, GFP_KERNEL);
	pr_info("pages: kmalloc's page pfn %d\n",
		page_to_pfn(virt_to_page(obj)) == ((unsigned long)obj - page_offset_base) >> PAGE_SHIFT);
	kfree(obj);
	return 0;
}

static void __exit pages_exit(void)
{
}

module_init(pages_init);
module_exit(pages_exit);
MODULE_LICENSE("GPL");
