"""lib/string.c, the printf family and lib/kstrtox.c for module code.

Results and return values are Linux's: strcmp returns -1/0/1, memcmp the
difference of the first differing bytes, strscpy -E2BIG on truncation,
snprintf the length it would have written, kstrto* 0 or -EINVAL/-ERANGE
(writing the result only on success).  The kstrto parsing itself is
`kernel.params`'s, shared with module parameters.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from ..memory import GuestFault
from ..oops import KernelBug
from ..params import ParamError, kstrto_bits, kstrtobool as _kstrtobool
from ..printk import VaList
from . import export
from .printk import format_guest

INT_MAX = (1 << 31) - 1
STRING_LIMIT = 1 << 20        # longest string these functions walk


def _cstr(ctx, addr: int, limit: int = STRING_LIMIT) -> bytes:
    return ctx.mem.read_cstr(addr, limit)


# -- memory ----------------------------------------------------------------------

CHUNK = 1 << 16               # bytes a bulk memory function moves between watchdog checks


def _pieces(ctx, count: int, backward: bool = False) -> Iterator[tuple[int, int]]:
    """(offset, length) pieces of a `count`-byte operation, the watchdog
    checked between them: the work is what the guest's mapped memory lets
    the function touch (it faults at the first unmapped page, as Linux's
    would), never a Python object of `count` bytes."""
    offsets = range(0, count, CHUNK)
    for offset in reversed(offsets) if backward else offsets:
        yield offset, min(CHUNK, count - offset)
        ctx.still_running()


def _write_upto_fault(ctx, addr: int, data: bytes) -> None:
    """Write as a string instruction does: every byte before a fault lands."""
    try:
        ctx.mem.write(addr, data)
    except GuestFault as fault:
        done = (fault.address - addr) & ((1 << 64) - 1)
        if 0 < done < len(data):
            ctx.mem.write(addr, data[:done])
        raise


def _copy(ctx, dest: int, src: int, count: int) -> int:
    # Overlapping with dest above src: copy from the end, as memmove must.
    backward = src < dest < src + count
    for offset, n in _pieces(ctx, count, backward):
        _write_upto_fault(ctx, dest + offset, ctx.mem.read(src + offset, n))
    return dest


@export("memcpy", "void *memcpy(void *dest, const void *src, size_t count)", nargs=3)
def memcpy(ctx, dest: int, src: int, count: int) -> int:
    return _copy(ctx, dest, src, count)


@export("memmove", "void *memmove(void *dest, const void *src, size_t count)", nargs=3)
def memmove(ctx, dest: int, src: int, count: int) -> int:
    return _copy(ctx, dest, src, count)


@export("memset", "void *memset(void *s, int c, size_t count)", nargs=3)
def memset(ctx, s: int, c: int, count: int) -> int:
    fill = bytes([c & 0xFF]) * min(count, CHUNK)
    for offset, n in _pieces(ctx, count):
        _write_upto_fault(ctx, s + offset, fill[:n])
    return s


@export("memcmp", "int memcmp(const void *cs, const void *ct, size_t count)", nargs=3)
def memcmp(ctx, cs: int, ct: int, count: int) -> int:
    for offset, n in _pieces(ctx, count):
        a, b = ctx.mem.read(cs + offset, n), ctx.mem.read(ct + offset, n)
        if a != b:
            return next(x - y for x, y in zip(a, b) if x != y)
    return 0


# -- strings ---------------------------------------------------------------------

@export("strlen", "size_t strlen(const char *s)", nargs=1)
def strlen(ctx, s: int) -> int:
    return len(_cstr(ctx, s))


@export("strnlen", "size_t strnlen(const char *s, size_t count)", nargs=2)
def strnlen(ctx, s: int, count: int) -> int:
    return len(_cstr(ctx, s, min(count, STRING_LIMIT)))


def _compare(a: bytes, b: bytes) -> int:
    """Linux's strcmp result: -1, 0 or 1 at the first difference."""
    for x, y in zip(a + b"\0", b + b"\0"):
        if x != y:
            return -1 if x < y else 1
        if not x:
            break
    return 0


@export("strcmp", "int strcmp(const char *cs, const char *ct)", nargs=2)
def strcmp(ctx, cs: int, ct: int) -> int:
    return _compare(_cstr(ctx, cs), _cstr(ctx, ct))


@export("sysfs_streq", "bool sysfs_streq(const char *s1, const char *s2)", nargs=2)
def sysfs_streq(ctx, s1: int, s2: int) -> int:
    """Equal strings, either allowed one trailing newline (a sysfs write's)."""
    a, b = _cstr(ctx, s1), _cstr(ctx, s2)
    return int(a.removesuffix(b"\n") == b.removesuffix(b"\n"))


@export("strncmp", "int strncmp(const char *cs, const char *ct, size_t count)", nargs=3)
def strncmp(ctx, cs: int, ct: int, count: int) -> int:
    if not count:
        return 0
    limit = min(count, STRING_LIMIT)
    return _compare(_cstr(ctx, cs, limit), _cstr(ctx, ct, limit))


@export("strcpy", "char *strcpy(char *dest, const char *src)", nargs=2)
def strcpy(ctx, dest: int, src: int) -> int:
    ctx.mem.write(dest, _cstr(ctx, src) + b"\0")
    return dest


@export("strscpy", "ssize_t strscpy(char *dest, const char *src, size_t count)", nargs=3)
def strscpy(ctx, dest: int, src: int, count: int) -> int:
    """Copy with truncation: the length copied, or -E2BIG if it did not fit."""
    if count == 0 or count > INT_MAX:
        return -errno.E2BIG
    data = _cstr(ctx, src, count)
    if len(data) == count:
        ctx.mem.write(dest, data[:-1] + b"\0")
        return -errno.E2BIG
    ctx.mem.write(dest, data + b"\0")
    return len(data)


export("sized_strscpy", "ssize_t sized_strscpy(char *dest, const char *src, size_t count)",
       nargs=3)(strscpy)           # 6.9's name for it: strscpy() became a macro that calls it


@export("strcat", "char *strcat(char *dest, const char *src)", nargs=2)
def strcat(ctx, dest: int, src: int) -> int:
    ctx.mem.write(dest + len(_cstr(ctx, dest)), _cstr(ctx, src) + b"\0")
    return dest


@export("strlcpy", "size_t strlcpy(char *dest, const char *src, size_t size)", nargs=3)
def strlcpy(ctx, dest: int, src: int, size: int) -> int:
    """Copy what fits (NUL-terminated when size > 0); the length of src."""
    data = _cstr(ctx, src)
    if size:
        ctx.mem.write(dest, data[:size - 1] + b"\0")
    return len(data)


@export("strlcat", "size_t strlcat(char *dest, const char *src, size_t count)", nargs=3)
def strlcat(ctx, dest: int, src: int, count: int) -> int:
    """Append what fits; the length it tried to make.  A dest already
    `count` long or longer is Linux's BUG_ON."""
    dsize = len(_cstr(ctx, dest))
    data = _cstr(ctx, src)
    if dsize >= count:
        raise KernelBug("lib/string.c:227")
    ctx.mem.write(dest + dsize, data[:count - dsize - 1] + b"\0")
    return dsize + len(data)


@export("strchr", "char *strchr(const char *s, int c)", nargs=2)
def strchr(ctx, s: int, c: int) -> int:
    """The first c in s; strchr(s, '\\0') finds the terminator."""
    index = (_cstr(ctx, s) + b"\0").find(c & 0xFF)
    return s + index if index >= 0 else 0


@export("strrchr", "char *strrchr(const char *s, int c)", nargs=2)
def strrchr(ctx, s: int, c: int) -> int:
    index = (_cstr(ctx, s) + b"\0").rfind(c & 0xFF)
    return s + index if index >= 0 else 0


@export("strstr", "char *strstr(const char *s1, const char *s2)", nargs=2)
def strstr(ctx, s1: int, s2: int) -> int:
    needle = _cstr(ctx, s2)
    if not needle:
        return s1
    index = _cstr(ctx, s1).find(needle)
    return s1 + index if index >= 0 else 0


# -- the printf family -------------------------------------------------------------

def _print_to(ctx, buf: int, size: int, fmt: int, args: Iterator[int]) -> int:
    """vsnprintf(): write at most size-1 bytes and a NUL; return the full length."""
    if size > INT_MAX:                        # WARN_ON_ONCE(size > INT_MAX)
        return 0
    room = max(size - 1, 0)
    tail, length = format_guest(ctx, fmt, args, room,
                                spill=lambda offset, data: ctx.mem.write(buf + offset, data))
    if size:
        # What was not spilled yet, and the NUL after what fitted.
        ctx.mem.write(buf + min(length, room) - len(tail), tail + b"\0")
    return length


def _written(length: int, size: int) -> int:
    """vscnprintf(): what actually went into the buffer, without the NUL."""
    if length < size:
        return length
    return size - 1 if size else 0


@export("snprintf", "int snprintf(char *buf, size_t size, const char *fmt, ...)",
        nargs=3, variadic=True)
def snprintf(ctx, buf: int, size: int, fmt: int) -> int:
    return _print_to(ctx, buf, size, fmt, ctx.va())


@export("vsnprintf", "int vsnprintf(char *buf, size_t size, const char *fmt, va_list args)",
        nargs=4)
def vsnprintf(ctx, buf: int, size: int, fmt: int, args: int) -> int:
    return _print_to(ctx, buf, size, fmt, VaList(ctx.mem, args))


@export("scnprintf", "int scnprintf(char *buf, size_t size, const char *fmt, ...)",
        nargs=3, variadic=True)
def scnprintf(ctx, buf: int, size: int, fmt: int) -> int:
    return _written(_print_to(ctx, buf, size, fmt, ctx.va()), size)


@export("sprintf", "int sprintf(char *buf, const char *fmt, ...)", nargs=2, variadic=True)
def sprintf(ctx, buf: int, fmt: int) -> int:
    return _print_to(ctx, buf, INT_MAX, fmt, ctx.va())


# -- kstrto* -----------------------------------------------------------------------

def _kstrto(bits: int, signed: bool):
    def impl(ctx, s: int, base: int, res: int) -> int:
        try:
            value = kstrto_bits(_cstr(ctx, s), base & 0xFFFFFFFF, bits, signed)
        except ParamError as e:
            return -e.errno
        ctx.mem.write(res, (value & ((1 << bits) - 1)).to_bytes(bits // 8, "little"))
        return 0
    return impl


for _name, _ctype, _bits, _signed in (
        ("kstrtoint", "int", 32, True), ("kstrtouint", "unsigned int", 32, False),
        ("_kstrtol", "long", 64, True), ("_kstrtoul", "unsigned long", 64, False),
        ("kstrtoll", "long long", 64, True), ("kstrtoull", "unsigned long long", 64, False)):
    export(_name, f"int {_name}(const char *s, unsigned int base, {_ctype} *res)",
           nargs=3)(_kstrto(_bits, _signed))


@export("kstrtobool", "int kstrtobool(const char *s, bool *res)", nargs=2)
def kstrtobool(ctx, s: int, res: int) -> int:
    if not s:
        return -errno.EINVAL
    try:
        value = _kstrtobool(_cstr(ctx, s, 2))     # only the first two letters count
    except ParamError as e:
        return -e.errno
    ctx.mem.write(res, bytes([value]))
    return 0


@export("strsep", "char *strsep(char **s, const char *ct)", nargs=2)
def strsep(ctx, s: int, ct: int) -> int:
    """The token at *s up to the first byte of ct, NUL-terminated in place;
    *s moves past the delimiter, or to NULL at the end.  NULL if *s is NULL."""
    start = ctx.mem.read_u64(s)
    if not start:
        return 0
    text, delims = _cstr(ctx, start), set(_cstr(ctx, ct))
    end = next((i for i, byte in enumerate(text) if byte in delims), None)
    if end is None:
        ctx.mem.write_u64(s, 0)
    else:
        ctx.mem.write(start + end, b"\0")
        ctx.mem.write_u64(s, start + end + 1)
    return start


@export("strncpy", "char *strncpy(char *dest, const char *src, size_t count)", nargs=3)
def strncpy(ctx, dest: int, src: int, count: int) -> int:
    """At most count bytes of src, NUL-padded to count (not terminated when src
    is as long), as lib/string.c."""
    data = _cstr(ctx, src, min(count, STRING_LIMIT)) if count else b""
    ctx.mem.write(dest, data)
    memset(ctx, dest + len(data), 0, count - len(data))      # padding, in bounded pieces
    return dest
