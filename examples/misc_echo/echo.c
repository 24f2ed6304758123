// SPDX-License-Identifier: GPL-2.0
/*
 * echo: the misc driver of kloader's character-device example suite.
 * /dev/echo keeps what was last written (up to ECHO_SIZE bytes) and reads
 * it back from the file position; ioctls clear it, report its length, and
 * copy statistics out to a user buffer.
 *
 * Built with -DECHO_BUG_NO_OWNER its file_operations forget
 * `.owner = THIS_MODULE`, the bug the FAQ's Golden Rule is about: an open
 * file no longer pins the module, and the sanitizer says so.
 */
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/ioctl.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/printk.h>
#include <linux/uaccess.h>

#define ECHO_SIZE	4096

struct echo_stats {
	unsigned int opens;
	unsigned int writes;
	unsigned int reads;
	unsigned int length;
};

#define ECHO_IOC_CLEAR	_IO('e', 1)
#define ECHO_IOC_LEN	_IO('e', 2)
#define ECHO_IOC_STATS	_IOR('e', 3, struct echo_stats)

static char buffer[ECHO_SIZE];
static DEFINE_MUTEX(lock);
static struct echo_stats stats;

static int echo_open(struct inode *inode, struct file *file)
{
	mutex_lock(&lock);
	stats.opens++;
	mutex_unlock(&lock);
	pr_info("echo: open, minor %u, private_data is the miscdevice: %d\n", iminor(inode),
		file->private_data != NULL);
	return 0;
}

static int echo_release(struct inode *inode, struct file *file)
{
	pr_info("echo: release\n");
	return 0;
}

static ssize_t echo_read(struct file *file, char __user *buf, size_t count, loff_t *ppos)
{
	ssize_t ret;

	mutex_lock(&lock);
	stats.reads++;
	ret = simple_read_from_buffer(buf, count, ppos, buffer, stats.length);
	mutex_unlock(&lock);
	return ret;
}

static ssize_t echo_write(struct file *file, const char __user *buf, size_t count, loff_t *ppos)
{
	if (count > ECHO_SIZE)
		return -EFBIG;
	mutex_lock(&lock);
	if (copy_from_user(buffer, buf, count)) {
		mutex_unlock(&lock);
		return -EFAULT;
	}
	stats.length = count;
	stats.writes++;
	*ppos = 0;
	mutex_unlock(&lock);
	pr_info("echo: wrote %zu bytes\n", count);
	return count;
}

static long echo_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct echo_stats copy;

	switch (cmd) {
	case ECHO_IOC_CLEAR:
		mutex_lock(&lock);
		stats.length = 0;
		mutex_unlock(&lock);
		return 0;
	case ECHO_IOC_LEN:
		return stats.length;
	case ECHO_IOC_STATS:
		mutex_lock(&lock);
		copy = stats;
		mutex_unlock(&lock);
		if (copy_to_user((void __user *)arg, &copy, sizeof(copy)))
			return -EFAULT;
		return 0;
	default:
		return -ENOTTY;
	}
}

static loff_t echo_llseek(struct file *file, loff_t offset, int whence)
{
	return fixed_size_llseek(file, offset, whence, stats.length);
}

static const struct file_operations echo_fops = {
#ifndef ECHO_BUG_NO_OWNER
	.owner		= THIS_MODULE,
#endif
	.open		= echo_open,
	.release	= echo_release,
	.read		= echo_read,
	.write		= echo_write,
	.unlocked_ioctl	= echo_ioctl,
	.llseek		= echo_llseek,
};

static struct miscdevice echo_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "echo",
	.fops	= &echo_fops,
};

static int __init echo_init(void)
{
	int err = misc_register(&echo_misc);

	if (err)
		return err;
	pr_info("echo: registered /dev/echo, minor %d\n", echo_misc.minor);
	return 0;
}

static void __exit echo_exit(void)
{
	misc_deregister(&echo_misc);
	pr_info("echo: unloaded\n");
}

module_init(echo_init);
module_exit(echo_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kloader example: a misc character device");
