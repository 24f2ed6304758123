// SPDX-License-Identifier: GPL-2.0
/* A device class with class attribute files in /sys/class/kclassfile/, for
 * tests/test_class_files.py: abi_version (read-only, as ib_uverbs has) and
 * value (read-write).  keep_files=1 leaves the files for class_destroy to
 * take away, as Linux's does. */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/device.h>
#include <linux/sysfs.h>
#include <linux/kstrtox.h>
#include <linux/version.h>
MODULE_LICENSE("GPL");

static int keep_files;
module_param(keep_files, int, 0444);
static int value = 7;
static struct class *cls;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
#define CONST const
#else
#define CONST
#endif

static ssize_t abi_version_show(CONST struct class *c, CONST struct class_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", c == cls ? 6 : -1);
}
static CLASS_ATTR_RO(abi_version);

static ssize_t value_show(CONST struct class *c, CONST struct class_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", value);
}

static ssize_t value_store(CONST struct class *c, CONST struct class_attribute *attr, const char *buf,
			   size_t count)
{
	int err = kstrtoint(buf, 0, &value);

	return err ? err : count;
}
static CLASS_ATTR_RW(value);

static int __init classfile_init(void)
{
	int err;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	cls = class_create("kclassfile");
#else
	cls = class_create(THIS_MODULE, "kclassfile");
#endif
	if (IS_ERR(cls))
		return PTR_ERR(cls);
	err = class_create_file(cls, &class_attr_abi_version);
	if (!err)
		err = class_create_file(cls, &class_attr_value);
	pr_info("classfile: files %d, again %d\n", err, class_create_file(cls, &class_attr_value));
	return err;
}

static void __exit classfile_exit(void)
{
	if (!keep_files) {
		class_remove_file(cls, &class_attr_value);
		class_remove_file(cls, &class_attr_abi_version);
	}
	class_destroy(cls);
}
module_init(classfile_init);
module_exit(classfile_exit);
