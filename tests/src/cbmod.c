// SPDX-License-Identifier: GPL-2.0
/*
 * cbmod: registers a callback with registry; -DBUG_NO_UNREGISTER forgets to
 * unregister it in exit, so registry keeps a pointer into freed memory.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

#include "registry.h"

static int cbmod_callback(int value)
{
	pr_info("cbmod: callback(%d)\n", value);
	return value * 2;
}

static struct reg_ops ops = {
	.owner		= THIS_MODULE,
	.name		= "cbmod",
	.callback	= cbmod_callback,
};

static int __init cbmod_init(void)
{
	return reg_register(&ops);
}

static void __exit cbmod_exit(void)
{
#ifndef BUG_NO_UNREGISTER
	reg_unregister(&ops);
#endif
}

module_init(cbmod_init);
module_exit(cbmod_exit);
MODULE_LICENSE("GPL");
