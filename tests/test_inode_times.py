"""Inode timestamps (kloaderd/fs/inode.py, libfs.py) in each release's
`struct inode`: 6.1's timespec64s, 6.12's split seconds and nanoseconds.
A module built by the real kbuild reads them back through its own
headers' accessors, so a wrong offset shows as a wrong value."""

from __future__ import annotations

import pytest

from realkernel import run_kbuilt

STAMPS = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/fs.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/version.h>
MODULE_LICENSE("GPL");
static int __init stamps_init(void)
{
	struct super_block *sb = kzalloc(sizeof(*sb), GFP_KERNEL);
	struct inode *inode = kzalloc(sizeof(*inode), GFP_KERNEL);
	time64_t before = ktime_get_real_seconds(), after;
	struct timespec64 ts, a, m, c;

	sb->s_time_gran = NSEC_PER_SEC;         /* whole seconds: nanoseconds 0 */
	inode->i_sb = sb;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	ts = simple_inode_init_ts(inode);
	a = inode_get_atime(inode);
	m = inode_get_mtime(inode);
	c = inode_get_ctime(inode);
#else
	ts = current_time(inode);
	inode->i_atime = inode->i_mtime = inode->i_ctime = ts;
	a = inode->i_atime;
	m = inode->i_mtime;
	c = inode->i_ctime;
#endif
	after = ktime_get_real_seconds();
	pr_info("stamps: now %d same %d %d %d nsec %ld %ld %ld\n",
		ts.tv_sec >= before && ts.tv_sec <= after, timespec64_equal(&a, &ts),
		timespec64_equal(&m, &ts), timespec64_equal(&c, &ts), a.tv_nsec, m.tv_nsec, c.tv_nsec);
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
	sb->s_time_gran = 1000;                 /* microseconds */
	ts = inode_set_ctime_current(inode);
	c = inode_get_ctime(inode);
	a = inode_get_atime(inode);
	pr_info("stamps: ctime %d us %d atime kept %d\n", timespec64_equal(&c, &ts),
		ts.tv_nsec % 1000 == 0, timespec64_compare(&a, &c) <= 0);
#endif
	kfree(inode);
	kfree(sb);
	return 0;
}
static void __exit stamps_exit(void) {}
module_init(stamps_init);
module_exit(stamps_exit);
"""


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_timestamps_land_where_each_releases_accessors_read_them(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "stamps", STAMPS, flavour)
    assert lines[0] == "stamps: now 1 same 1 1 1 nsec 0 0 0"
    if flavour == "6.12":
        assert lines[1:] == ["stamps: ctime 1 us 1 atime kept 1"]
    assert not any("leaked" in r.text or "WARNING" in r.text for r in kernel.log.records())
