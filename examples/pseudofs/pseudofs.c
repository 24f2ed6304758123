// SPDX-License-Identifier: GPL-2.0
/*
 * pseudofs: the seed thread's pseudo filesystem ("Question about pseudo
 * filesystems", 2002).  A module hands out file descriptors backed by a
 * filesystem of its own; how it mounts that filesystem decides whether the
 * module can ever be removed.
 *
 * Built as is, it counts its users the way Al Viro answered: the first open
 * of /dev/pseudofs mounts the filesystem internally (simple_pin_fs), the last
 * release drops that mount (simple_release_fs), so the module is pinned
 * exactly while a descriptor is open and can be removed after.
 *
 * Built with -DPSEUDOFS_PIN_SELF it does what Jamie Lokier did: kern_mount in
 * init, kern_unmount in exit.  The mount holds a reference on the module, and
 * only the exit would drop it: the module cannot be removed (unless forced).
 *
 * The bugs the sanitizer catches, one define each:
 *   -DPSEUDOFS_BUG_NO_OWNER       the file_system_type forgets .owner: a mount
 *                                 does not pin the module (the Golden Rule);
 *   -DPSEUDOFS_BUG_NO_UNREGISTER  exit forgets unregister_filesystem.
 */
#include <linux/dcache.h>
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/printk.h>

#define PSEUDOFS_MAGIC	0x70736575

static struct vfsmount *pseudofs_mnt;

static int pseudofs_fill_super(struct super_block *sb, void *data, int silent)
{
	static const struct tree_descr files[] = {
		[2] = { "status", NULL, 0444 },
		{ "" },
	};
	int err = simple_fill_super(sb, PSEUDOFS_MAGIC, files);

	if (!err)
		pr_info("pseudofs: superblock %s %u:%u filled\n", sb->s_id, MAJOR(sb->s_dev),
			MINOR(sb->s_dev));
	return err;
}

static struct dentry *pseudofs_mount(struct file_system_type *type, int flags,
				     const char *dev_name, void *data)
{
	pr_info("pseudofs: mount of %s (%s)\n", dev_name, data ? (char *)data : "no options");
	return mount_nodev(type, flags, data, pseudofs_fill_super);
}

static void pseudofs_kill_sb(struct super_block *sb)
{
	pr_info("pseudofs: superblock %u:%u killed\n", MAJOR(sb->s_dev), MINOR(sb->s_dev));
	kill_litter_super(sb);
}

static struct file_system_type pseudofs_type = {
#ifndef PSEUDOFS_BUG_NO_OWNER
	.owner		= THIS_MODULE,
#endif
	.name		= "pseudofs",
	.mount		= pseudofs_mount,
	.kill_sb	= pseudofs_kill_sb,
};

#ifndef PSEUDOFS_PIN_SELF
static int pseudofs_mnt_count;

static int pseudofs_open(struct inode *inode, struct file *file)
{
	int err = simple_pin_fs(&pseudofs_type, &pseudofs_mnt, &pseudofs_mnt_count);

	if (!err)
		pr_info("pseudofs: open, %d user(s) of the internal mount\n", pseudofs_mnt_count);
	return err;
}

static int pseudofs_release(struct inode *inode, struct file *file)
{
	simple_release_fs(&pseudofs_mnt, &pseudofs_mnt_count);
	pr_info("pseudofs: release, %d user(s) of the internal mount\n", pseudofs_mnt_count);
	return 0;
}

static const struct file_operations pseudofs_fops = {
	.owner		= THIS_MODULE,
	.open		= pseudofs_open,
	.release	= pseudofs_release,
};

static struct miscdevice pseudofs_dev = {
	.minor		= MISC_DYNAMIC_MINOR,
	.name		= "pseudofs",
	.fops		= &pseudofs_fops,
};
#endif

static int __init pseudofs_init(void)
{
	int err = register_filesystem(&pseudofs_type);

	if (err)
		return err;
#ifdef PSEUDOFS_PIN_SELF
	pseudofs_mnt = kern_mount(&pseudofs_type);
	if (IS_ERR(pseudofs_mnt)) {
		unregister_filesystem(&pseudofs_type);
		return PTR_ERR(pseudofs_mnt);
	}
#else
	err = misc_register(&pseudofs_dev);
	if (err) {
		unregister_filesystem(&pseudofs_type);
		return err;
	}
#endif
	pr_info("pseudofs: registered\n");
	return 0;
}

static void __exit pseudofs_exit(void)
{
#ifdef PSEUDOFS_PIN_SELF
	kern_unmount(pseudofs_mnt);
#else
	misc_deregister(&pseudofs_dev);
#endif
#ifndef PSEUDOFS_BUG_NO_UNREGISTER
	unregister_filesystem(&pseudofs_type);
#endif
	pr_info("pseudofs: unloaded\n");
}

module_init(pseudofs_init);
module_exit(pseudofs_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("The seed thread's pseudo filesystem: pinned by kern_mount, or counting its users");
