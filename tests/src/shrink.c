// SPDX-License-Identifier: GPL-2.0
/* A shrinker over a pretend cache of 300 objects, for tests/test_shrinkers.py:
 * registered as each release registers one (6.1: a static struct shrinker
 * and register_shrinker; 6.7+: shrinker_alloc and shrinker_register), each
 * scan logged.  leak=1 leaves it registered when the module goes. */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/shrinker.h>
#include <linux/version.h>
MODULE_LICENSE("GPL");

static int leak;
module_param(leak, int, 0444);
static unsigned long objects = 300;

static unsigned long shrink_count(struct shrinker *s, struct shrink_control *sc)
{
	return objects ?: SHRINK_EMPTY;
}

static unsigned long shrink_scan(struct shrinker *s, struct shrink_control *sc)
{
	unsigned long n = min(sc->nr_to_scan, objects);

	pr_info("shrink: scan %lu of %lu\n", sc->nr_to_scan, objects);
	if (!n)
		return SHRINK_STOP;
	objects -= n;
	return n;
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
static struct shrinker *shrinker;

static int __init shrink_init(void)
{
	shrinker = shrinker_alloc(0, "shrink-%s", "test");
	if (!shrinker)
		return -ENOMEM;
	shrinker->count_objects = shrink_count;
	shrinker->scan_objects = shrink_scan;
	shrinker->batch = 100;
	shrinker_register(shrinker);
	return 0;
}

static void __exit shrink_exit(void)
{
	if (!leak)
		shrinker_free(shrinker);
}
#else
static struct shrinker shrinker = {
	.count_objects = shrink_count,
	.scan_objects = shrink_scan,
	.seeks = DEFAULT_SEEKS,
	.batch = 100,
};

static int __init shrink_init(void)
{
	return register_shrinker(&shrinker, "shrink-%s", "test");
}

static void __exit shrink_exit(void)
{
	if (!leak)
		unregister_shrinker(&shrinker);
}
#endif
module_init(shrink_init);
module_exit(shrink_exit);
