"""Per-CPU counters (kloaderd/lib/percpu_counter.py) under Debian's 6.1 and
6.12: a module built by each release's kbuild adds, reads, sums, compares
and sets a counter whose s32 deltas live in the per-CPU area, and the real
rpcrdma.ko, which keeps one, loads and unloads."""

from __future__ import annotations

import pytest

from realkernel import assert_gets_past, corpus, load_then_remove, run_kbuilt, with_dependencies

PCC = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/version.h>
#include <linux/percpu_counter.h>
MODULE_LICENSE("GPL");
static struct percpu_counter pc;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
static struct percpu_counter many[3];
#endif
static int __init pcc_init(void)
{
	int err = percpu_counter_init(&pc, 5, GFP_KERNEL);

	if (err)
		return err;
	percpu_counter_add(&pc, 10);			/* below the batch: CPU 0's delta */
	pr_info("pcc: read %lld sum %lld delta %d batch %d\n", percpu_counter_read(&pc),
		percpu_counter_sum(&pc), *this_cpu_ptr(pc.counters), percpu_counter_batch);
	percpu_counter_add_batch(&pc, 40, 32);		/* 50 >= 32: folded into count */
	percpu_counter_inc(&pc);
	pr_info("pcc: read %lld sum %lld delta %d\n", percpu_counter_read(&pc),
		percpu_counter_sum(&pc), *this_cpu_ptr(pc.counters));
	pr_info("pcc: compare %d %d %d %d\n", percpu_counter_compare(&pc, 56),
		__percpu_counter_compare(&pc, 100, 32), __percpu_counter_compare(&pc, 0, 1),
		__percpu_counter_compare(&pc, 57, 32));
	percpu_counter_add(&pc, -70);
	pr_info("pcc: negative %lld positive %lld\n", percpu_counter_sum(&pc),
		percpu_counter_sum_positive(&pc));
	percpu_counter_set(&pc, 1000);
	pr_info("pcc: set %lld delta %d\n", percpu_counter_sum(&pc), *this_cpu_ptr(pc.counters));
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
	err = percpu_counter_init_many(many, 7, GFP_KERNEL, 3);
	if (err)
		return err;
	percpu_counter_add(&many[1], 3);
	pr_info("pcc: many %lld %lld %lld\n", percpu_counter_sum(&many[0]),
		percpu_counter_sum(&many[1]), percpu_counter_sum(&many[2]));
#endif
	return 0;
}
static void __exit pcc_exit(void)
{
#ifndef LEAK
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
	percpu_counter_destroy_many(many, 3);
#endif
	percpu_counter_destroy(&pc);
	pr_info("pcc: destroyed %d\n", pc.counters == NULL);
#endif
}
module_init(pcc_init);
module_exit(pcc_exit);
"""

EXPECTED = ["pcc: read 5 sum 15 delta 10 batch 32",
            "pcc: read 55 sum 56 delta 1",
            "pcc: compare 0 -1 1 -1",
            "pcc: negative -14 positive 0",
            "pcc: set 1000 delta 0"]


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_a_counter_batches_per_cpu_deltas_and_sums_them(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "pcc", PCC, flavour)
    many = ["pcc: many 7 10 7"] if flavour == "6.12" else []
    assert lines == [*EXPECTED, *many, "pcc: destroyed 1"]
    log = [r.text for r in kernel.log.records()]
    assert not any("leaked" in line for line in log)


@pytest.mark.slow
def test_a_counter_its_module_never_destroys_is_reported(tmp_path):
    kernel, lines = run_kbuilt(tmp_path, "pcc", "#define LEAK\n" + PCC, "6.12")
    leaks = [line for line in lines if "leaked" in line]
    assert [line for line in lines if "leaked" not in line][-1] == "pcc: many 7 10 7"
    assert len(leaks) == 2, leaks
    assert any(line.startswith("pcc: leaked registration: percpu_counter at 0x") for line in leaks)
    assert any(line.startswith("pcc: leaked registration: percpu_counter array of 3 at 0x")
               for line in leaks)


@pytest.mark.slow          # the real module, from the corpus
def test_rpcrdma_keeps_its_counter_and_unloads_clean():
    """6.1's rpcrdma stopped at __percpu_counter_init; its init and exit run
    now (6.12's moved its counter out of init)."""
    modules, build = corpus("6.1")
    kernel, errors = load_then_remove(build, with_dependencies(modules, "rpcrdma"))
    assert not errors, errors
    log = [r.text for r in kernel.log.records()]
    assert not any("leaked" in line or "Oops" in line or "not emulated" in line for line in log), log


@pytest.mark.slow
@pytest.mark.parametrize("flavour, name", [
    ("6.1", "bridge"),
    ("6.12", "bridge"),
    ("6.1", "sctp"),
    ("6.12", "sctp"),
])
def test_real_modules_get_past_their_counters(flavour, name):
    """bridge and sctp initialise counters first; what stops them now is further on."""
    assert_gets_past(flavour, name, {"__percpu_counter_init", "__percpu_counter_init_many"})
