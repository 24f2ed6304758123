// SPDX-License-Identifier: GPL-2.0
/*
 * concurrent: work item A waits for work item B, queued after it.  On a
 * workqueue that runs items concurrently (system_wq, or any with
 * max_active > 1) B runs while A sleeps and A sees it; on an ordered
 * workqueue B cannot start before A returns, so A's wait times out.
 */
#include <linux/completion.h>
#include <linux/errno.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>
#include <linux/workqueue.h>

static bool ordered;
module_param(ordered, bool, 0444);

static DECLARE_COMPLETION(b_done);
static struct workqueue_struct *wq;
static struct work_struct a, b;

static void work_a(struct work_struct *w)
{
	if (ordered)
		pr_info("concurrent: a waited, b done: %d\n", wait_for_completion_timeout(&b_done, 1) != 0);
	else {
		wait_for_completion(&b_done);
		pr_info("concurrent: a waited, b done: 1\n");
	}
}

static void work_b(struct work_struct *w)
{
	pr_info("concurrent: b runs\n");
	complete(&b_done);
}

static int __init concurrent_init(void)
{
	INIT_WORK(&a, work_a);
	INIT_WORK(&b, work_b);
	if (ordered) {
		wq = alloc_ordered_workqueue("concurrent", 0);
		if (!wq)
			return -ENOMEM;
		queue_work(wq, &a);
		queue_work(wq, &b);
	} else {
		schedule_work(&a);
		schedule_work(&b);
	}
	return 0;
}

static void __exit concurrent_exit(void)
{
	if (wq) {
		destroy_workqueue(wq);
	} else {
		flush_work(&a);
		flush_work(&b);
	}
}

module_init(concurrent_init);
module_exit(concurrent_exit);
MODULE_LICENSE("GPL");
