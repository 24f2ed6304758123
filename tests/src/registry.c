// SPDX-License-Identifier: GPL-2.0
/*
 * registry: keeps a list of callbacks other modules register, and calls
 * them all on reg_fire().  As the FAQ's Golden Rule requires, it takes a
 * reference on each callback's owner around the call (and skips an owner
 * that is going); -DBUG_NO_GET calls through the pointer without one.
 */
#include <linux/errno.h>
#include <linux/export.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/printk.h>

#include "registry.h"

static struct reg_ops *head;
static DEFINE_MUTEX(lock);

int reg_register(struct reg_ops *ops)
{
	mutex_lock(&lock);
	ops->next = head;
	head = ops;
	mutex_unlock(&lock);
	return 0;
}
EXPORT_SYMBOL(reg_register);

void reg_unregister(struct reg_ops *ops)
{
	struct reg_ops **p;

	mutex_lock(&lock);
	for (p = &head; *p; p = &(*p)->next) {
		if (*p == ops) {
			*p = ops->next;
			break;
		}
	}
	mutex_unlock(&lock);
}
EXPORT_SYMBOL(reg_unregister);

int reg_fire(int value)
{
	struct reg_ops *ops;
	int sum = 0;

	mutex_lock(&lock);
	for (ops = head; ops; ops = ops->next) {
#ifndef BUG_NO_GET
		if (!try_module_get(ops->owner))
			continue;
#endif
		sum += ops->callback(value);
#ifndef BUG_NO_GET
		module_put(ops->owner);
#endif
	}
	mutex_unlock(&lock);
	return sum;
}
EXPORT_SYMBOL(reg_fire);

static int __init registry_init(void)
{
	return 0;
}

static void __exit registry_exit(void)
{
}

module_init(registry_init);
module_exit(registry_exit);
MODULE_LICENSE("GPL");
