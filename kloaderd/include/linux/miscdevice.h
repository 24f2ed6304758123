/* SPDX-License-Identifier: GPL-2.0 */
/* Miscellaneous character devices: major 10, a node /dev/NAME each. */
#ifndef _LINUX_MISCDEVICE_H
#define _LINUX_MISCDEVICE_H

#include <linux/list.h>
#include <linux/types.h>
#include <linux/fs.h>

#define MISC_MAJOR		10
#define MISC_DYNAMIC_MINOR	255

struct device;
struct attribute_group;

struct miscdevice {
	int minor;
	const char *name;
	const struct file_operations *fops;
	struct list_head list;
	struct device *parent;
	struct device *this_device;
	const struct attribute_group **groups;
	const char *nodename;
	umode_t mode;
};

_Static_assert(__builtin_offsetof(struct miscdevice, fops) == 16, "miscdevice.fops @16");
_Static_assert(__builtin_offsetof(struct miscdevice, list) == 24, "miscdevice.list @24");
_Static_assert(__builtin_offsetof(struct miscdevice, nodename) == 64, "miscdevice.nodename @64");
_Static_assert(sizeof(struct miscdevice) == 80, "struct miscdevice is 80 bytes");

int misc_register(struct miscdevice *misc);
void misc_deregister(struct miscdevice *misc);

#endif /* _LINUX_MISCDEVICE_H */
