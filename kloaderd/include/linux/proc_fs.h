/* SPDX-License-Identifier: GPL-2.0 */
/*
 * procfs entries (Linux's fs/proc/generic.c).  struct proc_ops has Linux
 * 6.6's layout (with CONFIG_COMPAT, as x86-64 distribution kernels);
 * struct proc_dir_entry is opaque, as it is to Linux's modules.
 * kloaderd/fs/procfs.py is the implementation.
 */
#ifndef _LINUX_PROC_FS_H
#define _LINUX_PROC_FS_H

#include <linux/compiler.h>
#include <linux/types.h>
#include <linux/fs.h>
#include <linux/uidgid.h>

struct proc_dir_entry;
struct seq_file;
struct seq_operations;

enum {
	/* A module's entries can always be removed: only the kernel's are permanent. */
	PROC_ENTRY_PERMANENT = 0U,
};

struct proc_ops {
	unsigned int proc_flags;
	int	(*proc_open)(struct inode *, struct file *);
	ssize_t	(*proc_read)(struct file *, char __user *, size_t, loff_t *);
	ssize_t (*proc_read_iter)(struct kiocb *, struct iov_iter *);
	ssize_t	(*proc_write)(struct file *, const char __user *, size_t, loff_t *);
	loff_t	(*proc_lseek)(struct file *, loff_t, int);
	int	(*proc_release)(struct inode *, struct file *);
	__poll_t (*proc_poll)(struct file *, struct poll_table_struct *);
	long	(*proc_ioctl)(struct file *, unsigned int, unsigned long);
	long	(*proc_compat_ioctl)(struct file *, unsigned int, unsigned long);
	int	(*proc_mmap)(struct file *, struct vm_area_struct *);
	unsigned long (*proc_get_unmapped_area)(struct file *, unsigned long, unsigned long,
						unsigned long, unsigned long);
};

_Static_assert(__builtin_offsetof(struct proc_ops, proc_open) == 8, "proc_ops.proc_open @8");
_Static_assert(__builtin_offsetof(struct proc_ops, proc_read) == 16, "proc_ops.proc_read @16");
_Static_assert(__builtin_offsetof(struct proc_ops, proc_write) == 32, "proc_ops.proc_write @32");
_Static_assert(__builtin_offsetof(struct proc_ops, proc_lseek) == 40, "proc_ops.proc_lseek @40");
_Static_assert(__builtin_offsetof(struct proc_ops, proc_release) == 48, "proc_ops.proc_release @48");
_Static_assert(__builtin_offsetof(struct proc_ops, proc_ioctl) == 64, "proc_ops.proc_ioctl @64");
_Static_assert(sizeof(struct proc_ops) == 96, "struct proc_ops is 96 bytes");

typedef int (*proc_write_t)(struct file *, char *, size_t);

extern struct proc_dir_entry *proc_symlink(const char *, struct proc_dir_entry *, const char *);
struct proc_dir_entry *_proc_mkdir(const char *, umode_t, struct proc_dir_entry *, void *, bool);
extern struct proc_dir_entry *proc_mkdir(const char *, struct proc_dir_entry *);
extern struct proc_dir_entry *proc_mkdir_data(const char *, umode_t, struct proc_dir_entry *, void *);
extern struct proc_dir_entry *proc_mkdir_mode(const char *, umode_t, struct proc_dir_entry *);

struct proc_dir_entry *proc_create_seq_private(const char *name, umode_t mode,
		struct proc_dir_entry *parent, const struct seq_operations *ops,
		unsigned int state_size, void *data);
#define proc_create_seq_data(name, mode, parent, ops, data) \
	proc_create_seq_private(name, mode, parent, ops, 0, data)
#define proc_create_seq(name, mode, parent, ops) \
	proc_create_seq_private(name, mode, parent, ops, 0, NULL)
struct proc_dir_entry *proc_create_single_data(const char *name, umode_t mode,
		struct proc_dir_entry *parent, int (*show)(struct seq_file *, void *), void *data);
#define proc_create_single(name, mode, parent, show) \
	proc_create_single_data(name, mode, parent, show, NULL)
extern struct proc_dir_entry *proc_create_data(const char *, umode_t, struct proc_dir_entry *,
					       const struct proc_ops *, void *);
struct proc_dir_entry *proc_create(const char *name, umode_t mode, struct proc_dir_entry *parent,
				   const struct proc_ops *proc_ops);
extern void proc_set_size(struct proc_dir_entry *, loff_t);
extern void proc_set_user(struct proc_dir_entry *, kuid_t, kgid_t);

/* The data of an entry, from its inode: inode->i_private. */
static inline void *pde_data(const struct inode *inode)
{
	return inode->i_private;
}

extern void *proc_get_parent_data(const struct inode *);
extern void proc_remove(struct proc_dir_entry *);
extern void remove_proc_entry(const char *, struct proc_dir_entry *);
extern int remove_proc_subtree(const char *, struct proc_dir_entry *);

#endif /* _LINUX_PROC_FS_H */
