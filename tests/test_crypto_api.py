"""The crypto API's lookups and shash transforms (crypto/api.py, shash.py,
crc32c_generic.py) under the Debian 6.1 profile: a kbuild-built module and
the corpus's libcrc32c, whose `crypto_alloc_shash("crc32c")` 126 modules
wait on."""

from __future__ import annotations

import pytest

from kloaderd.crypto.crc32c_generic import crc32c_le
from kloaderd.embed import Problems
from realkernel import corpus, find_module, load_then_remove, run_kbuilt

SHASH_USER = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/err.h>
#include <crypto/hash.h>
MODULE_LICENSE("GPL");
static struct crypto_shash *tfm;
static int __init shash_user_init(void)
{
	struct crypto_shash *none;
	SHASH_DESC_ON_STACK(desc, tfm);
	u32 seed = 0, *ctx;
	u8 out[4];
	int err;

	none = crypto_alloc_shash("no-such-hash", 0, 0);
	pr_info("shash_user: unknown %ld\n", PTR_ERR(none));
	tfm = crypto_alloc_shash("crc32c", 0, 0);
	if (IS_ERR(tfm))
		return PTR_ERR(tfm);
	pr_info("shash_user: %s %s digestsize %u descsize %u\n", crypto_shash_alg_name(tfm),
		crypto_shash_driver_name(tfm), crypto_shash_digestsize(tfm),
		crypto_shash_descsize(tfm));
	err = crypto_shash_tfm_digest(tfm, "123456789", 9, out);
	pr_info("shash_user: digest %d %*phN\n", err, 4, out);
	/* what libcrc32c's crc32c() does: seed the descriptor, update, read it back */
	desc->tfm = tfm;
	ctx = shash_desc_ctx(desc);
	*ctx = ~0;
	err = crypto_shash_update(desc, "1234", 4);
	err |= crypto_shash_update(desc, "56789", 5);
	pr_info("shash_user: update %d %08x\n", err, ~*ctx);
	pr_info("shash_user: short key %d\n", crypto_shash_setkey(tfm, (u8 *)&seed, 3));
	err = crypto_shash_setkey(tfm, (u8 *)&seed, 4);
	err |= crypto_shash_digest(desc, "123456789", 9, out);
	pr_info("shash_user: seeded %d %*phN\n", err, 4, out);
	return 0;
}
static void __exit shash_user_exit(void)
{
	crypto_free_shash(tfm);
	pr_info("shash_user: freed\n");
}
module_init(shash_user_init);
module_exit(shash_user_exit);
"""


def test_crc32c_is_castagnoli():
    assert ~crc32c_le(0xFFFFFFFF, b"123456789") & 0xFFFFFFFF == 0xE3069283   # the check value
    assert crc32c_le(0x12345678, b"") == 0x12345678


@pytest.mark.slow          # builds with the real kernel's kbuild
def test_a_module_hashes_with_the_built_in_crc32c(tmp_path):
    kernel, lines = run_kbuilt(tmp_path, "shash_user", SHASH_USER)
    seeded = (~crc32c_le(0, b"123456789") & 0xFFFFFFFF).to_bytes(4, "little").hex()
    assert lines == [
        "shash_user: unknown -2",                       # no such algorithm, no module for it
        "shash_user: crc32c crc32c-generic digestsize 4 descsize 4",
        "shash_user: digest 0 839206e3",                # 0xe3069283, little-endian
        "shash_user: update 0 e3069283",
        "shash_user: short key -22",
        f"shash_user: seeded 0 {seeded}",
        "shash_user: freed"]
    problems = Problems.of_kernel(kernel)
    assert not problems, problems


def test_libcrc32c_finds_crc32c_and_lets_it_go():
    modules, build = corpus("6.1")
    kernel, errors = load_then_remove(build, [find_module(modules, "libcrc32c")])
    assert not errors
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
    assert not [e for e in kernel.registrations.all() if e.owner is not None]
    assert kernel.slab.usage("libcrc32c") == (0, 0)          # its transform was freed
