// SPDX-License-Identifier: GPL-2.0
/*
 * procseq: procfs entries of every kind, under /proc/procseq/:
 *   records  proc_create_seq: `nrec` records "record N: ..." of `width` bytes
 *   single   proc_create_single_data: one show() with the entry's data
 *   value    proc_create_data with its own proc_ops: single_open/seq_read to
 *            read the value, .proc_write to set it (EINVAL for a bad number);
 *            proc_set_size 4, proc_set_user 1000:100
 *   slow     a .proc_read that waits until `gate` is written: a reader
 *            inside the entry's operations, for removal to wait for
 *   gate     written to let the slow reader go
 * -DPROCSEQ_BUG_LEAVE_ENTRY forgets to remove them at exit: the leftover
 * the sanitizer reports.
 */
#include <linux/completion.h>
#include <linux/errno.h>
#include <linux/init.h>
#include <linux/kstrtox.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>

static int nrec = 3;
module_param(nrec, int, 0444);
static int width = 0;
module_param(width, int, 0444);

static struct proc_dir_entry *dir;
static int value = 7;
static int single_data = 42;
static DECLARE_COMPLETION(gate);

static void *rec_start(struct seq_file *m, loff_t *pos)
{
	return *pos < nrec ? (void *)(unsigned long)(*pos + 1) : NULL;
}

static void *rec_next(struct seq_file *m, void *v, loff_t *pos)
{
	++*pos;
	return rec_start(m, pos);
}

static void rec_stop(struct seq_file *m, void *v)
{
}

static int rec_show(struct seq_file *m, void *v)
{
	unsigned long n = (unsigned long)v - 1;
	int i;

	seq_printf(m, "record %lu:", n);
	for (i = 0; i < width; i++)
		seq_putc(m, 'a' + (n + i) % 26);
	seq_puts(m, "\n");
	return 0;
}

static const struct seq_operations rec_ops = {
	.start	= rec_start,
	.next	= rec_next,
	.stop	= rec_stop,
	.show	= rec_show,
};

static int single_show(struct seq_file *m, void *v)
{
	seq_printf(m, "data=%d private=%d\n", *(int *)m->private, value);
	return 0;
}

static int value_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%d\n", value);
	return 0;
}

static int value_open(struct inode *inode, struct file *file)
{
	return single_open(file, value_show, pde_data(inode));
}

static ssize_t value_write(struct file *file, const char __user *buf, size_t count, loff_t *ppos)
{
	char text[32];
	int v, err;

	if (count >= sizeof(text))
		return -EINVAL;
	if (copy_from_user(text, buf, count))
		return -EFAULT;
	text[count] = 0;
	err = kstrtoint(text, 0, &v);
	if (err)
		return err;
	value = v;
	return count;
}

static const struct proc_ops value_ops = {
	.proc_open	= value_open,
	.proc_read	= seq_read,
	.proc_write	= value_write,
	.proc_lseek	= seq_lseek,
	.proc_release	= single_release,
};

static ssize_t slow_read(struct file *file, char __user *buf, size_t count, loff_t *ppos)
{
	if (*ppos)
		return 0;
	pr_info("procseq: slow reader waiting\n");
	wait_for_completion(&gate);
	pr_info("procseq: slow reader done\n");
	if (count < 5 || copy_to_user(buf, "done\n", 5))
		return -EFAULT;
	*ppos = 5;
	return 5;
}

static const struct proc_ops slow_ops = {
	.proc_read	= slow_read,
};

static ssize_t gate_write(struct file *file, const char __user *buf, size_t count, loff_t *ppos)
{
	complete(&gate);
	return count;
}

static const struct proc_ops gate_ops = {
	.proc_write	= gate_write,
};

static int __init procseq_init(void)
{
	struct proc_dir_entry *v;

	dir = proc_mkdir("procseq", NULL);
	if (!dir)
		return -ENOMEM;
	v = proc_create_data("value", 0644, dir, &value_ops, &single_data);
	if (v) {
		proc_set_size(v, 4);
		proc_set_user(v, KUIDT_INIT(1000), KGIDT_INIT(100));
	}
	if (!v || !proc_create_seq("records", 0444, dir, &rec_ops) ||
	    !proc_create_single_data("single", 0444, dir, single_show, &single_data) ||
	    !proc_create("slow", 0444, dir, &slow_ops) ||
	    !proc_create("gate", 0200, dir, &gate_ops)) {
		proc_remove(dir);
		return -ENOMEM;
	}
	return 0;
}

static void __exit procseq_exit(void)
{
#ifndef PROCSEQ_BUG_LEAVE_ENTRY
	remove_proc_entry("slow", dir);
	pr_info("procseq: slow removed\n");
	remove_proc_subtree("procseq", NULL);
#endif
}

module_init(procseq_init);
module_exit(procseq_exit);
MODULE_LICENSE("GPL");
