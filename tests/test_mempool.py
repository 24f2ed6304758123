"""Memory pools (kloaderd/mm/mempool.py) and shrinkers (vmscan.py) under the
Debian 6.1 profile: a pool's reserve is filled at creation through its
functions, kernel's or the module's own, used when the function fails,
refilled on free and given back on destroy; shrinkers register and go."""

from __future__ import annotations

import pytest

from realkernel import run_kbuilt

MEMPOOL_USER = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/mempool.h>
#include <linux/slab.h>
MODULE_LICENSE("GPL");
static int budget, made, freed;
static void *scarce_alloc(gfp_t gfp, void *data)
{
	if (!budget)
		return NULL;
	budget--;
	made++;
	return kmalloc((size_t)data, gfp);
}
static void scarce_free(void *element, void *data)
{
	freed++;
	kfree(element);
}
static struct kmem_cache *cache;
static int __init mempool_user_init(void)
{
	mempool_t *slab_pool, *kmalloc_pool, *scarce;
	void *a, *b, *c;

	cache = kmem_cache_create("mempool_user", 48, 0, 0, NULL);
	slab_pool = mempool_create_slab_pool(4, cache);
	kmalloc_pool = mempool_create_kmalloc_pool(2, 100);
	pr_info("mempool_user: created %d %d reserve %d %d\n", !!slab_pool, !!kmalloc_pool,
		slab_pool->curr_nr, kmalloc_pool->curr_nr);
	a = mempool_alloc(slab_pool, GFP_KERNEL);
	mempool_free(a, slab_pool);
	mempool_destroy(slab_pool);
	mempool_destroy(kmalloc_pool);

	budget = 2;
	scarce = mempool_create(3, scarce_alloc, scarce_free, (void *)32);
	pr_info("mempool_user: short %d made %d freed %d\n", !!scarce, made, freed);
	budget = 2;
	made = freed = 0;
	scarce = mempool_create(2, scarce_alloc, scarce_free, (void *)32);
	a = mempool_alloc(scarce, GFP_ATOMIC);          /* from the reserve */
	b = mempool_alloc(scarce, GFP_ATOMIC);
	c = mempool_alloc(scarce, GFP_ATOMIC);          /* nothing left, may not sleep */
	pr_info("mempool_user: %d %d %d left %d\n", !!a, !!b, !!c, scarce->curr_nr);
	mempool_free(a, scarce);
	mempool_free(b, scarce);
	pr_info("mempool_user: refilled %d freed %d\n", scarce->curr_nr, freed);
	mempool_destroy(scarce);
	pr_info("mempool_user: destroyed made %d freed %d\n", made, freed);
	return 0;
}
static void __exit mempool_user_exit(void)
{
	kmem_cache_destroy(cache);
}
module_init(mempool_user_init);
module_exit(mempool_user_exit);
"""


@pytest.mark.slow          # builds with the real kernel's kbuild
def test_pools_fill_lend_refill_and_give_back(tmp_path):
    kernel, lines = run_kbuilt(tmp_path, "mempool_user", MEMPOOL_USER)
    assert lines == ["mempool_user: created 1 1 reserve 4 2",
                     "mempool_user: short 0 made 2 freed 2",
                     "mempool_user: 1 1 0 left 0",
                     "mempool_user: refilled 2 freed 0",
                     "mempool_user: destroyed made 2 freed 2"]
    assert not any("leaked" in r.text for r in kernel.log.records())


SHRINKER_USER = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/shrinker.h>
MODULE_LICENSE("GPL");
static unsigned long count(struct shrinker *s, struct shrink_control *sc) { return 0; }
static unsigned long scan(struct shrinker *s, struct shrink_control *sc) { return SHRINK_STOP; }
static struct shrinker plain = { .count_objects = count, .scan_objects = scan, .seeks = DEFAULT_SEEKS };
static struct shrinker memcg = { .count_objects = count, .scan_objects = scan, .seeks = DEFAULT_SEEKS,
				 .flags = SHRINKER_MEMCG_AWARE };
static int __init shrinker_user_init(void)
{
	int err = register_shrinker(&plain, "shrinker_user-plain");

	err |= register_shrinker(&memcg, "shrinker_user-memcg");
	pr_info("shrinker_user: %d flags %x %x deferred %d\n", err, plain.flags, memcg.flags,
		plain.nr_deferred != NULL);
	return err;
}
static void __exit shrinker_user_exit(void)
{
	unregister_shrinker(&memcg);
	unregister_shrinker(&plain);
	unregister_shrinker(&plain);          /* a second time: ignored */
	pr_info("shrinker_user: flags %x deferred %d\n", plain.flags, plain.nr_deferred != NULL);
}
module_init(shrinker_user_init);
module_exit(shrinker_user_exit);
"""


@pytest.mark.slow          # builds with the real kernel's kbuild
def test_shrinkers_register_and_go(tmp_path):
    kernel, lines = run_kbuilt(tmp_path, "shrinker_user", SHRINKER_USER)
    assert lines == ["shrinker_user: 0 flags 1 5 deferred 1", "shrinker_user: flags 0 deferred 0"]
    assert not any("leaked" in r.text for r in kernel.log.records())
