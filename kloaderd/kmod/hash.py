"""The iteration order of kmod's hash table (shared/hash.c).

depmod writes `modules.symbols` by walking its symbol hash table, and orders
modules it found outside `modules.order` by walking its module-name table,
so an identical file needs the identical walk: buckets in index order, each
bucket's keys sorted by strcmp, the bucket chosen by Paul Hsieh's
SuperFastHash of the key masked by the (power of two) bucket count.
"""

from __future__ import annotations

import struct
from typing import Iterable

_M = 0xFFFFFFFF


def _schar(b: int) -> int:
    """A C `char` on x86: signed."""
    return b - 256 if b >= 128 else b


def superfast(key: bytes) -> int:
    """hash_superfast(): 32-bit, little-endian 16-bit reads, signed chars for the tail."""
    n = len(key)
    h = n
    rem = n & 3
    i = n - rem
    if i:
        halves = struct.unpack(f"<{i >> 1}H", key[:i])
        for j in range(0, i >> 1, 2):
            h = (h + halves[j]) & _M
            h = ((h << 16) ^ (halves[j + 1] << 11) ^ h) & _M
            h = (h + (h >> 11)) & _M
    if rem == 3:
        h = (h + (key[i] | key[i + 1] << 8)) & _M
        h ^= (h << 16) & _M
        h ^= (_schar(key[i + 2]) << 18) & _M
        h = (h + (h >> 11)) & _M
    elif rem == 2:
        h = (h + (key[i] | key[i + 1] << 8)) & _M
        h ^= (h << 11) & _M
        h = (h + (h >> 17)) & _M
    elif rem == 1:
        h = (h + _schar(key[i])) & _M
        h ^= (h << 10) & _M
        h = (h + (h >> 1)) & _M
    h ^= (h << 3) & _M
    h = (h + (h >> 5)) & _M
    h ^= (h << 4) & _M
    h = (h + (h >> 17)) & _M
    h ^= (h << 25) & _M
    h = (h + (h >> 6)) & _M
    return h


def buckets_for(n: int) -> int:
    """ALIGN_POWER2: the bucket count hash_new() really uses."""
    p = 1
    while p < n:
        p <<= 1
    return p


def walk_order(keys: Iterable[str], n_buckets: int) -> list[str]:
    """The keys (unique) in the order hash_iter_next() yields them."""
    mask = buckets_for(n_buckets) - 1
    encoded = [(superfast(k.encode()) & mask, k.encode(), k) for k in keys]
    encoded.sort(key=lambda t: (t[0], t[1]))
    return [k for _, _, k in encoded]
