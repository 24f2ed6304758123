/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Files, inodes and file operations: the structures through which the VFS
 * calls a driver.  Member order is Linux 6.6's; the members kloader's kernel
 * reads or writes are at the offsets the _Static_asserts fix (and
 * kloaderd/fs/file.py uses), the rest are placeholders of the right size.
 */
#ifndef _LINUX_FS_H
#define _LINUX_FS_H

#include <linux/compiler.h>
#include <linux/types.h>
#include <linux/kdev_t.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/errno.h>

struct module;
struct file;
struct inode;
struct super_block;
struct vfsmount;
struct dentry;
struct kiocb;
struct iov_iter;
struct poll_table_struct;
struct vm_area_struct;
struct file_lock;
struct seq_file;
struct dir_context;
struct pipe_inode_info;
struct io_comp_batch;
struct io_uring_cmd;
struct cdev;

typedef unsigned int fmode_t;
typedef unsigned int __poll_t;
typedef void *fl_owner_t;

#define FMODE_READ		((fmode_t)0x1)
#define FMODE_WRITE		((fmode_t)0x2)
#define FMODE_LSEEK		((fmode_t)0x4)
#define FMODE_PREAD		((fmode_t)0x8)
#define FMODE_PWRITE		((fmode_t)0x10)
#define FMODE_CAN_READ		((fmode_t)(1 << 17))
#define FMODE_CAN_WRITE		((fmode_t)(1 << 18))

#define SEEK_SET	0
#define SEEK_CUR	1
#define SEEK_END	2

#define MAX_LFS_FILESIZE	((loff_t)LLONG_MAX)

struct file_operations {
	struct module *owner;
	loff_t (*llseek) (struct file *, loff_t, int);
	ssize_t (*read) (struct file *, char __user *, size_t, loff_t *);
	ssize_t (*write) (struct file *, const char __user *, size_t, loff_t *);
	ssize_t (*read_iter) (struct kiocb *, struct iov_iter *);
	ssize_t (*write_iter) (struct kiocb *, struct iov_iter *);
	int (*iopoll)(struct kiocb *kiocb, struct io_comp_batch *, unsigned int flags);
	int (*iterate_shared) (struct file *, struct dir_context *);
	__poll_t (*poll) (struct file *, struct poll_table_struct *);
	long (*unlocked_ioctl) (struct file *, unsigned int, unsigned long);
	long (*compat_ioctl) (struct file *, unsigned int, unsigned long);
	int (*mmap) (struct file *, struct vm_area_struct *);
	unsigned long mmap_supported_flags;
	int (*open) (struct inode *, struct file *);
	int (*flush) (struct file *, fl_owner_t id);
	int (*release) (struct inode *, struct file *);
	int (*fsync) (struct file *, loff_t, loff_t, int datasync);
	int (*fasync) (int, struct file *, int);
	int (*lock) (struct file *, int, struct file_lock *);
	unsigned long (*get_unmapped_area)(struct file *, unsigned long, unsigned long,
					   unsigned long, unsigned long);
	int (*check_flags)(int);
	int (*flock) (struct file *, int, struct file_lock *);
	ssize_t (*splice_write)(struct pipe_inode_info *, struct file *, loff_t *, size_t, unsigned int);
	ssize_t (*splice_read)(struct file *, loff_t *, struct pipe_inode_info *, size_t, unsigned int);
	void (*splice_eof)(struct file *file);
	int (*setlease)(struct file *, int, struct file_lock **, void **);
	long (*fallocate)(struct file *file, int mode, loff_t offset, loff_t len);
	void (*show_fdinfo)(struct seq_file *m, struct file *f);
	ssize_t (*copy_file_range)(struct file *, loff_t, struct file *, loff_t, size_t, unsigned int);
	loff_t (*remap_file_range)(struct file *file_in, loff_t pos_in, struct file *file_out,
				   loff_t pos_out, loff_t len, unsigned int remap_flags);
	int (*fadvise)(struct file *, loff_t, loff_t, int);
	int (*uring_cmd)(struct io_uring_cmd *ioucmd, unsigned int issue_flags);
	int (*uring_cmd_iopoll)(struct io_uring_cmd *, struct io_comp_batch *, unsigned int poll_flags);
};

_Static_assert(__builtin_offsetof(struct file_operations, llseek) == 8, "fops.llseek @8");
_Static_assert(__builtin_offsetof(struct file_operations, read) == 16, "fops.read @16");
_Static_assert(__builtin_offsetof(struct file_operations, write) == 24, "fops.write @24");
_Static_assert(__builtin_offsetof(struct file_operations, unlocked_ioctl) == 72, "fops.unlocked_ioctl @72");
_Static_assert(__builtin_offsetof(struct file_operations, open) == 104, "fops.open @104");
_Static_assert(__builtin_offsetof(struct file_operations, release) == 120, "fops.release @120");

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};

struct file {
	union {
		struct list_head	f_llist;
		unsigned int		f_iocb_flags;
	};
	spinlock_t		f_lock;
	fmode_t			f_mode;
	atomic_long_t		f_count;
	struct mutex		f_pos_lock;
	loff_t			f_pos;
	unsigned int		f_flags;
	unsigned long		__f_owner[4];		/* struct fown_struct */
	const void		*f_cred;
	unsigned long		__f_ra[4];		/* struct file_ra_state */
	struct path		f_path;
	struct inode		*f_inode;
	const struct file_operations *f_op;
	u64			f_version;
	void			*f_security;
	void			*private_data;
	struct hlist_head	*f_ep;
	void			*f_mapping;
	u32			f_wb_err;
	u32			f_sb_err;
};

_Static_assert(__builtin_offsetof(struct file, f_mode) == 20, "file.f_mode @20");
_Static_assert(__builtin_offsetof(struct file, f_pos) == 64, "file.f_pos @64");
_Static_assert(__builtin_offsetof(struct file, f_flags) == 72, "file.f_flags @72");
_Static_assert(__builtin_offsetof(struct file, f_inode) == 168, "file.f_inode @168");
_Static_assert(__builtin_offsetof(struct file, f_op) == 176, "file.f_op @176");
_Static_assert(__builtin_offsetof(struct file, private_data) == 200, "file.private_data @200");
_Static_assert(sizeof(struct file) == 232, "struct file is 232 bytes");

struct timespec64_fs {
	s64 tv_sec;
	long tv_nsec;
};

struct inode {
	umode_t			i_mode;
	unsigned short		i_opflags;
	u32			i_uid;
	u32			i_gid;
	unsigned int		i_flags;
	void			*i_acl;
	void			*i_default_acl;
	const void		*i_op;
	struct super_block	*i_sb;
	void			*i_mapping;
	void			*i_security;
	unsigned long		i_ino;
	unsigned int		i_nlink;
	dev_t			i_rdev;
	loff_t			i_size;
	struct timespec64_fs	i_atime;
	struct timespec64_fs	i_mtime;
	struct timespec64_fs	__i_ctime;
	spinlock_t		i_lock;
	unsigned short		i_bytes;
	u8			i_blkbits;
	u8			i_write_hint;
	u64			i_blocks;
	unsigned long		__i_rest[24];		/* state, locks, lists */
	atomic_t		i_count;		/* where Linux 6.1 has it */
	unsigned int		__i_pad;
	unsigned long		__i_rest1;
	const struct file_operations *i_fop;		/* where Linux 6.1 has it */
	unsigned long		__i_rest2;
	unsigned char		i_data[192];		/* struct address_space, as Linux 6.1 */
	unsigned long		__i_rest3;
	union {
		void		*i_pipe;
		struct cdev	*i_cdev;
		char		*i_link;
		unsigned	i_dir_seq;
	};
	void			*i_private;
	unsigned long		__i_tail[1];
};

_Static_assert(__builtin_offsetof(struct inode, i_sb) == 40, "inode.i_sb @40");
_Static_assert(__builtin_offsetof(struct inode, i_ino) == 64, "inode.i_ino @64");
_Static_assert(__builtin_offsetof(struct inode, i_rdev) == 76, "inode.i_rdev @76");
_Static_assert(__builtin_offsetof(struct inode, i_fop) == 360, "inode.i_fop @360");
_Static_assert(__builtin_offsetof(struct inode, i_count) == 344, "inode.i_count @344");
_Static_assert(__builtin_offsetof(struct inode, i_data) == 376, "inode.i_data @376");
_Static_assert(__builtin_offsetof(struct inode, i_cdev) == 576, "inode.i_cdev @576");
_Static_assert(__builtin_offsetof(struct inode, i_private) == 584, "inode.i_private @584");
_Static_assert(sizeof(struct inode) == 600, "struct inode is 600 bytes");

static inline unsigned iminor(const struct inode *inode)
{
	return MINOR(inode->i_rdev);
}

static inline unsigned imajor(const struct inode *inode)
{
	return MAJOR(inode->i_rdev);
}

static inline struct inode *file_inode(const struct file *f)
{
	return f->f_inode;
}

/* Character devices: numbers, and the old all-in-one registration. */
int register_chrdev_region(dev_t from, unsigned count, const char *name);
int alloc_chrdev_region(dev_t *dev, unsigned baseminor, unsigned count, const char *name);
void unregister_chrdev_region(dev_t from, unsigned count);
int __register_chrdev(unsigned int major, unsigned int baseminor, unsigned int count,
		      const char *name, const struct file_operations *fops);
void __unregister_chrdev(unsigned int major, unsigned int baseminor, unsigned int count,
			 const char *name);

#define CHRDEV_MAJOR_MAX 512

static inline int register_chrdev(unsigned int major, const char *name,
				  const struct file_operations *fops)
{
	return __register_chrdev(major, 0, 256, name, fops);
}

static inline void unregister_chrdev(unsigned int major, const char *name)
{
	__unregister_chrdev(major, 0, 256, name);
}

/* Position helpers a driver's .llseek may use. */
loff_t no_llseek(struct file *file, loff_t offset, int whence);
loff_t noop_llseek(struct file *file, loff_t offset, int whence);
loff_t fixed_size_llseek(struct file *file, loff_t offset, int whence, loff_t size);
int nonseekable_open(struct inode *inode, struct file *filp);
int stream_open(struct inode *inode, struct file *filp);
ssize_t simple_read_from_buffer(void __user *to, size_t count, loff_t *ppos,
				const void *from, size_t available);
ssize_t simple_write_to_buffer(void *to, size_t available, loff_t *ppos,
			       const void __user *from, size_t count);

/*
 * Filesystem types and superblocks (kloaderd/fs/filesystems.py, super.py,
 * namespace.py, libfs.py).  struct file_system_type is Linux's (the same in
 * 6.1 and 6.12); struct super_block has Linux 6.1's size and offsets for the
 * members named here, placeholders between.
 */
#define FS_REQUIRES_DEV		1
#define FS_BINARY_MOUNTDATA	2
#define FS_HAS_SUBTYPE		4
#define FS_USERNS_MOUNT		8

#define SB_RDONLY	 1
#define SB_SILENT	32768
#define SB_ACTIVE	(1 << 30)
#define SB_KERNMOUNT	(1 << 22)

struct fs_context;
struct fs_parameter_spec;
struct kstatfs;

struct file_system_type {
	const char *name;
	int fs_flags;
	int (*init_fs_context)(struct fs_context *);
	const struct fs_parameter_spec *parameters;
	struct dentry *(*mount) (struct file_system_type *, int, const char *, void *);
	void (*kill_sb) (struct super_block *);
	struct module *owner;
	struct file_system_type *next;
	struct hlist_head fs_supers;
};

_Static_assert(__builtin_offsetof(struct file_system_type, mount) == 32, "fst.mount @32");
_Static_assert(__builtin_offsetof(struct file_system_type, owner) == 48, "fst.owner @48");
_Static_assert(__builtin_offsetof(struct file_system_type, next) == 56, "fst.next @56");
_Static_assert(sizeof(struct file_system_type) == 72, "struct file_system_type is 72 bytes");

struct super_operations {
	struct inode *(*alloc_inode)(struct super_block *sb);
	void (*destroy_inode)(struct inode *);
	void (*free_inode)(struct inode *);
	void (*dirty_inode) (struct inode *, int flags);
	int (*write_inode) (struct inode *, void *wbc);
	int (*drop_inode) (struct inode *);
	void (*evict_inode) (struct inode *);
	void (*put_super) (struct super_block *);
	int (*sync_fs)(struct super_block *sb, int wait);
	int (*freeze_super) (struct super_block *);
	int (*freeze_fs) (struct super_block *);
	int (*thaw_super) (struct super_block *);
	int (*unfreeze_fs) (struct super_block *);
	int (*statfs) (struct dentry *, struct kstatfs *);
	int (*remount_fs) (struct super_block *, int *, char *);
	void (*umount_begin) (struct super_block *);
	int (*show_options)(struct seq_file *, struct dentry *);
	int (*show_devname)(struct seq_file *, struct dentry *);
	int (*show_path)(struct seq_file *, struct dentry *);
	int (*show_stats)(struct seq_file *, struct dentry *);
	ssize_t (*quota_read)(struct super_block *, int, char *, size_t, loff_t);
	ssize_t (*quota_write)(struct super_block *, int, const char *, size_t, loff_t);
	void **(*get_dquots)(struct inode *);
	long (*nr_cached_objects)(struct super_block *, void *);
	long (*free_cached_objects)(struct super_block *, void *);
};

_Static_assert(__builtin_offsetof(struct super_operations, put_super) == 56, "s_op.put_super @56");
_Static_assert(sizeof(struct super_operations) == 200, "struct super_operations is 200 bytes");

struct super_block {
	struct list_head	s_list;
	dev_t			s_dev;
	unsigned char		s_blocksize_bits;
	unsigned long		s_blocksize;
	loff_t			s_maxbytes;
	struct file_system_type	*s_type;
	const struct super_operations *s_op;
	const void		*dq_op;
	const void		*s_qcop;
	const void		*s_export_op;
	unsigned long		s_flags;
	unsigned long		s_iflags;
	unsigned long		s_magic;
	struct dentry		*s_root;
	unsigned long		__s_umount[5];		/* struct rw_semaphore */
	int			s_count;
	atomic_t		s_active;
	unsigned long		__s_rest[95];		/* security, xattrs, lists, quota, ... */
	void			*s_fs_info;
	u32			s_time_gran;
	unsigned long		__s_time[4];		/* s_time_min, s_time_max, fsnotify */
	char			s_id[32];
	unsigned long		__s_uuid[8];		/* s_uuid, s_max_links, s_mode, subtype */
	const void		*s_d_op;
	unsigned long		__s_tail[50];
};

_Static_assert(__builtin_offsetof(struct super_block, s_type) == 40, "sb.s_type @40");
_Static_assert(__builtin_offsetof(struct super_block, s_magic) == 96, "sb.s_magic @96");
_Static_assert(__builtin_offsetof(struct super_block, s_root) == 104, "sb.s_root @104");
_Static_assert(__builtin_offsetof(struct super_block, s_active) == 156, "sb.s_active @156");
_Static_assert(__builtin_offsetof(struct super_block, s_fs_info) == 920, "sb.s_fs_info @920");
_Static_assert(__builtin_offsetof(struct super_block, s_id) == 968, "sb.s_id @968");
_Static_assert(__builtin_offsetof(struct super_block, s_d_op) == 1064, "sb.s_d_op @1064");
_Static_assert(sizeof(struct super_block) == 1472, "struct super_block is 1472 bytes");

/* simple_fill_super's table: files[i] becomes inode number i (0 and 1 unused). */
struct tree_descr {
	const char *name;
	const struct file_operations *ops;
	int mode;
};

int register_filesystem(struct file_system_type *);
int unregister_filesystem(struct file_system_type *);
struct file_system_type *get_fs_type(const char *name);

struct dentry *mount_nodev(struct file_system_type *fs_type, int flags, void *data,
			   int (*fill_super)(struct super_block *, void *, int));
struct dentry *mount_single(struct file_system_type *fs_type, int flags, void *data,
			    int (*fill_super)(struct super_block *, void *, int));
void kill_anon_super(struct super_block *sb);
void kill_litter_super(struct super_block *sb);
void deactivate_super(struct super_block *sb);

struct vfsmount *kern_mount(struct file_system_type *);
void kern_unmount(struct vfsmount *mnt);
int simple_pin_fs(struct file_system_type *, struct vfsmount **mount, int *count);
void simple_release_fs(struct vfsmount **mount, int *count);
int simple_fill_super(struct super_block *, unsigned long, const struct tree_descr *);
struct inode *new_inode(struct super_block *sb);
unsigned int get_next_ino(void);

#endif /* _LINUX_FS_H */
