/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kobjects and ksets: the reference-counted objects behind /sys
 * directories, with Linux 6.1's x86-64 layouts (the emulated kernel reads
 * name, parent, kset, ktype, kref and the state bits).  The last
 * kobject_put() calls ktype->release().
 */
#ifndef _LINUX_KOBJECT_H
#define _LINUX_KOBJECT_H

#include <linux/compiler.h>
#include <linux/container_of.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/sysfs.h>
#include <linux/types.h>

struct kref {
	struct { atomic_t refs; } refcount;
};

struct kset;
struct kobj_type;
struct kernfs_node;

struct kobject {
	const char		*name;
	struct list_head	entry;
	struct kobject		*parent;
	struct kset		*kset;
	const struct kobj_type	*ktype;
	struct kernfs_node	*sd;
	struct kref		kref;
	unsigned int state_initialized:1;
	unsigned int state_in_sysfs:1;
	unsigned int state_add_uevent_sent:1;
	unsigned int state_remove_uevent_sent:1;
	unsigned int uevent_suppress:1;
};

_Static_assert(__builtin_offsetof(struct kobject, parent) == 24, "kobject.parent @24");
_Static_assert(__builtin_offsetof(struct kobject, ktype) == 40, "kobject.ktype @40");
_Static_assert(__builtin_offsetof(struct kobject, kref) == 56, "kobject.kref @56");
_Static_assert(sizeof(struct kobject) == 64, "struct kobject is 64 bytes");

struct kobj_type {
	void (*release)(struct kobject *kobj);
	const struct sysfs_ops *sysfs_ops;
	const struct attribute_group **default_groups;
	const void *(*child_ns_type)(struct kobject *kobj);
	const void *(*namespace)(struct kobject *kobj);
	void (*get_ownership)(struct kobject *kobj, void *uid, void *gid);
};

_Static_assert(sizeof(struct kobj_type) == 48, "struct kobj_type is 48 bytes");

struct kobj_attribute {
	struct attribute attr;
	ssize_t (*show)(struct kobject *kobj, struct kobj_attribute *attr, char *buf);
	ssize_t (*store)(struct kobject *kobj, struct kobj_attribute *attr, const char *buf, size_t count);
};

_Static_assert(__builtin_offsetof(struct kobj_attribute, show) == 16, "kobj_attribute.show @16");

struct kset {
	struct list_head list;
	spinlock_t list_lock;
	struct kobject kobj;
	const void *uevent_ops;
};

_Static_assert(__builtin_offsetof(struct kset, kobj) == 24, "kset.kobj @24");
_Static_assert(sizeof(struct kset) == 96, "struct kset is 96 bytes");

enum kobject_action {
	KOBJ_ADD,
	KOBJ_REMOVE,
	KOBJ_CHANGE,
	KOBJ_MOVE,
	KOBJ_ONLINE,
	KOBJ_OFFLINE,
	KOBJ_BIND,
	KOBJ_UNBIND,
};

extern struct kobject *kernel_kobj;
extern struct kobject *mm_kobj;
extern struct kobject *fs_kobj;
extern struct kobject *firmware_kobj;
extern const struct sysfs_ops kobj_sysfs_ops;

static inline const char *kobject_name(const struct kobject *kobj)
{
	return kobj->name;
}

static inline struct kset *to_kset(struct kobject *kobj)
{
	return kobj ? container_of(kobj, struct kset, kobj) : NULL;
}

void kobject_init(struct kobject *kobj, const struct kobj_type *ktype);
__printf(3, 4) int kobject_add(struct kobject *kobj, struct kobject *parent, const char *fmt, ...);
__printf(4, 5) int kobject_init_and_add(struct kobject *kobj, const struct kobj_type *ktype,
					 struct kobject *parent, const char *fmt, ...);
struct kobject *kobject_create_and_add(const char *name, struct kobject *parent);
__printf(2, 3) int kobject_set_name(struct kobject *kobj, const char *name, ...);
struct kobject *kobject_get(struct kobject *kobj);
void kobject_put(struct kobject *kobj);
void kobject_del(struct kobject *kobj);
char *kobject_get_path(const struct kobject *kobj, gfp_t flag);
int kobject_uevent(struct kobject *kobj, enum kobject_action action);
int kobject_uevent_env(struct kobject *kobj, enum kobject_action action, char *envp[]);

int kset_register(struct kset *kset);
void kset_unregister(struct kset *kset);
struct kset *kset_create_and_add(const char *name, const void *uevent_ops, struct kobject *parent_kobj);

#endif /* _LINUX_KOBJECT_H */
