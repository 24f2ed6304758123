/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Filesystem contexts, the mount API a type's ->init_fs_context sets up:
 * Linux 6.1's (and 6.12's) struct fs_context for the members named here.
 */
#ifndef _LINUX_FS_CONTEXT_H
#define _LINUX_FS_CONTEXT_H

#include <linux/fs.h>

struct fs_parameter;

struct fs_context_operations {
	void (*free)(struct fs_context *fc);
	int (*dup)(struct fs_context *fc, struct fs_context *src_fc);
	int (*parse_param)(struct fs_context *fc, struct fs_parameter *param);
	int (*parse_monolithic)(struct fs_context *fc, void *data);
	int (*get_tree)(struct fs_context *fc);
	int (*reconfigure)(struct fs_context *fc);
};

struct fs_context {
	const struct fs_context_operations *ops;
	struct mutex uapi_mutex;
	struct file_system_type *fs_type;
	void *fs_private;
	void *sget_key;
	struct dentry *root;
	void *user_ns;
	void *net_ns;
	const void *cred;
	void *__log[2];				/* struct p_log */
	const char *source;
	void *security;
	void *s_fs_info;
	unsigned int sb_flags;
	unsigned int sb_flags_mask;
	unsigned int s_iflags;
	unsigned int __purpose;			/* lsm_flags, purpose, phase, ... */
};

_Static_assert(__builtin_offsetof(struct fs_context, fs_type) == 40, "fc.fs_type @40");
_Static_assert(__builtin_offsetof(struct fs_context, root) == 64, "fc.root @64");
_Static_assert(__builtin_offsetof(struct fs_context, source) == 112, "fc.source @112");
_Static_assert(__builtin_offsetof(struct fs_context, s_fs_info) == 128, "fc.s_fs_info @128");
_Static_assert(sizeof(struct fs_context) == 152, "struct fs_context is 152 bytes");

int get_tree_nodev(struct fs_context *fc,
		   int (*fill_super)(struct super_block *sb, struct fs_context *fc));
int get_tree_single(struct fs_context *fc,
		    int (*fill_super)(struct super_block *sb, struct fs_context *fc));

#endif /* _LINUX_FS_CONTEXT_H */
