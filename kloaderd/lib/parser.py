"""lib/parser.c: option strings matched against a table of patterns
(`match_token`) and the pieces read out (`match_int`, `match_u64`,
`match_strdup`), what filesystems and drivers parse "name=value" options
with.

A pattern is literal text with conversions: `%s` (the rest, or at most N
bytes for `%Ns`: never empty), `%d`/`%u` (base 0: a 0x or 0 prefix picks
16 or 8), `%o`, `%x`, and `%%`; the whole string must match.  The table
ends with an entry whose pattern is NULL, which matches anything: its
token is the answer for no match.  Each conversion fills one
`substring_t {from, to}` of `args` (at most MAX_OPT_ARGS).
"""

from __future__ import annotations

import errno
from typing import Any

from ..errors import KernelError
from ..kernel.api import export
from ..kernel.layouts import struct
from ..kernel.params import ParamError, kstrtoull

MATCH_TOKEN = struct("struct match_token", "linux/parser.h", "token", "pattern")
SUBSTRING = struct("substring_t", "linux/parser.h", "from", "to")
STRUCTS = (MATCH_TOKEN, SUBSTRING)   # what these functions read at the kernel's offsets
MAX_OPT_ARGS = 3
MAX_TABLE = 4096                # a table without its NULL pattern stops here
_TEXT_MAX = 4096
_DIGITS = "0123456789abcdef"


def simple_strtoull(text: bytes, base: int) -> tuple[int, int]:
    """(value, bytes used) as simple_strtoull: prefixes by base, no error."""
    used = 0
    if base in (0, 16) and text[:2].lower() == b"0x" and text[2:3] and text[2:3].lower() in b"0123456789abcdef":
        base, used = 16, 2
    elif base == 0:
        base = 8 if text[:1] == b"0" else 10
    value = 0
    for c in text[used:].lower():
        digit = _DIGITS.find(chr(c))
        if digit < 0 or digit >= base:
            break
        value = (value * base + digit) & ((1 << 64) - 1)
        used += 1
    return value, used


def simple_strtoll(text: bytes, base: int) -> tuple[int, int]:
    if text[:1] == b"-":
        value, used = simple_strtoull(text[1:], base)
        return -value, used + 1 if used else 0
    return simple_strtoull(text, base)


def match_one(text: bytes, pattern: bytes) -> list[tuple[int, int]] | None:
    """The (from, to) offsets of each conversion where `pattern` matches all of `text`."""
    args: list[tuple[int, int]] = []
    s = 0
    while True:
        meta = pattern.find(b"%")
        if meta < 0:
            return args if pattern == text[s:] else None
        if text[s:s + meta] != pattern[:meta]:
            return None
        s, pattern = s + meta, pattern[meta + 1:]
        length = -1
        digits = len(pattern) - len(pattern.lstrip(b"0123456789"))
        if digits:
            length, pattern = int(pattern[:digits]), pattern[digits:]
        elif pattern[:1] == b"%":
            if text[s:s + 1] != b"%":
                return None
            s, pattern = s + 1, pattern[1:]
            continue
        if len(args) >= MAX_OPT_ARGS:
            return None
        kind, pattern = pattern[:1], pattern[1:]
        rest = text[s:]
        if kind == b"s":
            if not rest:
                return None
            used = len(rest) if length == -1 or length > len(rest) else length
        elif kind in (b"d", b"u", b"o", b"x"):
            base = {b"d": 0, b"u": 0, b"o": 8, b"x": 16}[kind]
            used = (simple_strtoll if kind == b"d" else simple_strtoull)(rest, base)[1]
            if not used:
                return None
        else:
            return None
        args.append((s, s + used))
        s += used


@export("match_token", "int match_token(char *s, const match_table_t table, substring_t args[])", nargs=3)
def match_token(ctx: Any, s: int, table: int, args: int) -> int:
    mem, entry, sub = ctx.mem, ctx.kernel.layouts[MATCH_TOKEN], ctx.kernel.layouts[SUBSTRING]
    text = mem.read_cstr(s, _TEXT_MAX)
    for i in range(MAX_TABLE):
        at = table + i * entry.size
        pattern = mem.read_u64(at + entry.pattern)
        found = [] if not pattern else match_one(text, mem.read_cstr(pattern, _TEXT_MAX))
        if found is not None:
            for n, (start, end) in enumerate(found):
                mem.write_u64(args + n * sub.size + sub.from_, s + start)
                mem.write_u64(args + n * sub.size + sub.to, s + end)
            token = mem.read_u32(at + entry.token)
            return token - (1 << 32) if token & 0x80000000 else token
    raise KernelError(errno.E2BIG, f"match_token: the table at {table:#x} has no NULL pattern "
                                   f"in its first {MAX_TABLE} entries")


def _piece(ctx: Any, sub_at: int) -> bytes:
    sub = ctx.kernel.layouts[SUBSTRING]
    start, end = ctx.mem.read_u64(sub_at + sub.from_), ctx.mem.read_u64(sub_at + sub.to)
    return ctx.mem.read(start, max(0, min(end - start, _TEXT_MAX)))


@export("match_int", "int match_int(substring_t *s, int *result)", nargs=2)
def match_int(ctx: Any, s: int, result: int) -> int:
    text = _piece(ctx, s)
    value, used = simple_strtoll(text, 0)
    if not used:
        return -errno.EINVAL
    if not -(1 << 31) <= value < 1 << 31:
        return -errno.ERANGE
    ctx.mem.write_u32(result, value & 0xFFFFFFFF)
    return 0


@export("match_u64", "int match_u64(substring_t *s, u64 *result)", nargs=2)
def match_u64(ctx: Any, s: int, result: int) -> int:
    try:
        value = kstrtoull(_piece(ctx, s), 0)
    except ParamError as exc:
        return -exc.errno
    ctx.mem.write_u64(result, value)
    return 0


@export("match_strdup", "char *match_strdup(const substring_t *s)", nargs=1)
def match_strdup(ctx: Any, s: int) -> int:
    """kmemdup_nul of the piece: the caller's to kfree."""
    data = _piece(ctx, s) + b"\0"
    address = ctx.kernel.slab.alloc(len(data), ctx.module.name if ctx.module is not None else None)
    if address:
        ctx.mem.write(address, data)
    return address
