// SPDX-License-Identifier: GPL-2.0
/*
 * fifo_user: a client of the fifo sample driver.  On load it pushes
 * 1..values (stopping when the FIFO is full); on unload it pops what is left
 * and prints the sum, so a test can check what went through.
 */
#include <linux/errno.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>

#include "fifo.h"

static int values = 3;
module_param(values, int, 0444);
MODULE_PARM_DESC(values, "how many values to push on load");

static int __init fifo_user_init(void)
{
	int i, queued = 0;

	for (i = 1; i <= values; i++) {
		if (fifo_push(i) == -ENOSPC)
			break;
		queued++;
	}
	pr_info("fifo_user: queued %d of %d\n", queued, values);
	return 0;
}

static void __exit fifo_user_exit(void)
{
	int value, sum = 0;

	while (fifo_pop(&value) == 0)
		sum += value;
	pr_info("fifo_user: drained, sum %d\n", sum);
}

module_init(fifo_user_init);
module_exit(fifo_user_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Pushes to and drains the fifo sample driver");
