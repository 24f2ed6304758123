// SPDX-License-Identifier: GPL-2.0
/*
 * selfref: a kthread that holds a reference on its own module for as long
 * as it runs, the pattern module_put_and_kthread_exit exists for.  The
 * thread waits for the parameter `go`, then drops the reference and ends:
 * with module_put_and_kthread_exit(0), or (-DBUG_PUT_AND_RETURN) with
 * module_put() and a return into module code a waiting removal may free.
 */
#include <linux/delay.h>
#include <linux/init.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>

static bool go;
module_param(go, bool, 0644);

static int selfref_thread(void *data)
{
	while (!READ_ONCE(go))
		msleep(5);
	pr_info("selfref: thread done\n");
#ifdef BUG_PUT_AND_RETURN
	module_put(THIS_MODULE);
	return 0;
#else
	module_put_and_kthread_exit(0);
#endif
}

static int __init selfref_init(void)
{
	struct task_struct *t;

	__module_get(THIS_MODULE);		/* the thread's reference */
	t = kthread_run(selfref_thread, NULL, "selfref");
	if (IS_ERR(t)) {
		module_put(THIS_MODULE);
		return PTR_ERR(t);
	}
	return 0;
}

static void __exit selfref_exit(void)
{
	pr_info("selfref: exit\n");
}

module_init(selfref_init);
module_exit(selfref_exit);
MODULE_LICENSE("GPL");
