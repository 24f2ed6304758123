"""lib/crypto/blake2s.c: BLAKE2s (RFC 7693) over the caller's
`struct blake2s_state`, as WireGuard's handshake hashes with it.

`blake2s_init`/`blake2s_init_key` are header inlines that fill the state;
`blake2s_update` buffers input and compresses every full block but the
last (the final block is compressed by `blake2s_final`, flagged last), and
`blake2s_final` writes `outlen` bytes of the little-endian chaining value
and wipes the state, as Linux's.  The state is read at the running
kernel's offsets; the compression is the generic one (the x86 glue's SIMD
versions compute the same).
"""

from __future__ import annotations

import struct
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct as cstruct

STATE = cstruct("struct blake2s_state", "crypto/blake2s.h", "h", "t", "f", "buf", "buflen", "outlen")
STRUCTS = (STATE,)

BLOCK = 64
_M = 0xFFFFFFFF
IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)
SIGMA = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    (14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3),
    (11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4),
    (7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8),
    (9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13),
    (2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9),
    (12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11),
    (13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10),
    (6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5),
    (10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0),
)


def _ror(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & _M


def _g(v: list[int], a: int, b: int, c: int, d: int, x: int, y: int) -> None:
    v[a] = (v[a] + v[b] + x) & _M; v[d] = _ror(v[d] ^ v[a], 16)
    v[c] = (v[c] + v[d]) & _M; v[b] = _ror(v[b] ^ v[c], 12)
    v[a] = (v[a] + v[b] + y) & _M; v[d] = _ror(v[d] ^ v[a], 8)
    v[c] = (v[c] + v[d]) & _M; v[b] = _ror(v[b] ^ v[c], 7)


def compress(h: list[int], t: int, f: tuple[int, int], block: bytes) -> list[int]:
    """One block: the new chaining value, `t` the byte count including it."""
    m = struct.unpack("<16I", block)
    v = [*h, *IV]
    v[12] ^= t & _M; v[13] ^= (t >> 32) & _M; v[14] ^= f[0]; v[15] ^= f[1]
    for s in SIGMA:
        _g(v, 0, 4, 8, 12, m[s[0]], m[s[1]]); _g(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        _g(v, 2, 6, 10, 14, m[s[4]], m[s[5]]); _g(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        _g(v, 0, 5, 10, 15, m[s[8]], m[s[9]]); _g(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        _g(v, 2, 7, 8, 13, m[s[12]], m[s[13]]); _g(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    return [h[i] ^ v[i] ^ v[i + 8] for i in range(8)]


class _State:
    """A guest blake2s_state, read whole and written back."""

    def __init__(self, ctx: Any, addr: int) -> None:
        self.mem, self.addr, self.at = ctx.mem, addr, ctx.kernel.layouts[STATE]
        mem, at = self.mem, self.at
        self.h = list(struct.unpack("<8I", mem.read(addr + at.h, 32)))
        t0, t1 = struct.unpack("<2I", mem.read(addr + at.t, 8))
        self.t = t0 | t1 << 32
        self.f = struct.unpack("<2I", mem.read(addr + at.f, 8))
        self.buf = bytearray(mem.read(addr + at.buf, BLOCK))
        self.buflen = mem.read_u32(addr + at.buflen)

    def compress(self, block: bytes, inc: int) -> None:
        self.t = (self.t + inc) & ((1 << 64) - 1)
        self.h = compress(self.h, self.t, self.f, block)

    def store(self) -> None:
        mem, at, addr = self.mem, self.at, self.addr
        mem.write(addr + at.h, struct.pack("<8I", *self.h))
        mem.write(addr + at.t, struct.pack("<2I", self.t & _M, self.t >> 32))
        mem.write(addr + at.f, struct.pack("<2I", *self.f))
        mem.write(addr + at.buf, bytes(self.buf))
        mem.write_u32(addr + at.buflen, self.buflen)


@export("blake2s_update", "void blake2s_update(struct blake2s_state *state, const u8 *in, size_t inlen)",
        nargs=3)
def blake2s_update(ctx: Any, state: int, in_: int, inlen: int) -> None:
    if not inlen:
        return
    data = ctx.mem.read(in_, inlen)
    st = _State(ctx, state)
    fill = BLOCK - st.buflen
    if len(data) > fill:
        st.buf[st.buflen:] = data[:fill]
        st.compress(bytes(st.buf), BLOCK)
        st.buflen, data = 0, data[fill:]
    while len(data) > BLOCK:                 # every full block but the last
        st.compress(data[:BLOCK], BLOCK)
        data = data[BLOCK:]
    st.buf[st.buflen:st.buflen + len(data)] = data
    st.buflen += len(data)
    st.store()


@export("blake2s_final", "void blake2s_final(struct blake2s_state *state, u8 *out)", nargs=2)
def blake2s_final(ctx: Any, state: int, out: int) -> None:
    st = _State(ctx, state)
    st.f = (_M, st.f[1])                                     # blake2s_set_lastblock
    st.buf[st.buflen:] = bytes(BLOCK - st.buflen)
    st.compress(bytes(st.buf), st.buflen)
    outlen = ctx.mem.read_u32(state + st.at.outlen)
    ctx.mem.write(out, struct.pack("<8I", *st.h)[:min(outlen, 32)])
    ctx.mem.write(state, bytes(st.at.size))                 # memzero_explicit
