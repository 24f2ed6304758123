"""fs/namei.c's word-at-a-time name hash (`full_name_hash`, `hashlen_string`,
kloaderd/fs/namei.py) and lib/refcount.c's `refcount_dec_and_lock`: a
module built with the real kbuild computes the hash its own way from the
kernel's primitives (rol64, GOLDEN_RATIO_64) and compares, and walks a
refcount down through the lock; and Debian's rpcsec_gss_krb5, which
stopped at both, loads and unloads clean."""

from __future__ import annotations

import pytest
import trio

from kloaderd.embed import Problems
from kloaderd.kernel.kernel import Kernel, KernelOptions
from kloaderd.kernel.rcu import Rcu
from realkernel import corpus, find_module, run_kbuilt

HASH = r"""
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/module.h>
#include <linux/bitops.h>
#include <linux/hash.h>
#include <linux/refcount.h>
#include <linux/spinlock.h>
#include <linux/stringhash.h>
#include <linux/string.h>

MODULE_LICENSE("GPL");

/* The 64-bit word-at-a-time hash, written from the kernel's primitives. */
static unsigned int reference(unsigned long salt, const char *name, unsigned int len)
{
	unsigned long x = 0, y = salt, a;
	unsigned int i, k;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&a, name + i, 8);
		x ^= a; y ^= x; x = rol64(x, 12); x += y; y = rol64(y, 45); y *= 9;
	}
	for (a = 0, k = 0; i + k < len; k++)
		a |= (unsigned long)(unsigned char)name[i + k] << (8 * k);
	x ^= a;
	y ^= x * GOLDEN_RATIO_64;
	y *= GOLDEN_RATIO_64;
	return y >> 32;
}

static const char *names[] = { "", "a", "krb5", "krb5i", "abcdefg", "abcdefgh", "abcdefghi",
			       "gss_krb5_enctypes-0123456789" };
static DEFINE_SPINLOCK(lock);

static int __init hash_init(void)
{
	int i, good = 0, n = ARRAY_SIZE(names);
	refcount_t r = REFCOUNT_INIT(2);
	int a, b, held, c;

	for (i = 0; i < n; i++) {
		unsigned int len = strlen(names[i]);
		u64 hl = hashlen_string(&lock, names[i]);

		good += full_name_hash(&lock, names[i], len) == reference((unsigned long)&lock, names[i], len) &&
			hashlen_len(hl) == len && hashlen_hash(hl) == reference((unsigned long)&lock, names[i], len) &&
			full_name_hash(NULL, names[i], len) == reference(0, names[i], len);
	}
	pr_info("hashes %d of %d, salted differ %d\n", good, n,
		full_name_hash(NULL, "krb5", 4) != full_name_hash(&lock, "krb5", 4));

	a = refcount_dec_and_lock(&r, &lock);          /* 2 -> 1: false, not locked */
	held = spin_is_locked(&lock);
	b = refcount_dec_and_lock(&r, &lock);          /* 1 -> 0: true, locked */
	pr_info("dec 2: %d locked %d, dec 1: %d locked %d count %u\n", a, held, b,
		spin_is_locked(&lock), refcount_read(&r));
	if (b)
		spin_unlock(&lock);
	refcount_set(&r, REFCOUNT_SATURATED);
	c = refcount_dec_and_lock(&r, &lock);
	pr_info("saturated: %d stays %d\n", c, refcount_read(&r) == REFCOUNT_SATURATED);
	return 0;
}
static void __exit hash_exit(void) {}
module_init(hash_init);
module_exit(hash_exit);
"""


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_name_hashes_match_linuxs_and_refcount_dec_and_lock_locks_at_zero(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "namehash", HASH, flavour)
    assert lines == ["namehash: hashes 8 of 8, salted differ 1",
                     "namehash: dec 2: 0 locked 0, dec 1: 1 locked 1 count 0",
                     "namehash: saturated: 0 stays 1"]


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_rpcsec_gss_krb5_registers_its_pseudoflavors_and_retires_them(flavour):
    """Its init registers the krb5 pseudoflavors (auth domains hashed with
    hashlen_string); its exit puts them through refcount_dec_and_lock, and
    auth_rpcgss's RCU callbacks free each domain with its name after the
    module is gone: nothing reported as leaked, nothing freed twice.
    auth_rpcgss is in use until those callbacks have run, so the removal
    waits for them (rcu_barrier) before removing it."""
    modules, build = corpus(flavour)
    kernel = Kernel(KernelOptions(kernel=str(build)))
    names = ["sunrpc", "auth_rpcgss", "rpcsec_gss_krb5"]

    async def main() -> None:
        for name in names:
            await kernel.init_module(find_module(modules, name))
        await kernel.delete_module("rpcsec_gss_krb5")
        await kernel.subsystem(Rcu).barrier()
        await kernel.delete_module("auth_rpcgss")
        await kernel.delete_module("sunrpc")
        assert not [e for e in kernel.registrations.all() if e.owner is not None]
        await kernel.shutdown()
    trio.run(main)
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
