// SPDX-License-Identifier: GPL-2.0
/*
 * devres: a driver that gives back managed resources before its device is
 * unbound.  Its probe takes one of each kind the devm_ removers take back —
 * managed memory, a mapping, a resource, a region, an interrupt line and
 * three actions — and a write of anything to the device's `drop` attribute
 * (/sys/devices/platform/devres.0/drop) gives them back with devm_kfree,
 * devm_iounmap, devm_release_resource, devm_release_mem_region,
 * devm_remove_action, devm_release_action and devm_free_irq.  Unbinding then releases
 * only what is left (the action "kept"); a second write asks to give back
 * what the device no longer manages, which Linux answers with a WARN_ON
 * per remover.
 */
#include <linux/device.h>
#include <linux/init.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/printk.h>
#include <linux/slab.h>

#define DEVRES_MAP	0xfed50000
#define DEVRES_REGION	0xfed52000
#define DEVRES_IRQ	7

static struct platform_device *pdev;
static struct resource res = DEFINE_RES_MEM_NAMED(0xfed51000, 0x100, "devres-resource");
static u8 *mem;
static void __iomem *map;

static void devres_action(void *data)
{
	pr_info("devres: action %s\n", (const char *)data);
}

static irqreturn_t devres_irq(int irq, void *dev_id)
{
	return IRQ_HANDLED;
}

static ssize_t drop_store(struct device *dev, struct device_attribute *attr, const char *buf, size_t count)
{
	devm_kfree(dev, mem);
	devm_iounmap(dev, map);
	devm_release_resource(dev, &res);
	devm_release_mem_region(dev, DEVRES_REGION, 0x100);
	devm_remove_action(dev, devres_action, "removed");
	devm_release_action(dev, devres_action, "released");
	devm_free_irq(dev, DEVRES_IRQ, dev);
	/* what SLUB's poisoning shows of memory devm_kfree gave back */
	pr_info("devres: dropped, memory reads %#x\n", READ_ONCE(mem[0]));
	return count;
}

static DEVICE_ATTR_WO(drop);

static int devres_probe(struct platform_device *p)
{
	struct device *dev = &p->dev;
	int ret;

	mem = devm_kmalloc(dev, 64, GFP_KERNEL);
	if (!mem)
		return -ENOMEM;
	mem[0] = 0x5a;
	map = devm_ioremap(dev, DEVRES_MAP, 0x100);
	if (!map)
		return -ENOMEM;
	ret = devm_request_resource(dev, &iomem_resource, &res);
	if (ret)
		return ret;
	if (!devm_request_mem_region(dev, DEVRES_REGION, 0x100, "devres-region"))
		return -EBUSY;
	ret = devm_add_action(dev, devres_action, "kept");
	if (!ret)
		ret = devm_add_action(dev, devres_action, "removed");
	if (!ret)
		ret = devm_add_action(dev, devres_action, "released");
	if (!ret)
		ret = devm_request_irq(dev, DEVRES_IRQ, devres_irq, 0, "devres", dev);
	if (!ret)
		ret = device_create_file(dev, &dev_attr_drop);
	if (ret)
		return ret;
	dev_info(dev, "probed\n");
	return 0;
}

static int devres_remove(struct platform_device *p)
{
	device_remove_file(&p->dev, &dev_attr_drop);
	dev_info(&p->dev, "remove\n");
	return 0;
}

static struct platform_driver devres_driver = {
	.probe = devres_probe,
	.remove = devres_remove,
	.driver = { .name = "devres" },
};

static int __init devres_init(void)
{
	int ret = platform_driver_register(&devres_driver);

	if (ret)
		return ret;
	pdev = platform_device_register_simple("devres", 0, NULL, 0);
	if (IS_ERR(pdev)) {
		platform_driver_unregister(&devres_driver);
		return PTR_ERR(pdev);
	}
	return 0;
}

static void __exit devres_exit(void)
{
	platform_device_unregister(pdev);
	platform_driver_unregister(&devres_driver);
	pr_info("devres: exit\n");
}

module_init(devres_init);
module_exit(devres_exit);
MODULE_LICENSE("GPL");
