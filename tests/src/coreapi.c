// SPDX-License-Identifier: GPL-2.0
/*
 * coreapi: the core kernel services real modules lean on, used as they use
 * them — a sysfs mount point (configfs's /sys/kernel/config), work on each
 * system workqueue, an IDR, an IDA and an XArray (each step prints its
 * results) — and taken back in its exit.
 *
 * Each -DBUG_LEAVE_* leaves one of them behind, as the sanitizer reports:
 *   BUG_LEAVE_MOUNT_POINT   the mount point
 *   BUG_LEAVE_IDS           the IDA's IDs (no ida_destroy)
 *   BUG_LEAVE_ENTRIES       a kmalloc'd XArray's entries, freed with it
 *   BUG_LEAVE_CPUHP         the dynamic CPU hotplug state and the multi-instance one's instance
 *   BUG_LEAVE_WORKER        the kthread worker (no kthread_destroy_worker)
 */
#include <linux/cpuhotplug.h>
#include <linux/errno.h>
#include <linux/hex.h>
#include <linux/idr.h>
#include <linux/init.h>
#include <linux/kobject.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/sysfs.h>
#include <linux/uuid.h>
#include <linux/workqueue.h>

static int ran;
static int online_state, multi_state;
static struct hlist_node instance;

static int cpu_up(unsigned int cpu)
{
	pr_info("coreapi: cpu %u up\n", cpu);
	return 0;
}

static int cpu_down(unsigned int cpu)
{
	pr_info("coreapi: cpu %u down\n", cpu);
	return 0;
}

static int cpu_refuses(unsigned int cpu)
{
	return -EIO;
}

static int instance_up(unsigned int cpu, struct hlist_node *node)
{
	pr_info("coreapi: instance up on cpu %u, ours %d\n", cpu, node == &instance);
	return 0;
}

static int instance_down(unsigned int cpu, struct hlist_node *node)
{
	pr_info("coreapi: instance down on cpu %u\n", cpu);
	return 0;
}

static int use_cpuhp(void)
{
	int refused, busy;

	online_state = cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "coreapi:online", cpu_up, cpu_down);
	refused = cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "coreapi:refused", cpu_refuses, NULL);
	multi_state = cpuhp_setup_state_multi(CPUHP_AP_ONLINE_DYN, "coreapi:multi", instance_up, instance_down);
	busy = cpuhp_setup_state_nocalls(multi_state, "coreapi:again", NULL, NULL);
	pr_info("coreapi: cpuhp states %d %d, refused %d, busy %d, unnamed %d\n", online_state, multi_state,
		refused, busy, __cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, NULL, false, NULL, NULL, false));
	if (online_state < 0 || multi_state < 0)
		return -EINVAL;
	return cpuhp_state_add_instance(multi_state, &instance);
}
static DEFINE_IDR(idr);
static DEFINE_IDA(ida);
static DEFINE_XARRAY_ALLOC(xa);
static int a = 1, b = 2, c = 3;

static int sum_ids(int id, void *p, void *data)
{
	*(int *)data += id * 100 + *(int *)p;
	return 0;
}

static void use_idr(void)
{
	int i1 = idr_alloc(&idr, &a, 1, 0, GFP_KERNEL);
	int i2 = idr_alloc(&idr, &b, 1, 0, GFP_KERNEL);
	int i3 = idr_alloc(&idr, NULL, 1, 0, GFP_KERNEL);	/* reserved */
	int full = idr_alloc(&idr, &c, 1, 4, GFP_KERNEL);
	int neg = idr_alloc(&idr, &c, -1, 0, GFP_KERNEL);
	int total = 0, id, cyc, cyc2, again;
	void *p;

	pr_info("coreapi: idr ids %d %d %d, full %d, neg %d\n", i1, i2, i3, full, neg);
	pr_info("coreapi: idr find %d %d %d\n", *(int *)idr_find(&idr, i2), idr_find(&idr, i3) == NULL,
		idr_find(&idr, 99) == NULL);
	idr_for_each(&idr, sum_ids, &total);
	pr_info("coreapi: idr for_each %d\n", total);
	p = idr_remove(&idr, i1);
	pr_info("coreapi: idr remove %d, again %d, empty %d\n", *(int *)p, idr_remove(&idr, i1) == NULL,
		idr_is_empty(&idr));
	again = idr_alloc(&idr, &c, 1, 0, GFP_KERNEL);
	pr_info("coreapi: idr realloc %d, replace %ld\n", again, PTR_ERR(idr_replace(&idr, &a, 42)));
	idr_for_each_entry(&idr, p, id)
		pr_info("coreapi: idr entry %d = %d\n", id, *(int *)p);
	cyc = idr_alloc_cyclic(&idr, &a, 1, 0, GFP_KERNEL);
	idr_remove(&idr, 1);
	cyc2 = idr_alloc_cyclic(&idr, &a, 1, 0, GFP_KERNEL);
	pr_info("coreapi: idr cyclic %d %d\n", cyc, cyc2);
	idr_destroy(&idr);
	pr_info("coreapi: idr destroyed, empty %d\n", idr_is_empty(&idr));
}

static void use_ida(void)
{
	int x = ida_alloc(&ida, GFP_KERNEL), y = ida_alloc_min(&ida, 10, GFP_KERNEL);
	int z = ida_alloc(&ida, GFP_KERNEL), again;

	pr_info("coreapi: ida %d %d %d, full %d\n", x, y, z, ida_alloc_range(&ida, 10, 10, GFP_KERNEL));
	ida_free(&ida, x);
	again = ida_alloc(&ida, GFP_KERNEL);
	pr_info("coreapi: ida again %d, empty %d\n", again, ida_is_empty(&ida));
	ida_free(&ida, 7);			/* never allocated: a WARNING */
}

static void use_xarray(struct xarray *heap)
{
	unsigned long index;
	void *entry;
	u32 id, id2, next = 0;
	int r1, r2;

	r1 = xa_insert(heap, 5, &a, GFP_KERNEL);
	r2 = xa_insert(heap, 5, &b, GFP_KERNEL);
	pr_info("coreapi: xa insert %d, busy %d\n", r1, r2);
	xa_store(heap, 7, xa_mk_value(70), GFP_KERNEL);
	xa_set_mark(heap, 7, XA_MARK_1);
	pr_info("coreapi: xa load %d %lu, marked %d %d\n", *(int *)xa_load(heap, 5),
		xa_to_value(xa_load(heap, 7)), xa_marked(heap, XA_MARK_1), xa_get_mark(heap, 5, XA_MARK_1));
	xa_for_each(heap, index, entry)
		pr_info("coreapi: xa entry %lu\n", index);
	xa_for_each_marked(heap, index, entry, XA_MARK_1)
		pr_info("coreapi: xa marked %lu\n", index);
	pr_info("coreapi: xa cmpxchg %d\n", xa_cmpxchg(heap, 5, &a, &c, GFP_KERNEL) == &a);
	entry = xa_erase(heap, 5);
	pr_info("coreapi: xa erase %d, empty %d\n", *(int *)entry, xa_empty(heap));
	xa_erase(heap, 7);
	pr_info("coreapi: xa erase all, empty %d, marked %d\n", xa_empty(heap), xa_marked(heap, XA_MARK_1));

	r1 = xa_alloc(&xa, &id, &a, xa_limit_32b, GFP_KERNEL);
	r2 = xa_alloc(&xa, &id2, NULL, XA_LIMIT(0, 1), GFP_KERNEL);
	pr_info("coreapi: xa alloc %d id %u, reserved %d id %u, load %d\n", r1, id, r2, id2,
		xa_load(&xa, id2) == NULL);
	pr_info("coreapi: xa alloc full %d\n", xa_alloc(&xa, &id, &b, XA_LIMIT(0, 1), GFP_KERNEL));
	r1 = xa_alloc_cyclic(&xa, &id, &b, XA_LIMIT(0, 3), &next, GFP_KERNEL);
	r2 = xa_alloc_cyclic(&xa, &id2, &b, XA_LIMIT(0, 3), &next, GFP_KERNEL);
	pr_info("coreapi: xa cyclic %d id %u, %d id %u, next %u\n", r1, id, r2, id2, next);
	xa_destroy(&xa);
	pr_info("coreapi: xa destroyed, empty %d\n", xa_empty(&xa));
}

static int compares, swaps;

static int cmp_int(const void *a, const void *b)
{
	compares++;
	return *(const int *)a - *(const int *)b;
}

static void swap_int(void *a, void *b, int size)
{
	int t = *(int *)a;

	*(int *)a = *(int *)b;
	*(int *)b = t;
	swaps++;
}

static void use_sort(void)
{
	int v[] = { 5, 3, 9, 1, 7, 3, 8, 2 };
	int w[] = { 4, 1, 3 };
	int one[] = { 42 };

	sort(v, ARRAY_SIZE(v), sizeof(int), cmp_int, NULL);
	pr_info("coreapi: sorted %d %d %d %d %d %d %d %d in %d compares\n", v[0], v[1], v[2], v[3], v[4],
		v[5], v[6], v[7], compares);
	sort(w, ARRAY_SIZE(w), sizeof(int), cmp_int, swap_int);
	compares = 0;
	sort(one, 1, sizeof(int), cmp_int, swap_int);
	pr_info("coreapi: sorted %d %d %d with %d swaps; one element, %d compares\n", w[0], w[1], w[2], swaps,
		compares);
}

static void use_uuid(void)
{
	static const char text[] = "00112233-4455-6677-8899-aabbccddeeff";
	uuid_t u;
	guid_t g;
	char hex[8];
	u8 back[3];
	char *end;
	int r1, r2, r3;

	uuid_gen(&u);
	guid_gen(&g);
	pr_info("coreapi: uuid version %d variant %d, guid version %d variant %d, null %d %d\n",
		u.b[6] >> 4, u.b[8] >> 6, g.b[7] >> 4, g.b[8] >> 6, uuid_is_null(&u), uuid_is_null(&uuid_null));
	r1 = guid_parse(text, &g);
	r2 = uuid_parse(text, &u);
	r3 = uuid_parse("00112233-4455-6677-8899-aabbccddeeg0", &u);
	pr_info("coreapi: parse %d %d %d: guid %02x%02x%02x%02x-%02x%02x, uuid %02x%02x%02x%02x, valid %d %d\n",
		r1, r2, r3, g.b[0], g.b[1], g.b[2], g.b[3], g.b[4], g.b[5], u.b[0], u.b[1], u.b[2], u.b[3],
		uuid_is_valid(text), uuid_is_valid("0011"));
	end = bin2hex(hex, "\x01\xab\xff", 3);
	*end = 0;
	r1 = hex2bin(back, "0aBc7F", 3);
	r2 = hex2bin(back, "zz", 1);
	pr_info("coreapi: hex %s (%d), back %d %02x%02x%02x, bad %d\n", hex, (int)(end - hex), r1, back[0],
		back[1], back[2], r2);
}

static struct kthread_worker *kworker;
static struct kthread_work kwork;
static int kwork_runs;

static void kwork_fn(struct kthread_work *w)
{
	kwork_runs++;
}

static int use_worker(void)
{
	bool queued, still, again, cancelled;

	kworker = kthread_create_worker(0, "coreapi-%d", 7);
	if (IS_ERR(kworker))
		return PTR_ERR(kworker);
	sched_set_fifo(kworker->task);
	kthread_init_work(&kwork, kwork_fn);
	queued = kthread_queue_work(kworker, &kwork);
	still = !list_empty(&kwork.node);
	again = kthread_queue_work(kworker, &kwork);	/* refused while still queued */
	kthread_flush_work(&kwork);
	cancelled = kthread_cancel_work_sync(&kwork);
	pr_info("coreapi: kthread work queued %d, again only if it had run %d, ran %d, cancelled %d, worker %d\n",
		queued, again != still, kwork_runs == queued + again, cancelled, kwork.worker == kworker);
	return 0;
}

static void count_work(struct work_struct *w)
{
	ran++;
}

static struct work_struct work;

static int __init coreapi_init(void)
{
	struct workqueue_struct *wqs[] = { system_wq, system_highpri_wq, system_long_wq,
		system_unbound_wq, system_freezable_wq, system_power_efficient_wq,
		system_freezable_power_efficient_wq };
	struct xarray *heap;
	int i, ret;

	INIT_WORK(&work, count_work);

	ret = sysfs_create_mount_point(kernel_kobj, "coreapi");
	pr_info("coreapi: mount point %d\n", ret);
	if (ret)
		return ret;
	pr_info("coreapi: again %d\n", sysfs_create_mount_point(kernel_kobj, "coreapi"));

	for (i = 0; i < ARRAY_SIZE(wqs); i++) {
		queue_work(wqs[i], &work);
		flush_work(&work);
	}
	pr_info("coreapi: %d works ran\n", ran);

	use_sort();
	use_uuid();
	ret = use_worker();
	if (ret)
		return ret;
	ret = use_cpuhp();
	if (ret)
		return ret;
	use_idr();
	use_ida();
	heap = kmalloc(sizeof(*heap), GFP_KERNEL);
	if (!heap)
		return -ENOMEM;
	xa_init(heap);
	use_xarray(heap);
#ifdef BUG_LEAVE_ENTRIES
	xa_store(heap, 1, &a, GFP_KERNEL);
#endif
	kfree(heap);
	return 0;
}

static void __exit coreapi_exit(void)
{
#ifndef BUG_LEAVE_MOUNT_POINT
	sysfs_remove_mount_point(kernel_kobj, "coreapi");
#endif
#ifndef BUG_LEAVE_WORKER
	kthread_destroy_worker(kworker);
#endif
#ifndef BUG_LEAVE_CPUHP
	cpuhp_state_remove_instance(multi_state, &instance);
	cpuhp_remove_multi_state(multi_state);
	cpuhp_remove_state(online_state);
#endif
#ifndef BUG_LEAVE_IDS
	ida_destroy(&ida);
#endif
	pr_info("coreapi: exit\n");
}

module_init(coreapi_init);
module_exit(coreapi_exit);
MODULE_LICENSE("GPL");
