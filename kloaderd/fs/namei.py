"""fs/namei.c's string hashes: `full_name_hash` and `hashlen_string`, the
dcache's name hash that modules also use for their own tables (sunrpc's
and nfsd's `hash_str()` over an auth domain's or a client's name;
rpcsec_gss_krb5's init reaches it through gss_mech_register).

x86-64 has CONFIG_DCACHE_WORD_ACCESS, so Linux hashes a word (8 bytes,
little-endian) at a time: each whole word is mixed into (x, y) by
HASH_MIX, the last partial word (the bytes before the length or the NUL)
is XORed into x, and fold_hash() multiplies by GOLDEN_RATIO_64 down to 32
bits.  kloader computes the same values, so a hash a module stored with
one function matches what it looks up with the other, and a value read
from Linux matches kloader's.  `salt` is the starting y (a dentry's parent
in the dcache; NULL for modules' tables).  A name is read to its NUL
however long; an unreadable one faults as Linux's load would.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export

MASK64 = (1 << 64) - 1
GOLDEN_RATIO_64 = 0x61C8864680B583EB
WORD = 8


def _rol64(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (64 - shift))) & MASK64


def _mix(x: int, y: int, a: int) -> tuple[int, int]:
    """HASH_MIX(x, y, a), 64-bit."""
    x ^= a
    y ^= x
    x = _rol64(x, 12)
    x = (x + y) & MASK64
    y = _rol64(y, 45)
    y = (y * 9) & MASK64
    return x, y


def _fold(x: int, y: int) -> int:
    y ^= (x * GOLDEN_RATIO_64) & MASK64
    y = (y * GOLDEN_RATIO_64) & MASK64
    return y >> 32


def name_hash(salt: int, name: bytes) -> int:
    """Linux's word-at-a-time hash of `name`, as full_name_hash returns it."""
    x, y = 0, salt & MASK64
    whole = len(name) - len(name) % WORD
    for at in range(0, whole, WORD):
        x, y = _mix(x, y, int.from_bytes(name[at:at + WORD], "little"))
    x ^= int.from_bytes(name[whole:], "little")        # the partial word's bytes, 0 if none
    return _fold(x, y)


def _read_name(ctx: Any, address: int, length: int | None) -> bytes:
    if length is not None:
        return ctx.mem.read(address, length) if length else b""
    out = bytearray()
    while True:                          # to its NUL, however long (Linux has no bound)
        chunk = ctx.mem.read_cstr(address + len(out), 4096)
        out += chunk
        if len(chunk) < 4096:
            return bytes(out)


@export("full_name_hash", "unsigned int full_name_hash(const void *salt, const char *name, unsigned int len)",
        nargs=3)
def full_name_hash(ctx: Any, salt: int, name: int, length: int) -> int:
    return name_hash(salt, _read_name(ctx, name, length & 0xFFFFFFFF))


@export("hashlen_string", "u64 hashlen_string(const void *salt, const char *name)", nargs=2)
def hashlen_string(ctx: Any, salt: int, name: int) -> int:
    """hashlen_create(hash, len): the length in the high 32 bits."""
    text = _read_name(ctx, name, None)
    return (len(text) & 0xFFFFFFFF) << 32 | name_hash(salt, text)
