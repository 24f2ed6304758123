"""lib/crypto/chacha.c's ChaCha core (kloaderd/lib/crypto/chacha.py): a
kbuild-built module calls chacha_block_generic and hchacha_block_generic on
RFC 7539's and the XChaCha draft's published vectors under Debian 6.1 and
6.12, and reads ZERO_PAGE(0) through the direct map as libchacha20poly1305
does."""

from __future__ import annotations

import struct

import pytest

from kloaderd.lib.crypto.chacha import block
from realkernel import run_kbuilt

CHACHA_USER = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/mm.h>
#include <crypto/algapi.h>
#include <crypto/chacha.h>
MODULE_LICENSE("GPL");
static unsigned int odd_len = 5;		/* not a constant: crypto_xor calls __crypto_xor */
module_param(odd_len, uint, 0);
static const u8 key[32] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f };
static int __init chachat_init(void)
{
	/* RFC 7539 2.3.2: counter 1, nonce 00:00:00:09 00:00:00:4a 00:00:00:00 */
	u8 iv[16] = { 1, 0, 0, 0, 0, 0, 0, 0x09, 0, 0, 0, 0x4a, 0, 0, 0, 0 };
	/* draft-irtf-cfrg-xchacha 2.2.1: the 16-byte HChaCha nonce */
	u8 xnonce[16] = { 0, 0, 0, 0x09, 0, 0, 0, 0x4a, 0, 0, 0, 0, 0x31, 0x41, 0x59, 0x27 };
	u32 state[16], sub[8];
	u8 stream[CHACHA_BLOCK_SIZE];

	chacha_init_generic(state, (const u32 *)key, iv);
	chacha_block_generic(state, stream, 20);
	pr_info("chachat: block %*phN\n", 32, stream);
	pr_info("chachat: block+32 %*phN\n", 32, stream + 32);
	pr_info("chachat: counter %u\n", state[12]);

	state[12] = 0xffffffff;
	chacha_block_generic(state, stream, 12);
	pr_info("chachat: chacha12 %*phN\n", 16, stream);
	pr_info("chachat: wrapped %u\n", state[12]);

	chacha_init_generic(state, (const u32 *)key, xnonce);
	hchacha_block_generic(state, sub, 20);
	pr_info("chachat: hchacha %*phN\n", 32, (u8 *)sub);
	pr_info("chachat: state kept %d\n", state[12] == 0x09000000);

	{	/* what libchacha20poly1305 encrypts for its Poly1305 key */
		const unsigned long *zero = page_address(ZERO_PAGE(0));
		unsigned long any = 0;
		int i;

		for (i = 0; i < PAGE_SIZE / sizeof(long); i++)
			any |= zero[i];
		pr_info("chachat: zero page %d %d\n", (void *)zero != (void *)empty_zero_page, any == 0);
	}
	{
		u8 a[5] = { 0xff, 0x0f, 0xf0, 0x55, 0x01 }, b[5] = { 0x0f, 0x0f, 0x0f, 0xaa, 0x01 }, c[5];

		crypto_xor_cpy(c, a, b, odd_len);
		crypto_xor(a, b, odd_len);
		pr_info("chachat: xor %*phN %*phN\n", 5, c, 5, a);
	}
	chacha_block_generic(state, stream, 8);     /* not a ChaCha round count */
	chacha_block_generic(state, stream, 8);
	return 0;
}
static void __exit chachat_exit(void) { }
module_init(chachat_init);
module_exit(chachat_exit);
"""

# RFC 7539 2.3.2's serialized block, and draft-irtf-cfrg-xchacha-03 2.2.1's subkey.
RFC7539_BLOCK = bytes.fromhex(
    "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
    "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e")
XCHACHA_SUBKEY = "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"


def _chacha12_at_counter_max() -> str:
    """The first 16 bytes of ChaCha12's block at counter 0xffffffff (no published
    vector: from the RFC-checked Python core, which is what the module must match)."""
    key = struct.unpack("<8I", bytes(range(32)))
    state = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *key, 0xFFFFFFFF, 0x09000000, 0x4A000000, 0]
    return block(state, 12)[:16].hex()


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_chacha_block_generic_gives_rfc_7539s_block(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "chachat", CHACHA_USER, flavour)
    assert lines == [
        f"chachat: block {RFC7539_BLOCK[:32].hex()}",
        f"chachat: block+32 {RFC7539_BLOCK[32:].hex()}",
        "chachat: counter 2",                                  # the block counter advanced
        f"chachat: chacha12 {_chacha12_at_counter_max()}",
        "chachat: wrapped 0",                                  # a u32 counter wraps
        f"chachat: hchacha {XCHACHA_SUBKEY}",
        "chachat: state kept 1",                               # hchacha leaves the state alone
        "chachat: zero page 1 1",                              # its direct-map alias, all zeroes
        "chachat: xor f000ffff00 f000ffff00",                  # __crypto_xor, to another buffer and in place
    ]
    log = [r.text for r in kernel.log.records()]
    # Linux's WARN_ON_ONCE for a round count that is neither 20 nor 12: once.
    warnings = [line for line in log if line.startswith("WARNING: CPU: 0 PID:")]
    assert len(warnings) == 1 and " at lib/crypto/chacha.c:21 " in warnings[0]
    assert "W" in kernel.taints


def test_the_python_core_is_rfc_7539s():
    """The Python block function itself, against RFC 7539 2.3.2 (the oracle
    the chacha12 expectation above leans on)."""
    key = struct.unpack("<8I", bytes(range(32)))
    state = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *key, 1, 0x09000000, 0x4A000000, 0]
    assert block(state, 20) == RFC7539_BLOCK
