/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Platform devices and drivers (Linux 6.1 layouts): a device binds to the
 * driver whose id_table or name matches its name; probe() and remove()
 * (or remove_new()) run as the driver core calls them.
 */
#ifndef _LINUX_PLATFORM_DEVICE_H
#define _LINUX_PLATFORM_DEVICE_H

#include <linux/device.h>
#include <linux/ioport.h>

#define PLATFORM_DEVID_NONE	(-1)
#define PLATFORM_DEVID_AUTO	(-2)
#define PLATFORM_NAME_SIZE	20

struct platform_device_id {
	char name[PLATFORM_NAME_SIZE];
	unsigned long driver_data;
};

struct platform_device {
	const char	*name;
	int		id;
	bool		id_auto;
	struct device	dev;
	u64		platform_dma_mask;
	char		__kloader_private[784 - 768];	/* dma_parms */
	u32		num_resources;
	struct resource	*resource;
	const struct platform_device_id	*id_entry;
	const char *driver_override;
	void		*mfd_cell;
};

_Static_assert(__builtin_offsetof(struct platform_device, dev) == 16, "platform_device.dev @16");
_Static_assert(__builtin_offsetof(struct platform_device, num_resources) == 784, "num_resources @784");
_Static_assert(__builtin_offsetof(struct platform_device, driver_override) == 808, "driver_override @808");
_Static_assert(sizeof(struct platform_device) == 824, "struct platform_device is 824 bytes");

#define to_platform_device(x) container_of((x), struct platform_device, dev)

struct platform_driver {
	int (*probe)(struct platform_device *);
	int (*remove)(struct platform_device *);
	void (*remove_new)(struct platform_device *);
	void (*shutdown)(struct platform_device *);
	int (*suspend)(struct platform_device *, int state);
	int (*resume)(struct platform_device *);
	struct device_driver driver;
	const struct platform_device_id *id_table;
	bool prevent_deferred_probe;
	bool driver_managed_dma;
};

_Static_assert(__builtin_offsetof(struct platform_driver, driver) == 48, "platform_driver.driver @48");
_Static_assert(__builtin_offsetof(struct platform_driver, id_table) == 192, "platform_driver.id_table @192");
_Static_assert(sizeof(struct platform_driver) == 208, "struct platform_driver is 208 bytes");

struct platform_device_info {
	struct device *parent;
	void *fwnode;
	bool of_node_reused;
	const char *name;
	int id;
	const struct resource *res;
	unsigned int num_res;
	const void *data;
	size_t size_data;
	u64 dma_mask;
	const void *properties;
};

_Static_assert(sizeof(struct platform_device_info) == 88, "struct platform_device_info is 88 bytes");

int __platform_driver_register(struct platform_driver *drv, struct module *owner);
void platform_driver_unregister(struct platform_driver *drv);
#define platform_driver_register(drv) __platform_driver_register(drv, THIS_MODULE)

#define module_platform_driver(__platform_driver)			\
static int __init __platform_driver##_init(void)			\
{									\
	return platform_driver_register(&(__platform_driver));		\
}									\
module_init(__platform_driver##_init);					\
static void __exit __platform_driver##_exit(void)			\
{									\
	platform_driver_unregister(&(__platform_driver));		\
}									\
module_exit(__platform_driver##_exit)

struct platform_device *platform_device_alloc(const char *name, int id);
int platform_device_add(struct platform_device *pdev);
int platform_device_register(struct platform_device *pdev);
void platform_device_del(struct platform_device *pdev);
void platform_device_put(struct platform_device *pdev);
void platform_device_unregister(struct platform_device *pdev);
int platform_device_add_resources(struct platform_device *pdev, const struct resource *res,
				  unsigned int num);
int platform_device_add_data(struct platform_device *pdev, const void *data, size_t size);
struct platform_device *platform_device_register_full(const struct platform_device_info *pdevinfo);
struct resource *platform_get_resource(struct platform_device *dev, unsigned int type, unsigned int num);
void __iomem *devm_platform_get_and_ioremap_resource(struct platform_device *pdev, unsigned int index,
						     struct resource **res);
void __iomem *devm_platform_ioremap_resource(struct platform_device *pdev, unsigned int index);
int platform_get_irq(struct platform_device *dev, unsigned int num);
int platform_get_irq_optional(struct platform_device *dev, unsigned int num);

static inline struct platform_device *platform_device_register_resndata(
		struct device *parent, const char *name, int id,
		const struct resource *res, unsigned int num,
		const void *data, size_t size)
{
	struct platform_device_info pdevinfo = {
		.parent = parent,
		.name = name,
		.id = id,
		.res = res,
		.num_res = num,
		.data = data,
		.size_data = size,
		.dma_mask = 0,
	};

	return platform_device_register_full(&pdevinfo);
}

static inline struct platform_device *platform_device_register_simple(
		const char *name, int id, const struct resource *res, unsigned int num)
{
	return platform_device_register_resndata(NULL, name, id, res, num, NULL, 0);
}

static inline void *platform_get_drvdata(const struct platform_device *pdev)
{
	return dev_get_drvdata(&pdev->dev);
}

static inline void platform_set_drvdata(struct platform_device *pdev, void *data)
{
	dev_set_drvdata(&pdev->dev, data);
}

#endif /* _LINUX_PLATFORM_DEVICE_H */
