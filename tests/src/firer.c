// SPDX-License-Identifier: GPL-2.0
/* firer: fires registry's callbacks once from its init (process context). */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

#include "registry.h"

static int __init firer_init(void)
{
	pr_info("firer: reg_fire(21) = %d\n", reg_fire(21));
	return 0;
}

static void __exit firer_exit(void)
{
}

module_init(firer_init);
module_exit(firer_exit);
MODULE_LICENSE("GPL");
