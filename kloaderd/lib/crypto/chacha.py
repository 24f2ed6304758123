"""lib/crypto/chacha.c: the ChaCha core (RFC 7539) as the kernel exports it.

`chacha_block_generic(state, stream, nrounds)` permutes a copy of the 16
native-endian words at `state`, adds `state` back, writes the 64 bytes
little-endian to `stream` and increments the block counter `state[12]`
(a u32 that wraps, as Linux's does).  `hchacha_block_generic(state, out,
nrounds)` (XChaCha's subkey step) writes words 0-3 and 12-15 of the
permuted state, native-endian, without the addition.  libchacha's
`chacha_crypt_generic` and the x86 `chacha-x86_64` glue (modules of their
own) build the stream cipher on them.

As Linux: a round count other than 20 or 12 is WARN_ON_ONCE'd at
lib/crypto/chacha.c:21 and then used anyway (the loop runs double rounds
while i < nrounds, so 0 or a negative count is no round, an odd one rounds
up).  Any release: neither reads a kernel structure.
"""

from __future__ import annotations

import struct
from typing import Any

from ...kernel.api import export
from ...kernel.panic import warn_once

_M = 0xFFFFFFFF
_WORDS = struct.Struct("<16I")
# The quarter rounds of one double round: four down the columns, four along the diagonals.
_QUARTERS = ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
             (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14))


def _signed(value: int) -> int:
    value &= _M
    return value - (1 << 32) if value >> 31 else value


def _quarter(x: list[int], a: int, b: int, c: int, d: int) -> None:
    xa, xb, xc, xd = x[a], x[b], x[c], x[d]
    xa = (xa + xb) & _M; xd ^= xa; xd = ((xd << 16) | (xd >> 16)) & _M
    xc = (xc + xd) & _M; xb ^= xc; xb = ((xb << 12) | (xb >> 20)) & _M
    xa = (xa + xb) & _M; xd ^= xa; xd = ((xd << 8) | (xd >> 24)) & _M
    xc = (xc + xd) & _M; xb ^= xc; xb = ((xb << 7) | (xb >> 25)) & _M
    x[a], x[b], x[c], x[d] = xa, xb, xc, xd


def permute(words: tuple[int, ...] | list[int], nrounds: int) -> list[int]:
    """chacha_permute(): `nrounds` rounds over a copy of the 16 words (no WARN)."""
    x = list(words)
    for _ in range(0, nrounds, 2):
        for a, b, c, d in _QUARTERS:
            _quarter(x, a, b, c, d)
    return x


def block(state: tuple[int, ...] | list[int], nrounds: int) -> bytes:
    """The 64-byte keystream block of `state` (the counter not advanced)."""
    x = permute(state, nrounds)
    return _WORDS.pack(*((x[i] + state[i]) & _M for i in range(16)))


def hchacha(state: tuple[int, ...] | list[int], nrounds: int) -> tuple[int, ...]:
    """HChaCha's 8 output words: the permuted state's words 0-3 and 12-15."""
    x = permute(state, nrounds)
    return (*x[0:4], *x[12:16])


def _rounds(ctx: Any, nrounds: int) -> int:
    nrounds = _signed(nrounds)
    if nrounds not in (20, 12):
        warn_once(ctx, None, "lib/crypto/chacha.c:21", "chacha_permute")
    return nrounds


@export("chacha_block_generic", "void chacha_block_generic(u32 *state, u8 *stream, int nrounds)",
        nargs=3)
def chacha_block_generic(ctx: Any, state: int, stream: int, nrounds: int) -> None:
    mem = ctx.mem
    words = _WORDS.unpack(mem.read(state, 64))          # x86-64: native is little-endian
    ctx.mem.write(stream, block(words, _rounds(ctx, nrounds)))
    mem.write_u32(state + 12 * 4, (words[12] + 1) & _M)


@export("hchacha_block_generic", "void hchacha_block_generic(const u32 *state, u32 *stream, int nrounds)",
        nargs=3)
def hchacha_block_generic(ctx: Any, state: int, stream: int, nrounds: int) -> None:
    words = _WORDS.unpack(ctx.mem.read(state, 64))
    ctx.mem.write(stream, struct.pack("<8I", *hchacha(words, _rounds(ctx, nrounds))))
