// SPDX-License-Identifier: GPL-2.0
/* A key type, for tests/test_key_types.py: registered, refused under the
 * kernel's own name "user" and under its own name again, unregistered at
 * exit unless leak=1. */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/key-type.h>
MODULE_LICENSE("GPL");

static int leak;
module_param(leak, int, 0444);
static struct key_type kloader_test = { .name = "kloader_test" };
static struct key_type user_again = { .name = "user" };
static struct key_type mine_again = { .name = "kloader_test" };

static int __init keytype_init(void)
{
	int err = register_key_type(&kloader_test);

	pr_info("keytype: %d, user %d, again %d\n", err, register_key_type(&user_again),
		register_key_type(&mine_again));
	return err;
}

static void __exit keytype_exit(void)
{
	if (!leak)
		unregister_key_type(&kloader_test);
}
module_init(keytype_init);
module_exit(keytype_exit);
