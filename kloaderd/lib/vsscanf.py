"""lib/vsprintf.c's scanner: `sscanf` and `vsscanf`, what bonding's option
parser (`%llu`, `%32s`) and many sysfs `store` handlers read their input
with.

Linux's rules, not C's: white space in the format matches any amount (also
none) in the input (`isspace` of `_ctype`, so 0xa0 too); other format bytes
must match exactly; `%*…` skips the input up to its next white space;
a field width of 0 ends the scan; the qualifiers `hh h l ll L z` choose the
stored width (1, 2, 8, 8, 8, 8 bytes; none: 4); `%n` stores the bytes read
so far and is not counted; `%c` copies width (1) bytes; `%s` skips leading
white space and copies up to width (32767) bytes and a NUL; `%[set]` and
`%[^set]` need a width, have no ranges, and must match at least one byte;
`d i u o x X` parse as `simple_strtoull`/`simple_strtoll` (`i` by prefix)
after leading white space, a width cutting digits off the value, and end
the scan when no digit follows; anything else ends it.  The count of
conversions stored is returned.  The input is read up to its NUL (at most
STRING_LIMIT bytes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..kernel.api import export
from ..kernel.printk import VaList
from .ctype import CTYPE
from .parser import simple_strtoull

_S, _D, _X = 0x20, 0x04, 0x40
SHRT_MAX = 0x7FFF
STRING_LIMIT = 1 << 16
_SIZES = {"H": 1, "h": 2, "l": 8, "L": 8, "z": 8}


@dataclass
class Store:
    """One value the scan writes through the next pointer argument: an
    integer of `size` bytes, or `data` bytes."""
    size: int = 0
    value: int = 0
    data: bytes = b""


def _space(c: int) -> bool:
    return bool(CTYPE[c] & _S)


class _Text:
    """A NUL-terminated string: reading past its end reads NULs."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __getitem__(self, i: int) -> int:
        return self.data[i] if i < len(self.data) else 0

    def skip_spaces(self, i: int) -> int:
        while _space(self[i]):
            i += 1
        return i


def _skip_atoi(fmt: _Text, i: int) -> tuple[int, int]:
    value = 0
    while CTYPE[fmt[i]] & _D:
        value = value * 10 + fmt[i] - 0x30
        i += 1
    return value, i


def _s16(value: int) -> int:
    value &= 0xFFFF
    return value - 0x10000 if value & 0x8000 else value


def _integer(text: _Text, s: int, base: int, signed: bool, width: int) -> tuple[int, int] | None:
    """(value, input consumed) of one integer conversion from `s` (white
    space already skipped), or None when no digit follows."""
    digit = text[s]
    if signed and digit == 0x2D:
        digit = text[s + 1]
    klass = CTYPE[digit]
    if not digit or (base == 16 and not klass & (_D | _X)) or (base in (10, 0) and not klass & _D) or (
            base == 8 and (not klass & _D or digit > 0x37)):
        return None
    negative = signed and text[s] == 0x2D
    rest = text.data[s + negative:]
    value, used = simple_strtoull(rest, base)
    used += negative
    if width > 0 and used > width:
        if base == 0:
            head = text.data[s:s + 3].lower()
            base = 16 if head[:2] == b"0x" and head[2:3] and CTYPE[head[2]] & (_D | _X) else (
                8 if head[:1] == b"0" else 10)
        while used > width:
            value //= base                      # div_s64 of the magnitude truncates toward zero
            used -= 1
    return (-value if negative else value), used


def scan(buf: bytes, fmt_bytes: bytes) -> Iterator[Store]:
    """The stores `vsscanf(buf, fmt)` makes, in order; `Store.size == -1`
    is `%n` (not counted)."""
    text, fmt = _Text(buf), _Text(fmt_bytes)
    s = f = 0
    while fmt[f]:
        if _space(fmt[f]):
            f = fmt.skip_spaces(f + 1)
            s = text.skip_spaces(s)
        if fmt[f] != 0x25 and fmt[f]:               # not a '%': must match
            matched = fmt[f] == text[s]
            f, s = f + 1, s + 1
            if not matched:
                return
            continue
        if not fmt[f]:
            return
        f += 1
        if fmt[f] == 0x2A:                          # '%*': skip to the next white space
            if not text[s]:
                return
            while not _space(fmt[f]) and fmt[f] != 0x25 and fmt[f]:
                if fmt[f] == 0x5B:                  # '%*[' is not supported
                    return
                f += 1
            while not _space(text[s]) and text[s]:
                s += 1
            continue
        width = -1
        if CTYPE[fmt[f]] & _D:
            raw, f = _skip_atoi(fmt, f)
            width = _s16(raw)
            if width <= 0:
                return
        qualifier = ""
        if chr(fmt[f]) in "hz" or chr(fmt[f]).lower() == "l":
            qualifier = chr(fmt[f])
            f += 1
            if qualifier == chr(fmt[f]) and qualifier in "hl":
                qualifier = "H" if qualifier == "h" else "L"
                f += 1
        if not fmt[f]:
            return
        if fmt[f] == 0x6E:                          # 'n'
            yield Store(size=-1, value=s)
            f += 1
            continue
        if not text[s]:
            return
        conversion = chr(fmt[f])
        f += 1
        if conversion == "c":
            start = s
            width = 1 if width == -1 else width
            s += 1
            width -= 1
            while width > 0 and text[s]:
                s += 1
                width -= 1
            yield Store(data=text.data[start:s])
            continue
        if conversion == "s":
            width = SHRT_MAX if width == -1 else width
            s = text.skip_spaces(s)
            start = s
            while text[s] and not _space(text[s]) and width:
                s += 1
                width -= 1
            yield Store(data=text.data[start:s] + b"\0")
            continue
        if conversion == "[":
            if width == -1:
                return
            negate = fmt[f] == 0x5E
            f += negate
            members = set()
            while fmt[f] and fmt[f] != 0x5D:
                members.add(fmt[f])
                f += 1
            if not fmt[f] or not members:
                return
            f += 1
            wanted = (set(range(1, 256)) - members) if negate else members
            if text[s] not in wanted:
                return
            start = s
            while text[s] in wanted and width:
                s += 1
                width -= 1
            yield Store(data=text.data[start:s] + b"\0")
            continue
        if conversion == "%":
            if text[s] != 0x25:
                return
            s += 1
            continue
        bases = {"o": 8, "x": 16, "X": 16, "i": 0, "d": 10, "u": 10}
        if conversion not in bases:
            return
        s = text.skip_spaces(s)
        parsed = _integer(text, s, bases[conversion], conversion in "id", width)
        if parsed is None:
            return
        value, used = parsed
        size = _SIZES.get(qualifier, 4)
        yield Store(size=size, value=value & ((1 << (8 * size)) - 1))
        s += used


def _vsscanf(ctx: Any, buf: int, fmt: int, args: Iterator[int]) -> int:
    count = 0
    for store in scan(ctx.mem.read_cstr(buf, STRING_LIMIT), ctx.mem.read_cstr(fmt, STRING_LIMIT)):
        target = next(args)
        if store.size == -1:
            ctx.mem.write_u32(target, store.value)
            continue
        if store.data:
            ctx.mem.write(target, store.data)
        else:
            ctx.mem.write(target, store.value.to_bytes(store.size, "little"))
        count += 1
    return count


@export("sscanf", "int sscanf(const char *buf, const char *fmt, ...)", nargs=2, variadic=True)
def sscanf(ctx: Any, buf: int, fmt: int) -> int:
    return _vsscanf(ctx, buf, fmt, ctx.va())


@export("vsscanf", "int vsscanf(const char *buf, const char *fmt, va_list args)", nargs=3)
def vsscanf(ctx: Any, buf: int, fmt: int, args: int) -> int:
    return _vsscanf(ctx, buf, fmt, VaList(ctx.mem, args))
