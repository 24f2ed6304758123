"""kmem_cache_create_usercopy (mm/slab_common.py), 6.1's export: a cache
with a usercopy region works as any cache, refuses what kmem_cache_create
refuses under its own name, and Debian's orangefs, whose init makes its
caches with it, loads and unloads clean."""

from __future__ import annotations

from kloaderd.embed import Problems
from realkernel import corpus, find_module, load_then_remove, run_kbuilt

USERCOPY_USER = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/slab.h>
MODULE_LICENSE("GPL");
struct op { u64 tag; char name[16]; u64 more[5]; };
static int __init ucache_init(void)
{
	struct kmem_cache *c = kmem_cache_create_usercopy("ucache_op", sizeof(struct op), 0,
		SLAB_HWCACHE_ALIGN, offsetof(struct op, name), sizeof_field(struct op, name), NULL);
	struct kmem_cache *bad = kmem_cache_create_usercopy("ucache_bad", sizeof(struct op), 0,
		0x80000000, 0, 0, NULL);
	struct op *o;

	if (!c)
		return -ENOMEM;
	o = kmem_cache_zalloc(c, GFP_KERNEL);
	pr_info("ucache: object %d aligned %d size %u bad %d\n", o != NULL,
		((unsigned long)o & 63) == 0, kmem_cache_size(c), bad == NULL);
	kmem_cache_free(c, o);
	kmem_cache_destroy(c);
	return 0;
}
static void __exit ucache_exit(void) { }
module_init(ucache_init);
module_exit(ucache_exit);
"""


def test_a_usercopy_cache_is_a_cache_and_its_failures_name_it(tmp_path):
    kernel, lines = run_kbuilt(tmp_path, "ucache", USERCOPY_USER, "6.1")
    assert lines == ["ucache: object 1 aligned 1 size 64 bad 1"]
    log = [r.text for r in kernel.log.records()]
    assert "kmem_cache_create_usercopy(ucache_bad) failed with error -22" in log
    assert not [e for e in kernel.registrations.all() if e.owner is not None]


def test_debians_orangefs_loads_and_unloads_clean():
    modules, build = corpus("6.1")
    kernel, errors = load_then_remove(build, [find_module(modules, "orangefs")])
    assert not errors
    assert not [r.text for r in kernel.log.records() if "not emulated" in r.text or "leaked" in r.text]
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
