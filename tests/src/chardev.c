// SPDX-License-Identifier: GPL-2.0
/*
 * chardev: character devices the old way and the new: register_chrdev
 * (major=), or alloc_chrdev_region + cdev_add (default).  Reads return the
 * device's minor as text; writes are counted.  -DCHARDEV_BUG_LEAVE_CDEV
 * forgets cdev_del and the region on exit, the leftover the registry reports.
 */
#include <linux/cdev.h>
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>
#include <linux/sprintf.h>
#include <linux/uaccess.h>

static int major = -1;
module_param(major, int, 0444);
static unsigned int writes;
module_param(writes, uint, 0444);

static dev_t base;
static struct cdev cdev;

static ssize_t cd_read(struct file *file, char __user *buf, size_t count, loff_t *ppos)
{
	char text[16];
	int len = snprintf(text, sizeof(text), "%u\n", iminor(file_inode(file)));

	return simple_read_from_buffer(buf, count, ppos, text, len);
}

static ssize_t cd_write(struct file *file, const char __user *buf, size_t count, loff_t *ppos)
{
	char c;

	if (count && copy_from_user(&c, buf, 1))
		return -EFAULT;
	writes++;
	return count;
}

static const struct file_operations cd_fops = {
	.owner	= THIS_MODULE,
	.read	= cd_read,
	.write	= cd_write,
};

static int __init cd_init(void)
{
	int err;

	if (major >= 0) {
		err = register_chrdev(major, "chardev", &cd_fops);
		if (err < 0)
			return err;
		if (major == 0)
			major = err;
		pr_info("chardev: major %d\n", major);
		return 0;
	}
	err = alloc_chrdev_region(&base, 0, 2, "chardev");
	if (err)
		return err;
	cdev_init(&cdev, &cd_fops);
	cdev.owner = THIS_MODULE;
	err = cdev_add(&cdev, base, 2);
	if (err) {
		unregister_chrdev_region(base, 2);
		return err;
	}
	pr_info("chardev: region %u:%u\n", MAJOR(base), MINOR(base));
	return 0;
}

static void __exit cd_exit(void)
{
	if (major >= 0) {
		unregister_chrdev(major, "chardev");
		return;
	}
#ifndef CHARDEV_BUG_LEAVE_CDEV
	cdev_del(&cdev);
	unregister_chrdev_region(base, 2);
#endif
}

module_init(cd_init);
module_exit(cd_exit);
MODULE_LICENSE("GPL");
