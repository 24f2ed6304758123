/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Directory entries: struct dentry has Linux 6.1's (and 6.12's) size and
 * offsets for the members named here (kloaderd/fs/libfs.py writes them).
 */
#ifndef _LINUX_DCACHE_H
#define _LINUX_DCACHE_H

#include <linux/types.h>

struct inode;
struct super_block;

struct qstr {
	u64 hash_len;
	const unsigned char *name;
};

#define DNAME_INLINE_LEN 32

struct dentry {
	unsigned int d_flags;
	unsigned int d_seq;
	unsigned long __d_hash[2];
	struct dentry *d_parent;
	struct qstr d_name;
	struct inode *d_inode;
	unsigned char d_iname[DNAME_INLINE_LEN];
	unsigned long d_lockref;
	const void *d_op;
	struct super_block *d_sb;
	unsigned long d_time;
	void *d_fsdata;
	unsigned long __d_rest[8];		/* d_lru, d_child, d_subdirs, d_u */
};

_Static_assert(__builtin_offsetof(struct dentry, d_inode) == 48, "dentry.d_inode @48");
_Static_assert(__builtin_offsetof(struct dentry, d_sb) == 104, "dentry.d_sb @104");
_Static_assert(__builtin_offsetof(struct dentry, d_fsdata) == 120, "dentry.d_fsdata @120");
_Static_assert(sizeof(struct dentry) == 192, "struct dentry is 192 bytes");

struct dentry *d_make_root(struct inode *root_inode);

#endif /* _LINUX_DCACHE_H */
