"""Credentials (kloaderd/kernel/cred.py) under Debian's 6.1 and 6.12: a
module built by each release's kbuild prepares a kernel cred, reads it at
its release's offsets, overrides its task's credentials with it (which its
inline current_cred() sees through `current`), reverts and puts it; a cred it never puts is its leak; and the real modules that
stopped at prepare_kernel_cred get past it."""

from __future__ import annotations

import pytest

from realkernel import assert_gets_past, run_kbuilt

CREDT = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/version.h>
#include <linux/cred.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/user_namespace.h>
MODULE_LICENSE("GPL");
static struct cred *kept;
static int __init credt_init(void)
{
	struct cred *cred = prepare_kernel_cred(&init_task);
	struct cred *null_cred = prepare_kernel_cred(NULL);
	const struct cred *old, *again;

	if (!cred)
		return -ENOMEM;
	pr_info("credt: uid %u gid %u suid %u euid %u fsuid %u fsgid %u usage %ld\n",
		__kuid_val(cred->uid), __kgid_val(cred->gid), __kuid_val(cred->suid),
		__kuid_val(cred->euid), __kuid_val(cred->fsuid), __kgid_val(cred->fsgid),
		(long)atomic_long_read(&cred->usage));
	pr_info("credt: sys_admin %d net_admin %d inheritable clear %d bset %d init_user_ns %d\n",
		!!cap_raised(cred->cap_effective, CAP_SYS_ADMIN),
		!!cap_raised(cred->cap_permitted, CAP_NET_ADMIN), cap_isclear(cred->cap_inheritable),
		!!cap_raised(cred->cap_bset, CAP_LAST_CAP), cred->user_ns == &init_user_ns);
	pr_info("credt: prepare_kernel_cred(NULL) %s\n", null_cred ? "root" : "NULL");
	pr_info("credt: current uid %u euid %u init_user_ns %d kthread %d comm %s\n",
		__kuid_val(current_uid()), __kuid_val(current_euid()), current_user_ns() == &init_user_ns,
		!!(current->flags & PF_KTHREAD), current->comm);
	if (null_cred)
		put_cred(null_cred);
	cred->fsuid = KUIDT_INIT(1000);
	old = override_creds(cred);
	pr_info("credt: overridden usage %ld fsuid %u is current_cred %d real %d\n",
		(long)atomic_long_read(&cred->usage), __kuid_val(current_fsuid()), current_cred() == cred,
		current->real_cred == cred);
	again = override_creds(old);		/* back, keeping the override's reference */
	pr_info("credt: override returns %d\n", again == cred);
	revert_creds(again);			/* drops the reference the second override took */
	revert_creds(old);			/* drops the first one */
	pr_info("credt: reverted usage %ld fsuid %u\n", (long)atomic_long_read(&cred->usage),
		__kuid_val(current_fsuid()));
	get_cred(cred);
	put_cred(cred);
	kept = cred;
	return 0;
}
static void __exit credt_exit(void)
{
#ifndef LEAK
	put_cred(kept);				/* the last reference: __put_cred frees it */
	pr_info("credt: put\n");
#endif
}
module_init(credt_init);
module_exit(credt_exit);
"""

COMMON = ["credt: uid 0 gid 0 suid 0 euid 0 fsuid 0 fsgid 0 usage 1",
          "credt: sys_admin 1 net_admin 1 inheritable clear 1 bset 1 init_user_ns 1"]
TAIL = ["credt: current uid 0 euid 0 init_user_ns 1 kthread 1 comm insmod",
        "credt: overridden usage 2 fsuid 1000 is current_cred 1 real 0",
        "credt: override returns 1",
        "credt: reverted usage 1 fsuid 0"]


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_a_kernel_cred_is_root_overrides_reverts_and_is_freed(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "credt", CREDT, flavour)
    # 6.1 takes NULL for init_cred; 6.2 on refuse it with a WARN.
    null = "root" if flavour == "6.1" else "NULL"
    assert lines == [*COMMON, f"credt: prepare_kernel_cred(NULL) {null}", *TAIL, "credt: put"]
    log = [r.text for r in kernel.log.records()]
    assert not any("leaked" in line or "BUG" in line for line in log), log
    warned = any(line.startswith("WARNING: CPU: 0 PID:") and "kernel/cred.c" in line for line in log)
    assert warned == (flavour == "6.12")


@pytest.mark.slow
def test_a_cred_its_module_never_puts_is_its_leak(tmp_path):
    kernel, lines = run_kbuilt(tmp_path, "credt", "#define LEAK\n" + CREDT, "6.1")
    from kloaderd.kernel.cred import CRED
    size = kernel.layouts[CRED].size           # sizeof(struct cred) of that build tree
    assert lines[-1] == f"credt: leaked {size} bytes in 1 allocations"


@pytest.mark.slow          # the real modules, from the corpus
@pytest.mark.parametrize("flavour, name", [
    ("6.1", "dns_resolver"),
    ("6.12", "dns_resolver"),
    ("6.1", "target_core_mod"),
    ("6.12", "nbd"),
])
def test_real_modules_get_past_their_credentials(flavour, name):
    """They prepare a kernel cred at init; what stops them now is further on."""
    assert_gets_past(flavour, name, {"prepare_kernel_cred"})
