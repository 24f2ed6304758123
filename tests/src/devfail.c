// SPDX-License-Identifier: GPL-2.0
/*
 * devfail: the driver core's failure paths.  Its platform driver's probe
 * takes a managed action, asks for an IRQ its device does not have, and
 * fails: the action runs as the failed probe is cleaned up, and the driver
 * core says so.  Its kobject has a ktype of the module's own, whose
 * release runs at the last kobject_put.
 */
#include <linux/device.h>
#include <linux/init.h>
#include <linux/kobject.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/printk.h>

static struct platform_device *pdev;
static struct kobject kobj;

static void devfail_action(void *data)
{
	pr_info("devfail: managed action %s\n", (const char *)data);
}

static int devfail_probe(struct platform_device *p)
{
	int irq, ret = devm_add_action(&p->dev, devfail_action, "released");

	if (ret)
		return ret;
	irq = platform_get_irq(p, 0);
	pr_info("devfail: platform_get_irq = %d\n", irq);
	return -ENOMEM;
}

static struct platform_driver devfail_driver = {
	.probe = devfail_probe,
	.driver = { .name = "devfail" },
};

static ssize_t answer_show(struct kobject *k, struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", attr->attr.name);
}

static struct kobj_attribute one = __ATTR(one, 0444, answer_show, NULL);
static struct kobj_attribute two = __ATTR(two, 0444, answer_show, NULL);
static const struct attribute *answers[] = { &one.attr, &two.attr, NULL };

static void devfail_release(struct kobject *k)
{
	pr_info("devfail: release %s\n", kobject_name(k));
}

static const struct kobj_type devfail_ktype = {
	.release = devfail_release,
	.sysfs_ops = &kobj_sysfs_ops,
};

static int __init devfail_init(void)
{
	int ret = kobject_init_and_add(&kobj, &devfail_ktype, NULL, "devfail-%d", 1);

	if (!ret)
		ret = sysfs_create_files(&kobj, answers);
	if (ret) {
		kobject_put(&kobj);
		return ret;
	}
	ret = platform_driver_register(&devfail_driver);
	if (ret)
		goto put;
	pdev = platform_device_register_simple("devfail", PLATFORM_DEVID_AUTO, NULL, 0);
	if (IS_ERR(pdev)) {
		ret = PTR_ERR(pdev);
		platform_driver_unregister(&devfail_driver);
		goto put;
	}
	pr_info("devfail: %s has driver %d\n", dev_name(&pdev->dev), pdev->dev.driver != NULL);
	return 0;
put:
	kobject_put(&kobj);
	return ret;
}

static void __exit devfail_exit(void)
{
	platform_device_unregister(pdev);
	platform_driver_unregister(&devfail_driver);
	kobject_put(&kobj);
	pr_info("devfail: exit\n");
}

module_init(devfail_init);
module_exit(devfail_exit);
MODULE_LICENSE("GPL");
