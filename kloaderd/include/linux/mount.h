/* SPDX-License-Identifier: GPL-2.0 */
/* Mounts: what kern_mount() returns (kloaderd/fs/namespace.py). */
#ifndef _LINUX_MOUNT_H
#define _LINUX_MOUNT_H

#include <linux/types.h>

struct dentry;
struct super_block;

struct vfsmount {
	struct dentry *mnt_root;
	struct super_block *mnt_sb;
	int mnt_flags;
	void *mnt_idmap;
};

_Static_assert(sizeof(struct vfsmount) == 32, "struct vfsmount is 32 bytes");

struct vfsmount *mntget(struct vfsmount *mnt);
void mntput(struct vfsmount *mnt);

#endif /* _LINUX_MOUNT_H */
