// SPDX-License-Identifier: GPL-2.0
/*
 * deferred: a module that hands work to the kernel to call back later — a
 * timer (softirq), a tasklet scheduled from it, work and delayed work
 * (kworker), and a kthread — and takes all of it back in its exit.
 *
 * Each -DBUG_* leaves one of them behind, the mistakes the sanitizer reports:
 *   BUG_LEAVE_TIMER   the timer is still pending when the module goes
 *   BUG_LEAVE_WORK    exit queues a last work item and does not flush it
 *   BUG_LEAVE_DWORK   the delayed work's timer is still pending
 *   BUG_LEAVE_THREAD  the kthread is never stopped
 * sleep_in_timer=1 sleeps in the timer callback: "scheduling while atomic".
 * late=1 re-arms the timer for a jiffy already past, as if the softirq ran
 * late on a busy host: it fires again at once.
 */
#include <linux/errno.h>
#include <linux/delay.h>
#include <linux/init.h>
#include <linux/interrupt.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>
#include <linux/timer.h>
#include <linux/workqueue.h>

static int ticks = 3;
module_param(ticks, int, 0444);
static bool sleep_in_timer;
module_param(sleep_in_timer, bool, 0444);
static bool late;
module_param(late, bool, 0444);

static struct timer_list timer;
static struct tasklet_struct tasklet;
static struct work_struct work, last_work;
static struct delayed_work dwork;
static struct task_struct *thread;
static int fired, tasklet_runs;

static void deferred_tasklet(struct tasklet_struct *t)
{
	/* The FAQ: try_module_get from a softirq is safe. */
	if (try_module_get(THIS_MODULE)) {
		tasklet_runs++;
		pr_info("deferred: tasklet %d, refcount %d\n", tasklet_runs, module_refcount(THIS_MODULE));
		module_put(THIS_MODULE);
	}
}

static void deferred_timer(struct timer_list *t)
{
	fired++;
	pr_info("deferred: timer %d, pending %d\n", fired, timer_pending(t));
	if (sleep_in_timer)
		msleep(1);
	tasklet_schedule(&tasklet);
	if (fired < ticks)
		mod_timer(t, late ? jiffies - 1 : jiffies + 1);
}

static void deferred_work(struct work_struct *w)
{
	msleep(1);			/* process context: sleeping is fine */
	pr_info("deferred: work ran, pending %d\n", work_pending(w));
}

static void deferred_dwork(struct work_struct *w)
{
	pr_info("deferred: delayed work ran\n");
}

static int deferred_thread(void *data)
{
	pr_info("deferred: thread %s started\n", (const char *)data);
	while (!kthread_should_stop())
		schedule_timeout(HZ);
	pr_info("deferred: thread stopping\n");
	return 42;
}

static int __init deferred_init(void)
{
	timer_setup(&timer, deferred_timer, 0);
	tasklet_setup(&tasklet, deferred_tasklet);
	INIT_WORK(&work, deferred_work);
	INIT_WORK(&last_work, deferred_work);
	INIT_DELAYED_WORK(&dwork, deferred_dwork);
	thread = kthread_run(deferred_thread, "alpha", "deferred/%d", 0);
	if (IS_ERR(thread))
		return PTR_ERR(thread);
	mod_timer(&timer, jiffies + 1);
	schedule_work(&work);
#ifdef BUG_LEAVE_DWORK
	schedule_delayed_work(&dwork, 3600 * HZ);	/* still waiting when the module goes */
#else
	schedule_delayed_work(&dwork, 1);
#endif
	return 0;
}

static void __exit deferred_exit(void)
{
#ifndef BUG_LEAVE_THREAD
	pr_info("deferred: thread returned %d\n", kthread_stop(thread));
#endif
#ifndef BUG_LEAVE_TIMER
	timer_delete_sync(&timer);
#endif
	tasklet_kill(&tasklet);
	cancel_work_sync(&work);
#ifndef BUG_LEAVE_DWORK
	cancel_delayed_work_sync(&dwork);
#endif
	schedule_work(&last_work);
#ifndef BUG_LEAVE_WORK
	flush_work(&last_work);
#endif
	pr_info("deferred: exit, timer fired %d times\n", fired);
}

module_init(deferred_init);
module_exit(deferred_exit);
MODULE_LICENSE("GPL");
