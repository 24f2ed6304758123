// SPDX-License-Identifier: GPL-2.0
/*
 * coreapi: the core kernel services real modules lean on, used as they use
 * them — a sysfs mount point (configfs's /sys/kernel/config), work on each
 * system workqueue — and taken back in its exit.
 *
 * Each -DBUG_LEAVE_* leaves one of them behind, as the sanitizer reports:
 *   BUG_LEAVE_MOUNT_POINT   the mount point
 */
#include <linux/init.h>
#include <linux/kobject.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/sysfs.h>
#include <linux/workqueue.h>

static int ran;

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
	return 0;
}

static void __exit coreapi_exit(void)
{
#ifndef BUG_LEAVE_MOUNT_POINT
	sysfs_remove_mount_point(kernel_kobj, "coreapi");
#endif
	pr_info("coreapi: exit\n");
}

module_init(coreapi_init);
module_exit(coreapi_exit);
MODULE_LICENSE("GPL");
