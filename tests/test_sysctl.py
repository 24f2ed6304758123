"""register_sysctl and register_sysctl_table (kloaderd/fs/proc_sysctl.py)
under the Debian 6.1 profile: tables checked as Linux checks them,
duplicates refused, the files recorded until unregistered."""

from __future__ import annotations

import pytest

from realkernel import run_kbuilt

SYSCTL_USER = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/sysctl.h>
MODULE_LICENSE("GPL");
static int value, other;
static struct ctl_table good[] = {
	{ .procname = "value", .data = &value, .maxlen = sizeof(int), .mode = 0644,
	  .proc_handler = proc_dointvec },
	{ }
};
static struct ctl_table bad[] = {
	{ .procname = "nodata", .maxlen = sizeof(int), .mode = 0644, .proc_handler = proc_dointvec },
	{ .procname = "exec", .data = &other, .maxlen = sizeof(int), .mode = 0755,
	  .proc_handler = proc_dointvec },
	{ }
};
static struct ctl_table leaf[] = {
	{ .procname = "other", .data = &other, .maxlen = sizeof(int), .mode = 0644,
	  .proc_handler = proc_dointvec },
	{ }
};
static struct ctl_table dir[] = { { .procname = "nested", .mode = 0555, .child = leaf }, { } };
static struct ctl_table root[] = { { .procname = "dev", .mode = 0555, .child = dir }, { } };
static struct ctl_table_header *header, *nested;
static int __init sysctl_user_init(void)
{
	struct ctl_table_header *again, *wrong;

	header = register_sysctl("dev/sysctl_user", good);
	again = register_sysctl("dev/sysctl_user", good);
	wrong = register_sysctl("dev/sysctl_user", bad);
	nested = register_sysctl_table(root);
	pr_info("sysctl_user: %d %d %d %d\n", !!header, !!again, !!wrong, !!nested);
	return header && nested ? 0 : -ENOMEM;
}
static void __exit sysctl_user_exit(void)
{
	unregister_sysctl_table(nested);
	unregister_sysctl_table(header);
}
module_init(sysctl_user_init);
module_exit(sysctl_user_exit);
"""


@pytest.mark.slow          # builds with the real kernel's kbuild
def test_sysctl_tables_are_checked_recorded_and_unregistered(tmp_path):
    kernel, lines = run_kbuilt(tmp_path, "sysctl_user", SYSCTL_USER)
    assert lines == ["sysctl_user: 1 0 0 1"]
    log = [r.text for r in kernel.log.records()]
    assert "sysctl duplicate entry: /dev/sysctl_user/value" in log
    assert "sysctl table check failed: dev/sysctl_user/nodata No data" in log
    assert "sysctl table check failed: dev/sysctl_user/exec bogus .mode 0755" in log
    assert not any("leaked" in line or "WARNING" in line for line in log)
    assert len(kernel.registrations.registry("sysctl")) == 0
