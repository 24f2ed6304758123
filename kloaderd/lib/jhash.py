"""include/linux/jhash.h: Bob Jenkins' lookup3 hash as Linux uses it
(tcp_register_congestion_control keys algorithms by it)."""

from __future__ import annotations

JHASH_INITVAL = 0xDEADBEEF
_M = 0xFFFFFFFF


def _rol(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & _M; a ^= _rol(c, 4); c = (c + b) & _M
    b = (b - a) & _M; b ^= _rol(a, 6); a = (a + c) & _M
    c = (c - b) & _M; c ^= _rol(b, 8); b = (b + a) & _M
    a = (a - c) & _M; a ^= _rol(c, 16); c = (c + b) & _M
    b = (b - a) & _M; b ^= _rol(a, 19); a = (a + c) & _M
    c = (c - b) & _M; c ^= _rol(b, 4); b = (b + a) & _M
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    c ^= b; c = (c - _rol(b, 14)) & _M
    a ^= c; a = (a - _rol(c, 11)) & _M
    b ^= a; b = (b - _rol(a, 25)) & _M
    c ^= b; c = (c - _rol(b, 16)) & _M
    a ^= c; a = (a - _rol(c, 4)) & _M
    b ^= a; b = (b - _rol(a, 14)) & _M
    c ^= b; c = (c - _rol(b, 24)) & _M
    return c


def jhash(key: bytes, initval: int) -> int:
    """jhash(key, len(key), initval)."""
    length = len(key)
    a = b = c = (JHASH_INITVAL + length + initval) & _M
    k = key
    while len(k) > 12:
        a = (a + int.from_bytes(k[0:4], "little")) & _M
        b = (b + int.from_bytes(k[4:8], "little")) & _M
        c = (c + int.from_bytes(k[8:12], "little")) & _M
        a, b, c = _mix(a, b, c)
        k = k[12:]
    if not k:
        return c
    tail = k.ljust(12, b"\0")
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    return _final(a, b, c)


def jhash2(words: list[int], initval: int) -> int:
    """jhash2(k, length, initval): the same hash over u32 words."""
    length = len(words)
    a = b = c = (JHASH_INITVAL + (length << 2) + initval) & _M
    k = words
    while len(k) > 3:
        a, b, c = (a + k[0]) & _M, (b + k[1]) & _M, (c + k[2]) & _M
        a, b, c = _mix(a, b, c)
        k = k[3:]
    if not k:
        return c
    k = [*k, 0, 0][:3]
    return _final((a + k[0]) & _M, (b + k[1]) & _M, (c + k[2]) & _M)
