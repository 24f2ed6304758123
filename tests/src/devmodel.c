// SPDX-License-Identifier: GPL-2.0
/*
 * devmodel: a module that shows itself through every kind of kernel file —
 * a sysfs attribute (/sys/kernel/devmodel/value, in a group), a debugfs u32
 * (/sys/kernel/debug/devmodel/counter), a class and a device node over a
 * char device (/dev/devmodel0, /sys/class/devmodel/devmodel0), and a
 * platform driver bound to a platform device (probe and remove log, probe
 * allocates with devm_kzalloc) — and takes all of it back in its exit.
 *
 * It builds with kloader's headers (kmodbuild) and with a real kernel's
 * kbuild (tests/test_layouts.py, 6.1 and 6.12), so it follows the API
 * changes between them: 6.4's class_create without an owner, 6.11's remove
 * returning void.
 *
 * Each -DBUG_LEAVE_* leaves one of them behind, as the sanitizer reports:
 *   BUG_LEAVE_KOBJECT   the sysfs directory (kobject_put forgotten)
 *   BUG_LEAVE_DEBUGFS   the debugfs directory
 *   BUG_LEAVE_DEVICE    the class device and the class
 *   BUG_LEAVE_PDEV      the platform device
 */
#include <linux/cdev.h>
#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/kobject.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/printk.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/uaccess.h>
#include <linux/version.h>

static int value = 7;
static u32 counter;
static struct kobject *kobj;
static struct dentry *dir;
static dev_t devt;
static struct cdev cdev;
static struct class *cls;
static struct device *node;
static struct platform_device *pdev;
static int probes, removes;

struct devmodel_priv {
	int id;
	char tag[16];
};

static ssize_t value_show(struct kobject *k, struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", value);
}

static ssize_t value_store(struct kobject *k, struct kobj_attribute *attr, const char *buf, size_t count)
{
	int v, ret = kstrtoint(buf, 10, &v);

	if (ret)
		return ret;
	value = v;
	counter++;
	return count;
}

static struct kobj_attribute value_attribute = __ATTR(value, 0644, value_show, value_store);
static struct attribute *devmodel_attrs[] = { &value_attribute.attr, NULL };
static const struct attribute_group devmodel_group = { .attrs = devmodel_attrs };

static ssize_t devmodel_read(struct file *f, char __user *buf, size_t len, loff_t *pos)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "value=%d\n", value);

	return simple_read_from_buffer(buf, len, pos, text, n);
}

static const struct file_operations devmodel_fops = {
	.owner = THIS_MODULE,
	.read = devmodel_read,
};

static int devmodel_probe(struct platform_device *p)
{
	struct devmodel_priv *priv = devm_kzalloc(&p->dev, sizeof(*priv), GFP_KERNEL);

	if (!priv)
		return -ENOMEM;
	priv->id = ++probes;
	strscpy(priv->tag, "bound", sizeof(priv->tag));
	platform_set_drvdata(p, priv);
	dev_info(&p->dev, "probe %d\n", priv->id);
	return 0;
}

static void devmodel_unbind(struct platform_device *p)
{
	struct devmodel_priv *priv = platform_get_drvdata(p);

	removes++;
	dev_info(&p->dev, "remove %d (%s)\n", priv->id, priv->tag);
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
static void devmodel_remove(struct platform_device *p)
{
	devmodel_unbind(p);
}
#else
static int devmodel_remove(struct platform_device *p)
{
	devmodel_unbind(p);
	return 0;
}
#endif

static struct platform_driver devmodel_driver = {
	.probe = devmodel_probe,
	.remove = devmodel_remove,
	.driver = { .name = "devmodel" },
};

static int __init devmodel_init(void)
{
	int ret;

	kobj = kobject_create_and_add("devmodel", kernel_kobj);
	if (!kobj)
		return -ENOMEM;
	ret = sysfs_create_group(kobj, &devmodel_group);
	if (ret)
		goto put_kobj;

	dir = debugfs_create_dir("devmodel", NULL);
	debugfs_create_u32("counter", 0644, dir, &counter);

	ret = alloc_chrdev_region(&devt, 0, 1, "devmodel");
	if (ret)
		goto remove_debugfs;
	cdev_init(&cdev, &devmodel_fops);
	cdev.owner = THIS_MODULE;
	ret = cdev_add(&cdev, devt, 1);
	if (ret)
		goto unregister_region;
#ifdef class_create		/* 6.1's macro, with the owner (kloader's headers too) */
	cls = class_create(THIS_MODULE, "devmodel");
#else
	cls = class_create("devmodel");
#endif
	if (IS_ERR(cls)) {
		ret = PTR_ERR(cls);
		goto del_cdev;
	}
	node = device_create(cls, NULL, devt, NULL, "devmodel%d", 0);
	if (IS_ERR(node)) {
		ret = PTR_ERR(node);
		goto destroy_class;
	}

	ret = platform_driver_register(&devmodel_driver);
	if (ret)
		goto destroy_device;
	pdev = platform_device_register_simple("devmodel", 0, NULL, 0);
	if (IS_ERR(pdev)) {
		ret = PTR_ERR(pdev);
		goto unregister_driver;
	}
	pr_info("devmodel: loaded, %d probe(s)\n", probes);
	return 0;

unregister_driver:
	platform_driver_unregister(&devmodel_driver);
destroy_device:
	device_destroy(cls, devt);
destroy_class:
	class_destroy(cls);
del_cdev:
	cdev_del(&cdev);
unregister_region:
	unregister_chrdev_region(devt, 1);
remove_debugfs:
	debugfs_remove(dir);
put_kobj:
	kobject_put(kobj);
	return ret;
}

static void __exit devmodel_exit(void)
{
#ifndef BUG_LEAVE_PDEV
	platform_device_unregister(pdev);
#endif
	platform_driver_unregister(&devmodel_driver);
#ifndef BUG_LEAVE_DEVICE
	device_destroy(cls, devt);
	class_destroy(cls);
#endif
	cdev_del(&cdev);
	unregister_chrdev_region(devt, 1);
#ifndef BUG_LEAVE_DEBUGFS
	debugfs_remove(dir);
#endif
#ifndef BUG_LEAVE_KOBJECT
	kobject_put(kobj);
#endif
	pr_info("devmodel: exit after %d probe(s), %d remove(s), value %d, counter %u\n",
		probes, removes, value, counter);
}

module_init(devmodel_init);
module_exit(devmodel_exit);
MODULE_LICENSE("GPL");
