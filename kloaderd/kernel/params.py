"""Linux's `kernel/params.c` and `lib/kstrtox.c` as pure logic.

Parsing an argument string into `name=value` pairs, the per-type rules of
`param_set_*` / `param_get_*`, arrays and fixed-size strings.  Nothing here
touches guest memory: `moduleparam.py` binds these rules to a module's
variables, and `api/string.py` serves the `kstrto*` family from the same code.

Failures raise `ParamError` (a ValueError) carrying the errno Linux would
return: EINVAL for bad syntax, ERANGE for a value that does not fit, ENOSPC
for a string too long, and for arrays and strings the message Linux logs.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .printk import vsnprintf

MAX_CHARP_LEN = 1024          # param_set_charp: "string parameter too long"


class ParamError(ValueError):
    def __init__(self, err: int, message: str = "") -> None:
        super().__init__(message or errno.errorcode.get(err, str(err)))
        self.errno = err
        self.message = message


# -- lib/kstrtox.c ------------------------------------------------------------

def _text(s: str | bytes) -> str:
    return s.decode("latin-1") if isinstance(s, bytes) else s


def _fixup_radix(s: str, base: int) -> tuple[str, int]:
    """_parse_integer_fixup_radix(): base 0 guesses from 0x / 0 prefixes."""
    if base == 0:
        if s[:1] == "0":
            base = 16 if s[1:2].lower() == "x" and s[2:3] and s[2] in "0123456789abcdefABCDEF" \
                else 8
        else:
            base = 10
    if base == 16 and s[:1] == "0" and s[1:2].lower() == "x":
        s = s[2:]
    return s, base


def _kstrtoull(s: str, base: int) -> int:
    s, base = _fixup_radix(s, base)
    value, used, overflow = 0, 0, False
    for ch in s:
        c = ch.lower()
        digit = ord(c) - 0x30 if "0" <= c <= "9" else (ord(c) - 0x57 if "a" <= c <= "f" else 99)
        if digit >= base:
            break
        value = value * base + digit
        overflow |= value >> 64 != 0
        used += 1
    if overflow:                      # checked before trailing garbage, as Linux
        raise ParamError(errno.ERANGE)
    if used == 0:
        raise ParamError(errno.EINVAL)
    rest = s[used:]
    if rest[:1] == "\n":
        rest = rest[1:]
    if rest:
        raise ParamError(errno.EINVAL)
    return value


def kstrtoull(s: str | bytes, base: int = 0) -> int:
    """An unsigned 64-bit integer: optional '+', base 0/8/10/16 prefixes,
    one trailing newline; nothing else."""
    s = _text(s)
    return _kstrtoull(s[1:] if s[:1] == "+" else s, base)


def kstrtoll(s: str | bytes, base: int = 0) -> int:
    s = _text(s)
    if s[:1] == "-":
        value = _kstrtoull(s[1:], base)
        if value > 1 << 63:
            raise ParamError(errno.ERANGE)
        return -value
    value = kstrtoull(s, base)
    if value >= 1 << 63:
        raise ParamError(errno.ERANGE)
    return value


def kstrto_bits(s: str | bytes, base: int, bits: int, signed: bool) -> int:
    """kstrtou8 … kstrtoint: the 64-bit parse, then ERANGE if it does not fit."""
    value = kstrtoll(s, base) if signed else kstrtoull(s, base)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= value <= high:
        raise ParamError(errno.ERANGE)
    return value


def kstrtobool(s: str | bytes | None) -> bool:
    """y/Y/t/T/1 and on; n/N/f/F/0 and off — only the first letters count."""
    if s is None:
        raise ParamError(errno.EINVAL)
    s = _text(s)
    first, second = s[:1], s[1:2]
    if first and first in "yYtT1":
        return True
    if first and first in "nNfF0":
        return False
    if first and first in "oO" and second:
        if second in "nN":
            return True
        if second in "fF":
            return False
    raise ParamError(errno.EINVAL)


# -- argument strings ------------------------------------------------------------

_SPACES = " \t\n\v\f\r"          # the C locale's isspace()


def _skip_spaces(s: str, i: int) -> int:
    while i < len(s) and s[i] in _SPACES:
        i += 1
    return i


def next_arg(args: str) -> tuple[str, str | None, str]:
    """next_arg(): one `name[=value]` off the front: (name, value, rest).

    Quotes group spaces ("name=va lue" or name="va lue"); the quotes around
    a whole argument or a whole value are dropped; a value is None when
    there is no '='.
    """
    i, in_quote, quoted = 0, False, False
    if args[:1] == '"':
        args, in_quote, quoted = args[1:], True, True
    equals = 0
    while i < len(args):
        if args[i] in _SPACES and not in_quote:
            break
        if equals == 0 and args[i] == "=":
            equals = i
        if args[i] == '"':
            in_quote = not in_quote
        i += 1
    word, rest = args[:i], args[i + 1:]
    # Linux NUL-terminates in place; dropping a closing quote at i-1 cuts
    # whichever of name or value holds that position.
    if quoted and word.endswith('"'):
        word = word[:-1]
    if not equals:
        return word, None, rest[_skip_spaces(rest, 0):]
    name, value = word[:equals], word[equals + 1:]
    if value.startswith('"'):
        value = value[1:]
        if not quoted and value.endswith('"'):
            value = value[:-1]
    return name, value, rest[_skip_spaces(rest, 0):]


def split_args(args: str) -> tuple[list[tuple[str, str | None]], str | None]:
    """parse_args()'s walk: the pairs, and what follows a bare `--` (None if
    there is none), which Linux leaves to the caller."""
    pairs: list[tuple[str, str | None]] = []
    rest = args[_skip_spaces(args, 0):]
    while rest:
        name, value, rest = next_arg(rest)
        if value is None and name == "--":
            return pairs, rest
        pairs.append((name, value))
    return pairs, None


def parse_args(args: str) -> list[tuple[str, str | None]]:
    """The `name[=value]` pairs of an argument string, up to a bare `--`."""
    return split_args(args)[0]


def param_equal(a: str, b: str) -> bool:
    """parameq(): '-' and '_' are the same character in parameter names."""
    return a.replace("-", "_") == b.replace("-", "_")


def param_error_message(doing: str, name: str, value: str | None, err: int) -> str:
    """What parse_args() logs when setting a parameter fails."""
    if err == errno.ENOENT:
        return f"{doing}: Unknown parameter `{name}'"
    what = "too large for" if err == errno.ENOSPC else "invalid for"
    return f"{doing}: `{value or ''}' {what} parameter `{name}'"


# -- parameter types -------------------------------------------------------------

@dataclass(frozen=True)
class ParamType:
    """One `param_ops_<name>`: how a value is parsed, shown and stored.

    `format` gives what param_get_* prints without its trailing newline.
    `noarg`: a bare `name` (no '=') is accepted (KERNEL_PARAM_OPS_FL_NOARG).
    For charp the stored value is a pointer: encode/decode take and give
    the address, and the caller copies the string into kernel memory.
    """

    name: str
    size: int
    _parse: Callable[[str | None], Any]
    _format: Callable[[Any], str]
    _struct: struct.Struct
    noarg: bool = False

    def parse(self, text: str | None) -> Any:
        if text is None and not self.noarg:
            raise ParamError(errno.EINVAL)
        return self._parse(text)

    def format(self, value: Any) -> str:
        return self._format(value)

    def encode(self, value: Any) -> bytes:
        return self._struct.pack(int(value))

    def decode(self, raw: bytes) -> Any:
        value = self._struct.unpack(raw[:self.size])[0]
        return bool(value) if self.name in ("bool", "invbool") else value


def _c_format(fmt: str) -> Callable[[Any], str]:
    """param_get_*'s scnprintf, done by the kernel's own vsnprintf."""
    return lambda value: vsnprintf(fmt.encode(), iter([int(value)])).decode()


def _integer(name: str, code: str, fmt: str, bits: int, signed: bool) -> ParamType:
    return ParamType(name, bits // 8, lambda text: kstrto_bits(text, 0, bits, signed),
                     _c_format(fmt), struct.Struct("<" + code))


def _charp(text: str | None) -> str:
    if text is not None and len(text.encode()) > MAX_CHARP_LEN:
        raise ParamError(errno.ENOSPC, "string parameter too long")
    return text or ""


PARAM_TYPES: dict[str, ParamType] = {t.name: t for t in (
    _integer("byte", "B", "%hhu", 8, False),
    _integer("short", "h", "%hi", 16, True),
    _integer("ushort", "H", "%hu", 16, False),
    _integer("int", "i", "%i", 32, True),
    _integer("uint", "I", "%u", 32, False),
    _integer("long", "q", "%li", 64, True),
    _integer("ulong", "Q", "%lu", 64, False),
    _integer("ullong", "Q", "%llu", 64, False),
    # param_set_hexint is kstrtouint(val, 0, ...): "ff" alone is invalid.
    _integer("hexint", "I", "%#08x", 32, False),
    ParamType("bool", 1, lambda text: kstrtobool("1" if text is None else text),
              lambda v: "Y" if v else "N", struct.Struct("<B"), noarg=True),
    # Stores the inverse and shows it inverted back.  No NOARG flag on
    # param_ops_invbool: a bare name is EINVAL.
    ParamType("invbool", 1, lambda text: not kstrtobool(text),
              lambda v: "N" if v else "Y", struct.Struct("<B")),
    ParamType("charp", 8, _charp, lambda v: "(null)" if v is None else v,
              struct.Struct("<Q")),
)}


def parse_array(text: str, elem: ParamType, max_count: int, name: str = "") -> list[Any]:
    """param_array(): comma-separated elements, at least one, at most max_count."""
    values: list[Any] = []
    for item in text.split(","):
        if len(values) == max_count:
            raise ParamError(errno.EINVAL, f"{name}: can only take {max_count} arguments")
        values.append(elem.parse(item))
    return values


def format_array(values: list[Any], elem: ParamType) -> str:
    """param_array_get(): the elements' own formats joined by commas."""
    return ",".join(elem.format(v) for v in values)


def check_string(text: str, maxlen: int, name: str = "") -> bytes:
    """param_set_copystring(): the bytes to store (NUL included) if they fit
    in a `maxlen`-byte buffer, else ENOSPC with Linux's message."""
    data = text.encode() + b"\0"
    if len(data) > maxlen:
        raise ParamError(errno.ENOSPC, f"{name}: string doesn't fit in {maxlen - 1} chars.")
    return data
