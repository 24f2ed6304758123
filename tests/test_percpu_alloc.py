"""alloc_percpu()/free_percpu() (kloaderd/mm/percpu.py) under the Debian 6.1
profile: per-CPU memory reached through %gs as Linux's is, zeroed, and
a bad size refused with Linux's warning."""

from __future__ import annotations

import pytest

from realkernel import run_kbuilt

PERCPU_USER = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/percpu.h>
MODULE_LICENSE("GPL");
struct counters { u64 hits; u32 misses; };
static struct counters __percpu *stats;
static int __init percpu_user_init(void)
{
	void __percpu *bad = __alloc_percpu(0, 8);

	stats = alloc_percpu(struct counters);
	if (!stats)
		return -ENOMEM;
	this_cpu_inc(stats->hits);
	this_cpu_add(stats->hits, 41);
	this_cpu_ptr(stats)->misses = 7;
	pr_info("percpu_user: %llu %u zeroed %d bad %p\n", per_cpu_ptr(stats, 0)->hits,
		raw_cpu_read(stats->misses), per_cpu_ptr(stats, 0)->hits == 42, bad);
	return 0;
}
static void __exit percpu_user_exit(void)
{
	free_percpu(stats);
	pr_info("percpu_user: freed\n");
}
module_init(percpu_user_init);
module_exit(percpu_user_exit);
"""


@pytest.mark.slow          # builds with the real kernel's kbuild
def test_per_cpu_memory_is_reached_through_gs_and_freed(tmp_path):
    kernel, lines = run_kbuilt(tmp_path, "percpu_user", PERCPU_USER)
    assert lines == ["percpu_user: 42 7 zeroed 1 bad 0000000000000000", "percpu_user: freed"]
    log = [r.text for r in kernel.log.records()]
    assert "illegal size (0) or align (8) for percpu allocation" in log
    assert not any("leaked" in line for line in log)
