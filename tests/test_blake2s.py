"""lib/crypto/blake2s.c (kloaderd/lib/crypto/blake2s.py): a kbuild-built
module hashes with the header's blake2s() and the incremental API under
Debian 6.1 and 6.12; Python's hashlib.blake2s is the oracle."""

from __future__ import annotations

import hashlib

import pytest

from realkernel import run_kbuilt

B2S_USER = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/slab.h>
#include <crypto/blake2s.h>
MODULE_LICENSE("GPL");
static int __init b2s_init(void)
{
	static const u8 key[BLAKE2S_KEY_SIZE] = "0123456789abcdef0123456789abcdef";
	struct blake2s_state state;
	u8 out[BLAKE2S_HASH_SIZE], *msg = kmalloc(200, GFP_KERNEL);
	int i;

	if (!msg)
		return -ENOMEM;
	for (i = 0; i < 200; i++)
		msg[i] = i;
	blake2s(out, (const u8 *)"abc", NULL, BLAKE2S_HASH_SIZE, 3, 0);
	pr_info("b2s: abc %*phN\n", 32, out);
	blake2s(out, msg, key, 16, 200, BLAKE2S_KEY_SIZE);
	pr_info("b2s: keyed16 %*phN\n", 16, out);
	blake2s_init(&state, BLAKE2S_HASH_SIZE);
	blake2s_update(&state, msg, 1);
	blake2s_update(&state, msg + 1, 63);
	blake2s_update(&state, msg + 64, 0);
	blake2s_update(&state, msg + 64, 136);
	blake2s_final(&state, out);
	pr_info("b2s: pieces %*phN wiped %d\n", 32, out, state.outlen == 0 && state.h[0] == 0);
	kfree(msg);
	return 0;
}
static void __exit b2s_exit(void) { }
module_init(b2s_init);
module_exit(b2s_exit);
"""


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_blake2s_is_rfc_7693s(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "b2s", B2S_USER, flavour)
    msg = bytes(range(200))
    key = b"0123456789abcdef0123456789abcdef"
    assert lines == [
        f"b2s: abc {hashlib.blake2s(b'abc').hexdigest()}",
        f"b2s: keyed16 {hashlib.blake2s(msg, key=key, digest_size=16).hexdigest()}",
        f"b2s: pieces {hashlib.blake2s(msg).hexdigest()} wiped 1",
    ]


def test_debians_wireguard_loads_and_unloads_clean_on_6_1():
    """With its dependencies (libchacha20poly1305, curve25519, ...): its init
    hashes with blake2s and registers its link type.  6.12's wireguard also
    registers a VM-fork notifier, not emulated yet."""
    from kloaderd.embed import Problems
    from realkernel import corpus, load_then_remove, with_dependencies
    modules, build = corpus("6.1")
    kernel, errors = load_then_remove(build, with_dependencies(modules, "wireguard"))
    assert not errors
    log = [r.text for r in kernel.log.records()]
    assert not [line for line in log if "not emulated" in line or "leaked" in line]
    assert "wireguard: WireGuard 1.0.0 loaded. See www.wireguard.com for information." in log
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
