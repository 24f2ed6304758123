"""Scatterlists (kloaderd/lib/scatterlist.py, crypto/scatterwalk.py): a
kbuild-built module walks one a page at a time and copies through it under
Debian 6.1 and 6.12, and Debian's libchacha20poly1305, whose init runs its
self-test (chacha_block_generic, the zero page, the in-place scatterlist
encryption), loads and unloads clean."""

from __future__ import annotations

import pytest

from kloaderd.embed import Problems
from realkernel import corpus, load_then_remove, run_kbuilt, with_dependencies

SG_USER = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/slab.h>
#include <linux/scatterlist.h>
#include <crypto/scatterwalk.h>
MODULE_LICENSE("GPL");
static int __init sgt_init(void)
{
	u8 *buf = kmalloc(8192, GFP_KERNEL), tag[4] = { 1, 2, 3, 4 }, back[4];
	struct sg_mapping_iter miter;
	struct scatterlist sg;
	size_t total = 0;
	int pieces = 0;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0, 8192);
	sg_init_one(&sg, buf + 100, 5000);
	pr_info("sgt: nents %d virt %d last %d\n", sg_nents(&sg), sg_virt(&sg) == buf + 100,
		sg_is_last(&sg));
	sg_miter_start(&miter, &sg, 1, SG_MITER_TO_SG | SG_MITER_ATOMIC);
	while (sg_miter_next(&miter)) {
		pr_info("sgt: piece %zu at %ld\n", miter.length, (long)((u8 *)miter.addr - buf));
		memset(miter.addr, 0x5a, miter.length);
		total += miter.length;
		pieces++;
	}
	sg_miter_stop(&miter);
	pr_info("sgt: pieces %d total %zu ends %02x %02x %02x %02x\n", pieces, total, buf[99],
		buf[100], buf[5099], buf[5100]);
	scatterwalk_map_and_copy(tag, &sg, 3998, 4, 1);
	scatterwalk_map_and_copy(back, &sg, 3998, 4, 0);
	pr_info("sgt: tag %*phN at %*phN back %*phN\n", 4, tag, 4, buf + 4098, 4, back);
	kfree(buf);
	return 0;
}
static void __exit sgt_exit(void) { }
module_init(sgt_init);
module_exit(sgt_exit);
"""


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_a_scatterlist_is_walked_a_page_at_a_time(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "sgt", SG_USER, flavour)
    # kmalloc(8192) is page-aligned: 100 bytes in, the first page holds 3996 of the 5000.
    assert lines == [
        "sgt: nents 1 virt 1 last 1",
        "sgt: piece 3996 at 100",
        "sgt: piece 1004 at 4096",
        "sgt: pieces 2 total 5000 ends 00 5a 5a 00",
        "sgt: tag 01020304 at 01020304 back 01020304",    # byte 3998 of the list is buf + 4098
    ]
    problems = Problems.of_kernel(kernel)
    assert not problems, problems


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_debians_libchacha20poly1305_passes_its_self_test(flavour):
    """Its init WARNs and fails with -ENODEV unless every vector of
    chacha20poly1305_selftest() matches: Linux's own oracle."""
    modules, build = corpus(flavour)
    kernel, errors = load_then_remove(build, with_dependencies(modules, "libchacha20poly1305"))
    assert not errors
    assert not [r.text for r in kernel.log.records() if "not emulated" in r.text]
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
