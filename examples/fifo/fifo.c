// SPDX-License-Identifier: GPL-2.0
/*
 * fifo: the sample driver of kloader's example suite.  A bounded queue of
 * ints that other modules push to and pop from, sized by a load-time
 * parameter, guarded by a mutex, its storage on the kernel heap.
 *
 * Built with -DFIFO_BUG_LEAK it "forgets" to free that storage on exit, so
 * the suite can show a leak being caught.
 */
#include <linux/errno.h>
#include <linux/export.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/printk.h>
#include <linux/slab.h>

#include "fifo.h"

static unsigned int depth = 4;
module_param(depth, uint, 0444);
MODULE_PARM_DESC(depth, "how many values the FIFO holds (1-1024)");

static bool verbose;
module_param(verbose, bool, 0644);
MODULE_PARM_DESC(verbose, "log every push and pop");

static int *slots;
static unsigned int head, count;
static unsigned long pushed, popped;
static DEFINE_MUTEX(fifo_lock);

int fifo_push(int value)
{
	int ret = 0;

	mutex_lock(&fifo_lock);
	if (count == depth) {
		ret = -ENOSPC;
	} else {
		slots[(head + count) % depth] = value;
		count++;
		pushed++;
		if (verbose)
			pr_info("fifo: push %d\n", value);
	}
	mutex_unlock(&fifo_lock);
	return ret;
}
EXPORT_SYMBOL_GPL(fifo_push);

int fifo_pop(int *value)
{
	int ret = 0;

	mutex_lock(&fifo_lock);
	if (!count) {
		ret = -EAGAIN;
	} else {
		*value = slots[head];
		head = (head + 1) % depth;
		count--;
		popped++;
		if (verbose)
			pr_info("fifo: pop %d\n", *value);
	}
	mutex_unlock(&fifo_lock);
	return ret;
}
EXPORT_SYMBOL_GPL(fifo_pop);

static int __init fifo_init(void)
{
	if (depth < 1 || depth > 1024) {
		pr_err("fifo: depth %u out of range 1-1024\n", depth);
		return -EINVAL;
	}
	slots = kcalloc(depth, sizeof(*slots), GFP_KERNEL);
	if (!slots)
		return -ENOMEM;
	pr_info("fifo: ready, depth %u\n", depth);
	return 0;
}

static void __exit fifo_exit(void)
{
#ifndef FIFO_BUG_LEAK
	kfree(slots);
#endif
	pr_info("fifo: %lu pushed, %lu popped, %u left\n", pushed, popped, count);
}

module_init(fifo_init);
module_exit(fifo_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kloader's sample driver: a bounded FIFO of ints");
MODULE_VERSION("1.0");
