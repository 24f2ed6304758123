/* SPDX-License-Identifier: GPL-2.0 */
/* struct cdev: a character device made live over a range of numbers. */
#ifndef _LINUX_CDEV_H
#define _LINUX_CDEV_H

#include <linux/kdev_t.h>
#include <linux/list.h>
#include <linux/fs.h>
#include <linux/kobject.h>

struct cdev {
	struct kobject kobj;
	struct module *owner;
	const struct file_operations *ops;
	struct list_head list;
	dev_t dev;
	unsigned int count;
};

_Static_assert(__builtin_offsetof(struct cdev, owner) == 64, "cdev.owner @64");
_Static_assert(__builtin_offsetof(struct cdev, ops) == 72, "cdev.ops @72");
_Static_assert(__builtin_offsetof(struct cdev, dev) == 96, "cdev.dev @96");
_Static_assert(sizeof(struct cdev) == 104, "struct cdev is 104 bytes");

void cdev_init(struct cdev *cdev, const struct file_operations *fops);
struct cdev *cdev_alloc(void);
int cdev_add(struct cdev *p, dev_t dev, unsigned count);
void cdev_del(struct cdev *p);

#endif /* _LINUX_CDEV_H */
