// SPDX-License-Identifier: GPL-2.0
/*
 * irqmod: a driver of an interrupt line.  Its hardirq handler counts the
 * interrupt, schedules a tasklet and wakes its threaded handler, which
 * sleeps (process context: fine) before it logs; the exit frees the line.
 *
 * sleep_in_handler=1 sleeps in the hardirq handler: "scheduling while atomic".
 * -DBUG_LEAVE_IRQ leaves the line requested when the module goes.
 */
#include <linux/delay.h>
#include <linux/init.h>
#include <linux/interrupt.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>

static int irq = 5;
module_param(irq, int, 0444);
static bool sleep_in_handler;
module_param(sleep_in_handler, bool, 0444);
static unsigned long flags;
module_param(flags, ulong, 0444);
static bool thread_only;		/* handler NULL: needs IRQF_ONESHOT */
module_param(thread_only, bool, 0444);
static bool free_other;			/* free_irq of a line never requested */
module_param(free_other, bool, 0444);
static bool extra_enable;		/* enable_irq without a disable */
module_param(extra_enable, bool, 0444);

static struct tasklet_struct tasklet;
static int hardirqs, threads, tasklets;
static int cookie = 42;

static void irqmod_tasklet(struct tasklet_struct *t)
{
	tasklets++;
	pr_info("irqmod: tasklet %d\n", tasklets);
}

static irqreturn_t irqmod_handler(int line, void *dev)
{
	hardirqs++;
	pr_info("irqmod: hardirq %d on line %d, cookie %d\n", hardirqs, line, *(int *)dev);
	if (sleep_in_handler)
		msleep(1);
	tasklet_schedule(&tasklet);
	return IRQ_WAKE_THREAD;
}

static irqreturn_t irqmod_thread(int line, void *dev)
{
	msleep(1);			/* its irq thread: process context, sleeping is fine */
	threads++;
	pr_info("irqmod: thread %d on line %d\n", threads, line);
	return IRQ_HANDLED;
}

static int __init irqmod_init(void)
{
	int ret;

	tasklet_setup(&tasklet, irqmod_tasklet);
	if (free_other)
		free_irq(irq + 1, &cookie);
	ret = request_threaded_irq(irq, thread_only ? NULL : irqmod_handler, irqmod_thread, flags,
				   "irqmod", &cookie);
	pr_info("irqmod: request_threaded_irq(%d) = %d\n", irq, ret);
	if (!ret && extra_enable)
		enable_irq(irq);
	return ret;
}

static void __exit irqmod_exit(void)
{
#ifndef BUG_LEAVE_IRQ
	const char *name = free_irq(irq, &cookie);

	pr_info("irqmod: freed %s\n", name);
#endif
	tasklet_kill(&tasklet);
	pr_info("irqmod: exit after %d hardirqs, %d threads, %d tasklets\n", hardirqs, threads, tasklets);
}

module_init(irqmod_init);
module_exit(irqmod_exit);
MODULE_LICENSE("GPL");
