// SPDX-License-Identifier: GPL-2.0
/*
 * embedded: a timer and a work item inside a kmalloc'ed struct, neither at
 * offset 0 (as drivers embed them), freed as `mode` says:
 *   0  the right way: timer_delete_sync and cancel_work_sync, then kfree;
 *   1  kfree with the timer still pending      (ODEBUG at kfree);
 *   2  kfree with the work still queued        (ODEBUG at kfree);
 *   3  the struct leaked with the timer pending (ODEBUG when the module goes).
 */
#include <linux/errno.h>
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>
#include <linux/slab.h>
#include <linux/timer.h>
#include <linux/workqueue.h>

static int mode;
module_param(mode, int, 0444);

struct gadget {
	int id;
	char name[44];
	struct timer_list timer;
	struct work_struct work;
};

static struct gadget *leaked;

static void gadget_timer(struct timer_list *t)
{
	pr_info("embedded: timer fired\n");
}

static void gadget_work(struct work_struct *w)
{
	pr_info("embedded: work ran\n");
}

static int __init embedded_init(void)
{
	struct gadget *g = kzalloc(sizeof(*g), GFP_KERNEL);

	if (!g)
		return -ENOMEM;
	timer_setup(&g->timer, gadget_timer, 0);
	INIT_WORK(&g->work, gadget_work);
	mod_timer(&g->timer, jiffies + 3600 * HZ);
	schedule_work(&g->work);		/* the kworker runs it only once init sleeps or returns */
	if (mode != 1)
		timer_delete_sync(&g->timer);
	if (mode != 2)
		cancel_work_sync(&g->work);
	if (mode == 3) {
		mod_timer(&g->timer, jiffies + 3600 * HZ);
		leaked = g;
	} else {
		kfree(g);
	}
	pr_info("embedded: mode %d, timer at offset %zu\n", mode, offsetof(struct gadget, timer));
	return 0;
}

static void __exit embedded_exit(void)
{
}

module_init(embedded_init);
module_exit(embedded_exit);
MODULE_LICENSE("GPL");
