// SPDX-License-Identifier: GPL-2.0
/*
 * hwmod: a driver of hardware kloader's machine does not have.  It asks for
 * I/O ports and a memory range (request_region, request_mem_region), maps
 * and reads the range (ioremap: nothing answers, all ones), reads ports
 * (inb/inw/inl: all ones), asks for GPIOs, and binds a platform driver to
 * its own platform device, whose probe takes managed resources
 * (devm_platform_ioremap_resource, devm_request_region, devm_gpiod_get*).
 * Every answer is logged as "hwmod: WHAT = RESULT"; exit gives back what
 * init took.
 *
 * -DBUG_LEAVE_REGION forgets release_region and iounmap in exit.
 * bad_release=1 releases a region nobody holds.
 */
#include <linux/err.h>
#include <linux/gpio.h>
#include <linux/gpio/consumer.h>
#include <linux/init.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/platform_device.h>
#include <linux/printk.h>

static unsigned long io_base = 0x300;
module_param(io_base, ulong, 0444);
static unsigned long mem_base = 0xfed40000;
module_param(mem_base, ulong, 0444);
static int gpio = 17;
module_param(gpio, int, 0444);
static bool bad_release;
module_param(bad_release, bool, 0444);

static struct resource *ports, *mmio;
static void __iomem *regs;
static struct platform_device *pdev;

static const char *said(const void *p)
{
	return p ? "ok" : "NULL";
}

static int hwmod_probe(struct platform_device *dev)
{
	void __iomem *base;
	struct gpio_desc *reset;

	base = devm_platform_ioremap_resource(dev, 0);
	if (IS_ERR(base)) {
		pr_info("hwmod: probe devm_platform_ioremap_resource = %ld\n", PTR_ERR(base));
		return PTR_ERR(base);
	}
	pr_info("hwmod: probe readl = 0x%08x\n", readl(base));
	pr_info("hwmod: probe devm_request_region = %s\n",
		said(devm_request_region(&dev->dev, io_base + 0x40, 8, "hwmod-dev")));
	reset = devm_gpiod_get(&dev->dev, "reset", GPIOD_OUT_LOW);
	pr_info("hwmod: probe devm_gpiod_get = %ld\n", IS_ERR(reset) ? PTR_ERR(reset) : 0L);
	reset = devm_gpiod_get_optional(&dev->dev, "reset", GPIOD_OUT_LOW);
	pr_info("hwmod: probe devm_gpiod_get_optional = %s\n", IS_ERR(reset) ? "error" : said(reset));
	gpiod_set_value(reset, 1);		/* an absent optional GPIO: nothing */
	return 0;
}

static int hwmod_remove(struct platform_device *dev)
{
	pr_info("hwmod: remove\n");
	return 0;
}

static struct platform_driver hwmod_driver = {
	.probe = hwmod_probe,
	.remove = hwmod_remove,
	.driver = { .name = "hwmod" },
};

static int __init hwmod_init(void)
{
	struct resource res[] = { DEFINE_RES_MEM(0, 0x100) };
	struct gpio_desc *desc;
	void __iomem *ram;
	u32 copy[4] = { 0 };
	int ret;

	ports = request_region(io_base, 32, "hwmod");
	pr_info("hwmod: request_region = %s\n", said(ports));
	if (!ports)
		return -EBUSY;
	pr_info("hwmod: request_region again = %s\n", said(request_region(io_base + 16, 4, "hwmod-again")));
	pr_info("hwmod: request_region keyboard = %s\n", said(request_region(0x60, 1, "hwmod-kbd")));
	pr_info("hwmod: inb = 0x%02x inw = 0x%04x inl = 0x%08x\n", inb(io_base), inw(io_base), inl(io_base));
	outb(0x5a, io_base);

	mmio = request_mem_region(mem_base, 0x1000, "hwmod-mmio");
	pr_info("hwmod: request_mem_region = %s\n", said(mmio));
	regs = ioremap(mem_base, 0x1000);
	pr_info("hwmod: ioremap = %s\n", said(regs));
	if (regs) {
		writel(0x12345678, regs + 4);
		pr_info("hwmod: readl = 0x%08x readb = 0x%02x readq = 0x%016llx\n",
			readl(regs + 4), readb(regs), (unsigned long long)readq(regs + 8));
		pr_info("hwmod: ioread32 = 0x%08x\n", ioread32(regs + 12));
		memset_io(regs, 0, 16);
		memcpy_fromio(copy, regs, sizeof(copy));
		pr_info("hwmod: memcpy_fromio = 0x%08x 0x%08x\n", copy[0], copy[3]);
	}
	ram = ioremap(0x1000000, 0x1000);	/* the kernel's own RAM */
	pr_info("hwmod: ioremap ram = %s\n", said(ram));

	ret = gpio_request(gpio, "hwmod");
	pr_info("hwmod: gpio_request = %d\n", ret);
	if (!ret) {
		pr_info("hwmod: gpio_get_value = %d\n", gpio_get_value(gpio));
		gpio_free(gpio);
	}
	desc = gpiod_get(NULL, "reset", GPIOD_OUT_LOW);
	pr_info("hwmod: gpiod_get = %ld\n", IS_ERR(desc) ? PTR_ERR(desc) : 0L);
	desc = gpiod_get_optional(NULL, "reset", GPIOD_OUT_LOW);
	pr_info("hwmod: gpiod_get_optional = %s\n", IS_ERR(desc) ? "error" : said(desc));

	ret = platform_driver_register(&hwmod_driver);
	if (ret)
		return ret;
	res[0].start = mem_base + 0x1000;
	res[0].end = mem_base + 0x10ff;
	pdev = platform_device_register_simple("hwmod", 0, res, 1);
	pr_info("hwmod: platform device = %ld\n", IS_ERR(pdev) ? PTR_ERR(pdev) : 0L);
	return 0;
}

static void __exit hwmod_exit(void)
{
	if (!IS_ERR(pdev))
		platform_device_unregister(pdev);
	platform_driver_unregister(&hwmod_driver);
	if (bad_release)
		release_region(0x3f0, 8);
#ifndef BUG_LEAVE_REGION
	if (regs)
		iounmap(regs);
	if (mmio)
		release_mem_region(mem_base, 0x1000);
	release_region(io_base, 32);
#endif
	pr_info("hwmod: exit\n");
}

module_init(hwmod_init);
module_exit(hwmod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("hardware that is not there");
