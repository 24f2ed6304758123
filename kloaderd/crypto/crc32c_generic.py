"""crypto/crc32c_generic.c: the core kernel's "crc32c" (driver
crc32c-generic, priority 100), built in where `CONFIG_CRYPTO_CRC32C=y`
(Debian's kernels, and kloader's own).

It is registered on `crypto_alg_list` when the crypto subsystem starts, as
Linux's subsys_initcall registers it: a real `struct shash_alg` in kernel
memory, so module code reads its digest size, descriptor size and names
where Linux's inline helpers read them.  Its operations are Python:
Castagnoli CRC (reflected polynomial 0x82F63B78), the seed a 4-byte
little-endian key (default ~0), the digest the inverted CRC little-endian.
"""

from __future__ import annotations

import errno
from types import SimpleNamespace
from typing import Any

from .algapi import ALG, BUILTIN_ALGS, CRYPTO_SHASH, SHASH_ALG, SHASH_DESC, TFM

POLY = 0x82F63B78
CHKSUM_DIGEST_SIZE, CHKSUM_BLOCK_SIZE = 4, 1
CRYPTO_ALG_OPTIONAL_KEY = 0x4000


def _table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = crc >> 1 ^ (POLY if crc & 1 else 0)
        table.append(crc)
    return table


TABLE = _table()


def crc32c_le(crc: int, data: bytes) -> int:
    """__crc32c_le(): no inversion in or out, as lib/crc32.c's."""
    for byte in data:
        crc = TABLE[(crc ^ byte) & 0xFF] ^ crc >> 8
    return crc


def _cra_init(mem: Any, tfm_ctx: int) -> int:
    mem.write_u32(tfm_ctx, 0xFFFFFFFF)                      # mctx->key = ~0
    return 0


def _setkey(mem: Any, tfm_ctx: int, key: int, keylen: int) -> int:
    if keylen != 4:
        return -errno.EINVAL
    mem.write_u32(tfm_ctx, mem.read_u32(key))
    return 0


def _init(mem: Any, desc_ctx: int, key: int) -> int:
    mem.write_u32(desc_ctx, mem.read_u32(key))              # ctx->crc = mctx->key
    return 0


def _update(mem: Any, desc_ctx: int, data: int, length: int) -> int:
    mem.write_u32(desc_ctx, crc32c_le(mem.read_u32(desc_ctx), mem.read(data, length)))
    return 0


def _final(mem: Any, desc_ctx: int, out: int) -> int:
    mem.write(out, (~mem.read_u32(desc_ctx) & 0xFFFFFFFF).to_bytes(4, "little"))
    return 0


def _finup(mem: Any, desc_ctx: int, data: int, length: int, out: int) -> int:
    _update(mem, desc_ctx, data, length)
    return _final(mem, desc_ctx, out)


def _digest(mem: Any, desc_ctx: int, key: int, data: int, length: int, out: int) -> int:
    _init(mem, desc_ctx, key)
    return _finup(mem, desc_ctx, data, length, out)


def register(kernel: Any, crypto: Any) -> None:
    """Put crc32c-generic on the list, when the kernel builds it in."""
    profile = kernel.profile
    if profile is not None and not profile.enabled("CRYPTO_CRC32C"):
        return
    mem, shash, cra = kernel.mem, kernel.layouts[SHASH_ALG], kernel.layouts[ALG]
    alg = kernel.slab.alloc(shash.size, None, zero=True)
    base = alg + shash.base
    mem.write_u32(alg + shash.descsize, 4)                  # struct chksum_desc_ctx
    mem.write_u32(alg + shash.digestsize, CHKSUM_DIGEST_SIZE)
    mem.write_u32(base + cra.cra_flags, 0xE | CRYPTO_ALG_OPTIONAL_KEY | 0x400)   # shash, tested
    mem.write_u32(base + cra.cra_blocksize, CHKSUM_BLOCK_SIZE)
    mem.write_u32(base + cra.cra_ctxsize, 4)                # struct chksum_ctx
    mem.write_u32(base + cra.cra_priority, 100)
    mem.write_u32(base + cra.cra_refcnt, 1)
    mem.write(base + cra.cra_name, b"crc32c\0")
    mem.write(base + cra.cra_driver_name, b"crc32c-generic\0")
    mem.write_u64(base + cra.cra_type, crypto.type_object("shash"))
    mem.write_u64(base + cra.cra_users, base + cra.cra_users)        # empty
    mem.write_u64(base + cra.cra_users + 8, base + cra.cra_users)
    boot = SimpleNamespace(kernel=kernel, mem=mem, module=None, task=None)
    crypto.algs.add_tail(boot, base)
    # mctx->key of a desc's context: in desc->tfm's context
    desc = kernel.layouts[SHASH_DESC]
    back, key_at = desc.__ctx - desc.tfm, kernel.layouts[CRYPTO_SHASH].base + kernel.layouts[TFM].__crt_ctx

    def key(mem: Any, desc_ctx: int) -> int:
        return mem.read_u64(desc_ctx - back) + key_at
    crypto.builtins[base] = {
        "cra_init": _cra_init, "setkey": _setkey, "update": _update, "final": _final, "finup": _finup,
        "init": lambda mem, ctx_: _init(mem, ctx_, key(mem, ctx_)),
        "digest": lambda mem, ctx_, *args: _digest(mem, ctx_, key(mem, ctx_), *args)}


BUILTIN_ALGS.append(register)
