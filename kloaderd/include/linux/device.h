/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The device model: struct device, drivers, classes, managed resources,
 * with Linux 6.1's x86-64 layouts (the emulated kernel reads and writes the
 * members asserted below).  class_create(owner, name) is 6.1's.
 */
#ifndef _LINUX_DEVICE_H
#define _LINUX_DEVICE_H

#include <linux/compiler.h>
#include <linux/err.h>
#include <linux/errno.h>
#include <linux/gfp.h>
#include <linux/kdev_t.h>
#include <linux/kobject.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/printk.h>
#include <linux/types.h>

struct module;
struct device;
struct device_private;
struct bus_type;
struct subsys_private;

struct device_type {
	const char *name;
	const struct attribute_group **groups;
	int (*uevent)(const struct device *dev, void *env);
	char *(*devnode)(const struct device *dev, umode_t *mode, void *uid, void *gid);
	void (*release)(struct device *dev);
	const void *pm;
};

struct device_driver {
	const char		*name;
	struct bus_type		*bus;
	struct module		*owner;
	const char		*mod_name;
	bool suppress_bind_attrs;
	int probe_type;
	const void		*of_match_table;
	const void		*acpi_match_table;
	int (*probe)(struct device *dev);
	void (*sync_state)(struct device *dev);
	int (*remove)(struct device *dev);
	void (*shutdown)(struct device *dev);
	int (*suspend)(struct device *dev, int state);
	int (*resume)(struct device *dev);
	const struct attribute_group **groups;
	const struct attribute_group **dev_groups;
	const void *pm;
	void (*coredump)(struct device *dev);
	void *p;
};

_Static_assert(__builtin_offsetof(struct device_driver, probe) == 56, "device_driver.probe @56");
_Static_assert(__builtin_offsetof(struct device_driver, p) == 136, "device_driver.p @136");
_Static_assert(sizeof(struct device_driver) == 144, "struct device_driver is 144 bytes");

struct device {
	struct kobject kobj;
	struct device		*parent;
	struct device_private	*p;
	const char		*init_name;
	const struct device_type *type;
	struct bus_type	*bus;
	struct device_driver *driver;
	void		*platform_data;
	void		*driver_data;
	char		__kloader_private1[652 - 128];	/* mutex, links, power, ... */
	dev_t			devt;
	u32			id;
	struct list_head	devres_head;
	struct class		*class;
	const struct attribute_group **groups;
	void	(*release)(struct device *dev);
	char		__kloader_private3[744 - 704];	/* iommu_group, iommu, physical_location, flags */
};

_Static_assert(__builtin_offsetof(struct device, parent) == 64, "device.parent @64");
_Static_assert(__builtin_offsetof(struct device, init_name) == 80, "device.init_name @80");
_Static_assert(__builtin_offsetof(struct device, driver) == 104, "device.driver @104");
_Static_assert(__builtin_offsetof(struct device, driver_data) == 120, "device.driver_data @120");
_Static_assert(__builtin_offsetof(struct device, devt) == 652, "device.devt @652");
_Static_assert(__builtin_offsetof(struct device, devres_head) == 664, "device.devres_head @664");
_Static_assert(__builtin_offsetof(struct device, class) == 680, "device.class @680");
_Static_assert(__builtin_offsetof(struct device, release) == 696, "device.release @696");
_Static_assert(sizeof(struct device) == 744, "struct device is 744 bytes");

struct device_attribute {
	struct attribute	attr;
	ssize_t (*show)(struct device *dev, struct device_attribute *attr, char *buf);
	ssize_t (*store)(struct device *dev, struct device_attribute *attr, const char *buf, size_t count);
};

#define DEVICE_ATTR(_name, _mode, _show, _store) \
	struct device_attribute dev_attr_##_name = __ATTR(_name, _mode, _show, _store)
#define DEVICE_ATTR_RW(_name) \
	struct device_attribute dev_attr_##_name = __ATTR_RW(_name)
#define DEVICE_ATTR_RO(_name) \
	struct device_attribute dev_attr_##_name = __ATTR_RO(_name)
#define DEVICE_ATTR_WO(_name) \
	struct device_attribute dev_attr_##_name = __ATTR_WO(_name)

struct class {
	const char		*name;
	struct module		*owner;
	const struct attribute_group	**class_groups;
	const struct attribute_group	**dev_groups;
	struct kobject			*dev_kobj;
	int (*dev_uevent)(const struct device *dev, void *env);
	char *(*devnode)(const struct device *dev, umode_t *mode);
	void (*class_release)(struct class *class);
	void (*dev_release)(struct device *dev);
	int (*shutdown_pre)(struct device *dev);
	const void *ns_type;
	const void *(*namespace)(const struct device *dev);
	void (*get_ownership)(const struct device *dev, void *uid, void *gid);
	const void *pm;
	struct subsys_private *p;
};

_Static_assert(__builtin_offsetof(struct class, dev_release) == 64, "class.dev_release @64");
_Static_assert(__builtin_offsetof(struct class, p) == 112, "class.p @112");
_Static_assert(sizeof(struct class) == 120, "struct class is 120 bytes");



int __class_register(struct class *class, struct lock_class_key *key);
void class_unregister(struct class *class);
struct class *__class_create(struct module *owner, const char *name, struct lock_class_key *key);
void class_destroy(struct class *cls);

#define class_register(class)				\
({							\
	static struct lock_class_key __key;		\
	__class_register(class, &__key);		\
})

#define class_create(owner, name)			\
({							\
	static struct lock_class_key __key;		\
	__class_create(owner, name, &__key);		\
})

__printf(5, 6) struct device *device_create(struct class *cls, struct device *parent, dev_t devt,
					    void *drvdata, const char *fmt, ...);
void device_destroy(struct class *cls, dev_t devt);

void device_initialize(struct device *dev);
int device_add(struct device *dev);
int device_register(struct device *dev);
void device_del(struct device *dev);
void device_unregister(struct device *dev);
struct device *get_device(struct device *dev);
void put_device(struct device *dev);
__printf(2, 3) int dev_set_name(struct device *dev, const char *name, ...);
int device_create_file(struct device *device, const struct device_attribute *entry);
void device_remove_file(struct device *dev, const struct device_attribute *attr);

int driver_register(struct device_driver *drv);
void driver_unregister(struct device_driver *drv);

static inline const char *dev_name(const struct device *dev)
{
	if (dev->init_name)
		return dev->init_name;
	return kobject_name(&dev->kobj);
}

static inline void *dev_get_drvdata(const struct device *dev)
{
	return dev->driver_data;
}

static inline void dev_set_drvdata(struct device *dev, void *data)
{
	dev->driver_data = data;
}

/* Managed resources: released, newest first, when the device is unbound. */
void *devm_kmalloc(struct device *dev, size_t size, gfp_t gfp);
void devm_kfree(struct device *dev, const void *p);
char *devm_kstrdup(struct device *dev, const char *s, gfp_t gfp);
void *devm_kmemdup(struct device *dev, const void *src, size_t len, gfp_t gfp);
int devm_add_action(struct device *dev, void (*action)(void *), void *data);
void devm_remove_action(struct device *dev, void (*action)(void *), void *data);
void devm_release_action(struct device *dev, void (*action)(void *), void *data);

static inline void *devm_kzalloc(struct device *dev, size_t size, gfp_t gfp)
{
	return devm_kmalloc(dev, size, gfp | __GFP_ZERO);
}

static inline int devm_add_action_or_reset(struct device *dev, void (*action)(void *), void *data)
{
	int ret = devm_add_action(dev, action, data);

	if (ret)
		action(data);
	return ret;
}

__printf(2, 3) void _dev_emerg(const struct device *dev, const char *fmt, ...);
__printf(2, 3) void _dev_alert(const struct device *dev, const char *fmt, ...);
__printf(2, 3) void _dev_crit(const struct device *dev, const char *fmt, ...);
__printf(2, 3) void _dev_err(const struct device *dev, const char *fmt, ...);
__printf(2, 3) void _dev_warn(const struct device *dev, const char *fmt, ...);
__printf(2, 3) void _dev_notice(const struct device *dev, const char *fmt, ...);
__printf(2, 3) void _dev_info(const struct device *dev, const char *fmt, ...);

#define dev_emerg(dev, fmt, ...)	_dev_emerg(dev, fmt, ##__VA_ARGS__)
#define dev_alert(dev, fmt, ...)	_dev_alert(dev, fmt, ##__VA_ARGS__)
#define dev_crit(dev, fmt, ...)		_dev_crit(dev, fmt, ##__VA_ARGS__)
#define dev_err(dev, fmt, ...)		_dev_err(dev, fmt, ##__VA_ARGS__)
#define dev_warn(dev, fmt, ...)		_dev_warn(dev, fmt, ##__VA_ARGS__)
#define dev_notice(dev, fmt, ...)	_dev_notice(dev, fmt, ##__VA_ARGS__)
#define dev_info(dev, fmt, ...)		_dev_info(dev, fmt, ##__VA_ARGS__)

#endif /* _LINUX_DEVICE_H */
