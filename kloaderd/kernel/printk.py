"""printk: Linux's `vsnprintf` and the kernel log ring buffer.

`vsnprintf` follows `lib/vsprintf.c` (Linux 6.6) rather than C's printf,
because modules are written against the kernel's behaviour: `%.0d` of 0 still
prints "0", `%#x` of 0 prints "0x0", the `0` flag pads even with a precision,
`%s` of NULL prints "(null)", a bad pointer "(efault)", and an unknown
conversion stops the output where it stands (the kernel cannot know how many
arguments the rest would take).  Deliberate differences from Linux 6.6:

* `j` and `q` are accepted as 64-bit length modifiers (Linux stops there).
* plain `%p` prints a *keyed hash* of the pointer, as Linux does once its
  random pool is ready: 32 bits of a keyed BLAKE2b (Linux: SipHash) under a
  key drawn once per daemon process ("per boot"), zero-padded to 16 hex
  digits.  NULL and error pointers print raw, as in Linux.
* `%s` of any pointer that faults while the string is read prints "(efault)"
  (Linux checks only for addresses below PAGE_SIZE and oopses on the rest).
* Of the %p extensions, S s B x K e a h M m I4 i4 are Linux's; the others
  (%pI6, %pU, %pd, ...) print the hashed pointer.

The log keeps Linux's record model: a record is finalized by a trailing
newline or by the next record; only finalized records are visible to
readers (as `prb_read_valid` sees only finalized descriptors), so a
`KERN_CONT` continuation from the same caller still lands in the same line.
"""

from __future__ import annotations

import bisect
import errno as _errno
import hashlib
import itertools
import os
import re
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
import enum
from dataclasses import dataclass
from typing import Protocol

import trio

from ..config import PAGE_SIZE
from .memory import GuestFault

# -- levels -----------------------------------------------------------------

KERN_SOH = 0x01
KERN_EMERG, KERN_ALERT, KERN_CRIT, KERN_ERR = 0, 1, 2, 3
KERN_WARNING, KERN_NOTICE, KERN_INFO, KERN_DEBUG = 4, 5, 6, 7
LOGLEVEL_DEFAULT = -1
DEFAULT_MESSAGE_LOGLEVEL = KERN_WARNING    # CONFIG_MESSAGE_LOGLEVEL_DEFAULT
PRINTKRB_RECORD_MAX = 1024                 # longest text one printk stores, NUL included

MAX_ERRNO = 4095
_U64 = (1 << 64) - 1


class GuestMemory(Protocol):
    """The part of `memory.AddressSpace` the formatter needs."""

    def read(self, addr: int, n: int) -> bytes: ...
    def read_cstr(self, addr: int, limit: int = 4096) -> bytes: ...
    def read_u32(self, addr: int) -> int: ...
    def read_u64(self, addr: int) -> int: ...
    def write_u32(self, addr: int, value: int) -> None: ...
    def write_u64(self, addr: int, value: int) -> None: ...


# symbolize(address, offset) -> "hello_init+0x12/0x40 [hello]" or None
Symbolizer = Callable[[int, bool], "str | None"]


# -- argument sources --------------------------------------------------------

class VaList:
    """A System V x86-64 `va_list` in guest memory, read as integer arguments.

    The struct is `{ u32 gp_offset; u32 fp_offset; void *overflow_arg_area;
    void *reg_save_area; }`.  Integers come from the register save area while
    gp_offset < 48 (six 8-byte GP registers), then from the overflow area.
    The offsets are written back, as C's va_arg would, so a caller that
    passes the same va_list on sees what remains.
    """

    GP_REGS_END = 48

    def __init__(self, mem: GuestMemory, addr: int) -> None:
        self.mem = mem
        self.addr = addr

    def __iter__(self) -> "VaList":
        return self

    def __next__(self) -> int:
        mem, addr = self.mem, self.addr
        gp_offset = mem.read_u32(addr)
        if gp_offset < self.GP_REGS_END:
            value = mem.read_u64(mem.read_u64(addr + 16) + gp_offset)
            mem.write_u32(addr, gp_offset + 8)
        else:
            overflow = mem.read_u64(addr + 8)
            value = mem.read_u64(overflow)
            mem.write_u64(addr + 8, overflow + 8)
        return value


# -- the format engine --------------------------------------------------------

ZEROPAD, SIGN, PLUS, SPACE, LEFT, SMALL, SPECIAL = 1, 2, 4, 8, 16, 32, 64
_FLAG_CHARS = {ord("-"): LEFT, ord("+"): PLUS, ord(" "): SPACE, ord("#"): SPECIAL, ord("0"): ZEROPAD}
FIELD_WIDTH_MAX = (1 << 23) - 1            # printf_spec.field_width is 24 bits
PRECISION_MAX = (1 << 15) - 1              # printf_spec.precision is 16 bits
_QUAL_BITS = {"H": 8, "h": 16, "": 32}     # everything else is 64 bits on x86-64
_QUALIFIERS = frozenset(b"hlLzZtjq")
_DIGITS = b"0123456789ABCDEF"
_DEREF_FORMATS = frozenset("ahMmIi")
_WIDE_CONVERSIONS = frozenset("csdiuoxXp")      # those a field width pads
_PTR_KEY = os.urandom(16)                  # per boot: this daemon process
_KERNEL_ERRNAMES = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND",
                    515: "ENOIOCTLCMD", 516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER",
                    518: "EOPENSTALE", 519: "ENOPARAM", 521: "EBADHANDLE", 524: "ENOTSUPP"}


@dataclass
class _Spec:
    flags: int = 0
    width: int = -1
    precision: int = -1
    base: int = 10


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _clamp(value: int, limit: int) -> int:
    return max(-limit, min(limit, value))


def _field(fmt: bytes, i: int, args: Iterator[int], limit: int) -> tuple[int | None, int]:
    """A width or precision at fmt[i]: digits, '*' (the next argument, an
    int) or nothing; clamped to what printf_spec's bitfield holds."""
    if i < len(fmt) and fmt[i] == ord("*"):
        return _clamp(_signed(next(args), 32), limit), i + 1
    start = i
    while i < len(fmt) and 0x30 <= fmt[i] <= 0x39:
        i += 1
    return (min(int(fmt[start:i]), limit) if i > start else None), i


def number(num: int, spec: _Spec) -> bytes:
    """lib/vsprintf.c's number(): `num` is already signed if SIGN is set."""
    flags, width, precision, base = spec.flags, spec.width, spec.precision, spec.base
    need_pfx = bool(flags & SPECIAL) and base != 10
    locase = flags & SMALL
    if flags & LEFT:
        flags &= ~ZEROPAD
    sign = b""
    if flags & SIGN:
        if num < 0:
            sign, num = b"-", -num
        elif flags & PLUS:
            sign = b"+"
        elif flags & SPACE:
            sign = b" "
    num &= _U64
    width -= len(sign)
    if need_pfx:
        width -= 2 if base == 16 else (1 if num else 0)
    digits = bytearray()
    while True:
        digits.append(_DIGITS[num % base] | locase)
        num //= base
        if not num:
            break
    digits.reverse()
    precision = max(precision, len(digits))
    width -= precision
    out = bytearray()
    if not flags & (ZEROPAD | LEFT) and width > 0:
        out += b" " * width
        width = 0
    out += sign
    if need_pfx:
        if base == 16 or digits != b"0":
            out += b"0"
        if base == 16:
            out.append(ord("X") | locase)
    if not flags & LEFT and width > 0:
        out += (b"0" if flags & ZEROPAD else b" ") * width
        width = 0
    out += b"0" * (precision - len(digits)) + digits
    if width > 0:
        out += b" " * width
    return bytes(out)


def _widen(text: bytes, spec: _Spec) -> bytes:
    """widen_string(): strings pad with spaces only, never zeros."""
    pad = spec.width - len(text)
    if pad <= 0:
        return text
    return text + b" " * pad if spec.flags & LEFT else b" " * pad + text


def _limited(text: bytes, spec: _Spec) -> bytes:
    """string_nocheck(): at most `precision` bytes, then the field width."""
    if spec.precision >= 0:
        text = text[:spec.precision]
    return _widen(text, spec)


def _error_string(text: bytes, spec: _Spec) -> bytes:
    if spec.precision == -1:
        spec.precision = 16               # 2 * sizeof(void *)
    return _limited(text, spec)


def _is_err(ptr: int) -> bool:
    return ptr >= (1 << 64) - MAX_ERRNO


# Longer than any conversion's own text but %s's (a number with the largest
# precision, a %pS symbol, 64 bytes of %ph): a field wider than what is kept
# plus this is padding beyond the kept part, counted rather than built.
NATURAL_MAX = 1 << 16
SPILL_CHUNK = 1 << 16      # bytes an `_Output` holds before handing them to its spill


class _Output:
    """vsnprintf's buffer: keeps the first `room` bytes of the output and
    counts its whole length, as vsnprintf writes while buf < end and goes on
    counting.  With a `spill`, kept bytes are handed on every SPILL_CHUNK (to
    guest memory, so a buffer too short for its claimed size faults where
    Linux would), and Python never holds more than a chunk and one field."""

    def __init__(self, room: int | None, spill: Callable[[int, bytes], None] | None = None) -> None:
        self.room = room
        self.spill = spill
        self.kept = bytearray()
        self.spilled = 0
        self.length = 0

    def left(self) -> int | None:
        """Bytes that will still be kept (None: no limit)."""
        return None if self.room is None else max(0, self.room - self.length)

    def put(self, data: bytes) -> None:
        left = self.left()
        self.kept += data if left is None or left >= len(data) else data[:left]
        self.length += len(data)
        if self.spill is not None and len(self.kept) >= SPILL_CHUNK:
            self.flush()

    def pad(self, count: int) -> None:
        """`count` spaces, built only as far as they are kept."""
        left = self.left()
        built = count if left is None else min(count, left)
        self.put(b" " * built)
        self.length += count - built

    def flush(self) -> None:
        if self.spill is not None and self.kept:
            self.spill(self.spilled, bytes(self.kept))
            self.spilled += len(self.kept)
            self.kept.clear()


class Formatter:
    """One vsnprintf environment: guest memory for %s, kallsyms for %pS, and
    `check`, called between conversions (the watchdog: a format of thousands
    of fields is work the calling task answers for)."""

    def __init__(self, mem: GuestMemory | None = None,
                 symbolize: Symbolizer | None = None,
                 check: Callable[[], None] | None = None) -> None:
        self.mem = mem
        self.symbolize = symbolize
        self.check = check

    def string(self, ptr: int, spec: _Spec) -> bytes:
        if ptr == 0:
            return _error_string(b"(null)", spec)
        if ptr < PAGE_SIZE or _is_err(ptr) or self.mem is None:
            return _error_string(b"(efault)", spec)
        limit = spec.precision if spec.precision >= 0 else 1 << 20
        try:
            text = self.mem.read_cstr(ptr, limit)
        except GuestFault:
            return _error_string(b"(efault)", spec)
        return _limited(text, spec)

    def symbol(self, ptr: int, ext: str, spec: _Spec) -> bytes:
        """%pS (with offset), %ps (without), %pB (a return address)."""
        name = None
        if self.symbolize is not None:
            if ext == "B":
                name = self.symbolize(ptr - 1, True)
                if name is not None:
                    name = re.sub(r"\+0x([0-9a-f]+)/",
                                  lambda m: f"+{int(m.group(1), 16) + 1:#x}/", name, count=1)
            else:
                name = self.symbolize(ptr, ext == "S")
        text = name.encode() if name is not None else f"{ptr:#x}".encode()
        return _limited(text, spec)

    def pointer(self, ptr: int, ext: str, spec: _Spec) -> bytes:
        """%p and its extensions; `ext` is the alphanumeric run after the p."""
        kind = ext[:1]
        if kind in ("S", "s", "B"):
            return self.symbol(ptr, kind, spec)
        if kind == "x":
            return _pointer_string(ptr, spec)
        if kind == "e" and _is_err(ptr):
            err = ptr - (1 << 64)
            name = _errno.errorcode.get(-err) or _KERNEL_ERRNAMES.get(-err)
            if name:
                return _limited(f"-{name}".encode(), spec)
            spec.flags |= SIGN
            spec.base = 10
            return number(err, spec)
        if kind in _DEREF_FORMATS:
            return self._pointee(ptr, ext, spec)
        return _ptr_to_id(ptr, spec)

    def _pointee(self, ptr: int, ext: str, spec: _Spec) -> bytes:
        """The extensions that print what the pointer points at (%pa %ph %pM
        %pm %pI4 %pi4), after check_pointer(): NULL is "(null)", a bad
        pointer "(efault)"."""
        kind, modifier = ext[0], ext[1:2]
        if kind == "h" and spec.width == 0:
            return b""
        count = {"a": 8, "M": 6, "m": 6, "I": 4, "i": 4}.get(kind, 0)
        if kind == "h":
            count = min(spec.width, 64) if spec.width > 0 else 1
        if kind in "Ii" and modifier != "4":
            return _ptr_to_id(ptr, spec)      # %pI6 and friends: not emulated
        if ptr == 0:
            return _error_string(b"(null)", spec)
        try:
            if ptr < PAGE_SIZE or _is_err(ptr) or self.mem is None:
                raise GuestFault(ptr, "read")
            data = self.mem.read(ptr, count)
        except GuestFault:
            return _error_string(b"(efault)", spec)
        if kind == "a":                       # phys_addr_t / dma_addr_t: "0x" and 16 digits
            return number(int.from_bytes(data, "little"),
                          _Spec(SPECIAL | SMALL | ZEROPAD, 18, -1, 16))
        if kind == "h":
            sep = {"C": b":", "D": b"-", "N": b""}.get(modifier, b" ")
            return sep.join(b"%02x" % byte for byte in data)
        if kind in "Mm":
            if "R" in ext:
                data = data[::-1]
            sep = b"" if kind == "m" else (b"-" if "F" in ext else b":")
            return _limited(sep.join(b"%02x" % byte for byte in data), spec)
        digits = b"%03d" if kind == "i" else b"%d"
        return _limited(b".".join(digits % byte for byte in data), spec)

    def format(self, fmt: bytes, args: Iterator[int]) -> bytes:
        """The whole output of vsnprintf(fmt, args), untruncated."""
        out = _Output(None)
        self.write(fmt, args, out)
        return bytes(out.kept)

    def write(self, fmt: bytes, args: Iterator[int], out: _Output) -> None:
        """Format into `out`: its kept bytes and the full length.  The work
        is bounded by what is kept, not by the field widths asked for."""
        i, n = 0, len(fmt)
        while i < n:
            if self.check is not None:
                self.check()
            pct = fmt.find(b"%", i)
            if pct < 0:
                out.put(fmt[i:])
                break
            out.put(fmt[i:pct])
            i = pct + 1
            spec = _Spec()
            while i < n and fmt[i] in _FLAG_CHARS:
                spec.flags |= _FLAG_CHARS[fmt[i]]
                i += 1
            width, i = _field(fmt, i, args, FIELD_WIDTH_MAX)
            if width is not None:
                if width < 0:
                    width = -width
                    spec.flags |= LEFT
                spec.width = width
            if i < n and fmt[i] == ord("."):
                precision, i = _field(fmt, i + 1, args, PRECISION_MAX)
                if precision is not None:
                    spec.precision = max(0, precision)      # a negative '*' means 0
            qualifier = ""
            if i < n and fmt[i] in _QUALIFIERS:
                qualifier = chr(fmt[i])
                i += 1
                if i < n and qualifier in "lh" and fmt[i] == ord(qualifier):
                    qualifier = "L" if qualifier == "l" else "H"
                    i += 1
            conv = chr(fmt[i]) if i < n else ""
            i += 1
            ext = ""
            if conv == "p":
                start = i
                while i < n and chr(fmt[i]).isalnum():     # Linux skips the whole extension
                    i += 1
                ext = fmt[start:i].decode("latin-1")
            left = out.left()
            unkept = 0 if left is None else spec.width - (left + NATURAL_MAX)
            if conv not in _WIDE_CONVERSIONS or ext[:1] == "h":
                unkept = 0                 # no field width: '%', %ph (a byte count), a stop
            if conv == "s" and unkept > 0:
                # Pad by count: the string's own length decides the field's.
                width, spec.width = spec.width, -1
                text = self.string(next(args) & _U64, spec)
                if spec.flags & LEFT:
                    out.put(text)
                    out.pad(width - len(text))
                else:
                    out.pad(width - len(text))
                    out.put(text)
                continue
            if unkept > 0:
                # Only padding lies past what is kept: build the field that
                # much narrower, count the rest (its kept prefix is the same).
                spec.width -= unkept
            if conv == "c":
                out.put(_widen(bytes([next(args) & 0xFF]), spec))
            elif conv == "s":
                out.put(self.string(next(args) & _U64, spec))
            elif conv == "p":
                out.put(self.pointer(next(args) & _U64, ext, spec))
            elif conv == "%":
                out.put(b"%")
            elif conv in ("d", "i", "u", "o", "x", "X"):
                out.put(self._integer(conv, qualifier, next(args), spec))
            else:
                break                     # FORMAT_TYPE_INVALID: stop, as Linux does
            out.length += max(unkept, 0)

    @staticmethod
    def _integer(conv: str, qualifier: str, arg: int, spec: _Spec) -> bytes:
        spec.base = {"o": 8, "x": 16, "X": 16}.get(conv, 10)
        if conv == "x":
            spec.flags |= SMALL
        bits = _QUAL_BITS.get(qualifier, 64)
        if conv in ("d", "i"):
            spec.flags |= SIGN
            return number(_signed(arg, bits), spec)
        return number(arg & ((1 << bits) - 1), spec)


def _pointer_string(ptr: int, spec: _Spec) -> bytes:
    spec.base = 16
    spec.flags |= SMALL
    if spec.width == -1:
        spec.width = 16
        spec.flags |= ZEROPAD
    return number(ptr, spec)


def _ptr_to_id(ptr: int, spec: _Spec) -> bytes:
    """Plain %p: NULL and error pointers raw, others as a keyed 32-bit hash."""
    if ptr == 0 or _is_err(ptr):
        return _pointer_string(ptr, spec)
    digest = hashlib.blake2b(ptr.to_bytes(8, "little"), key=_PTR_KEY, digest_size=8).digest()
    return _pointer_string(int.from_bytes(digest, "little") & 0xFFFFFFFF, spec)


def vsnprintf(fmt: bytes, args: Iterator[int], *, mem: GuestMemory | None = None,
              symbolize: Symbolizer | None = None) -> bytes:
    """Format as Linux's vsnprintf; the caller truncates to its buffer.

    `args` yields each argument as an integer (64-bit registers or stack
    slots, or a `VaList`); the length modifier truncates and sign-extends
    it as C's va_arg would.
    """
    return Formatter(mem, symbolize).format(fmt, args)


def vsnprintf_bounded(fmt: bytes, args: Iterator[int], room: int, *,
                      mem: GuestMemory | None = None, symbolize: Symbolizer | None = None,
                      check: Callable[[], None] | None = None,
                      spill: Callable[[int, bytes], None] | None = None) -> tuple[bytes, int]:
    """(the first `room` bytes of the output, its full length), in time and
    memory bounded by `room` and the format rather than by the widths it
    asks for (`%8388607d` a thousand times costs what its kept part costs).
    With `spill`, kept bytes go there in chunks and the bytes returned are
    only the last, unspilled ones."""
    if spill is None and b"%" not in fmt:
        # Nothing to convert (a constant pr_info, the usual printk): what
        # `Formatter.write` would do, without making its machinery.
        if fmt and check is not None:
            check()
        return bytes(fmt if room is None else fmt[:max(room, 0)]), len(fmt)
    out = _Output(room, spill)
    Formatter(mem, symbolize, check).write(fmt, args, out)
    return bytes(out.kept), out.length


# -- the log ----------------------------------------------------------------

class Problem(enum.Enum):
    """What trouble a log record reports, said by the code that reports it,
    so that kloaderd.embed and the pytest plugin collect problems as events
    and never re-read the text (a module printing "BUG:" reports nothing).
    The record that carries it is the report's summary line."""

    OOPS = "oops"              # an oops, BUG or panic report
    LEAK = "leak"              # what a freed module left behind (memory, a registration)
    SANITIZER = "sanitizer"    # a sanitizer's report (golden rule, ODEBUG, put and return, SLUB's)
    WARNING = "warning"        # a WARNING: (WARN(), lockdep, a refcount underflow)


@dataclass(frozen=True, slots=True)
class LogRecord:
    seq: int
    level: int
    timestamp: float          # seconds since the buffer's creation ("boot")
    module: str | None
    text: str                 # without the trailing newline; may hold inner newlines
    problem: Problem | None = None   # the trouble this line reports, if it is a report's summary


def printk_parse_prefix(raw: bytes) -> tuple[int, bool, bytes]:
    """Strip KERN_SOH prefixes: (level or LOGLEVEL_DEFAULT, is KERN_CONT, rest).

    As printk_parse_prefix(): several prefixes may stack; the first level wins.
    """
    level, cont, i = LOGLEVEL_DEFAULT, False, 0
    while i + 1 < len(raw) and raw[i] == KERN_SOH:
        code = raw[i + 1]
        if 0x30 <= code <= 0x37:
            if level == LOGLEVEL_DEFAULT:
                level = code - 0x30
        elif code == ord("c"):
            cont = True
        else:
            break
        i += 2
    return level, cont, raw[i:]


@dataclass(slots=True)
class _OpenRecord:
    seq: int
    level: int
    timestamp: float
    module: str | None
    text: bytes                # raw, so a continuation's cost is counted in bytes

    def freeze(self) -> LogRecord:
        return LogRecord(self.seq, self.level, self.timestamp, self.module,
                         self.text.decode("utf-8", "backslashreplace"))


RECORD_TEXT_MAX = PRINTKRB_RECORD_MAX - 1     # bytes of text one record holds
# What a record costs besides its text: the LogRecord, its seq and timestamp
# objects and the deque's slot.  The ring's capacity counts this too, so a
# flood of tiny records is bounded in real bytes, not in characters.
RECORD_OVERHEAD = (sys.getsizeof(LogRecord(1 << 40, 0, 0.5, None, "")) - sys.getsizeof("")
                   + sys.getsizeof(1 << 40) + sys.getsizeof(0.5) + 8)


def _clip(text: str) -> str:
    """At most RECORD_TEXT_MAX bytes of UTF-8, cut at a character boundary."""
    if len(text) <= RECORD_TEXT_MAX // 4:
        return text
    raw = text.encode()
    if len(raw) <= RECORD_TEXT_MAX:
        return text
    return raw[:RECORD_TEXT_MAX].decode("utf-8", "ignore")


class LogBuffer:
    """The kernel log every part of the daemon writes to and `kdmesg` reads.

    `seq` numbers start at 1 and never repeat; `records(since)` returns the
    finalized records with seq > since, so `since=0` means everything still
    held and a follower that remembers the last seq it saw notices dropped
    records as a gap.  The buffer holds at most `capacity` bytes of memory:
    each record costs what its text object and its bookkeeping take
    (`sys.getsizeof` of the text plus RECORD_OVERHEAD), so tiny records
    cannot cost more than they are counted.  A record holds at most
    RECORD_TEXT_MAX bytes of text (Linux's PRINTKRB_RECORD_MAX less the
    NUL); a KERN_CONT that would grow a record past that starts the next
    one, as prb_reserve_in_last() failing does.  The oldest records are
    dropped first, but the newest always stays.
    """

    def __init__(self, *, capacity: int = 1 << 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self._clock = clock
        self._boot = clock()
        self._records: deque[LogRecord] = deque()
        self._bytes = 0
        self._next_seq = 1
        self._open: _OpenRecord | None = None
        self._waiters = trio.lowlevel.ParkingLot()

    # -- writing --
    def emit(self, level: int, text: str, module: str | None = None, *,
             problem: Problem | None = None) -> LogRecord:
        """A complete record from the kernel itself (one trailing newline is
        dropped); `problem` when it is the summary line of a report."""
        self.flush()
        if text.endswith("\n"):
            text = text[:-1]
        record = LogRecord(self._take_seq(), level, self._now(), module, _clip(text), problem)
        self._append(record)
        return record

    def printk(self, raw: bytes, module: str | None = None) -> int:
        """Store formatted printk output with its KERN_ prefixes; returns the
        length of the text stored, as printk() does.

        `module` is also the caller identity KERN_CONT matches on (Linux uses
        the task): a continuation from another caller starts a new record.
        """
        level, cont, body = printk_parse_prefix(raw[:PRINTKRB_RECORD_MAX - 1])
        newline = body.endswith(b"\n")
        if newline:
            body = body[:-1]
        open_ = self._open
        if cont and open_ is not None and open_.module == module \
                and len(open_.text) + len(body) <= RECORD_TEXT_MAX:
            open_.text += body
        else:
            self.flush()
            if level == LOGLEVEL_DEFAULT:
                level = DEFAULT_MESSAGE_LOGLEVEL
            self._open = _OpenRecord(self._take_seq(), level, self._now(), module, body)
        if newline:
            self.flush()
        return len(body)

    def flush(self) -> None:
        """Finalize a record still waiting for a continuation or newline."""
        if self._open is not None:
            record, self._open = self._open.freeze(), None
            self._append(record)

    def _take_seq(self) -> int:
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        return seq

    def _now(self) -> float:
        return self._clock() - self._boot

    def _append(self, record: LogRecord) -> None:
        self._records.append(record)
        self._bytes += _cost(record)
        while self._bytes > self.capacity and len(self._records) > 1:
            self._bytes -= _cost(self._records.popleft())
        if self._waiters:                 # followers (dmesg -w); usually none
            self._waiters.unpark_all()

    # -- reading --
    @property
    def last_seq(self) -> int:
        """The seq of the newest finalized record (0 if none yet)."""
        return self._records[-1].seq if self._records else 0

    def records(self, since: int = 0) -> list[LogRecord]:
        """Finalized records with seq > since, oldest first (found from the
        newest end, so a follower pays for what is new, not for the buffer)."""
        newer = []
        for record in reversed(self._records):
            if record.seq <= since:
                break
            newer.append(record)
        newer.reverse()
        return newer

    def records_page(self, since: int, limit: int) -> list[LogRecord]:
        """At most `limit` finalized records with seq > since, oldest first:
        found by bisection, so a page costs its own size, not the ring's."""
        start = bisect.bisect_right(self._records, since, key=_seq)
        return list(itertools.islice(self._records, start, start + limit))

    async def follow(self, since: int = 0) -> AsyncIterator[LogRecord]:
        """Every record with seq > since, then each new one as it is finalized.

        Spawns no task: cancelling the consumer ends it cleanly.
        """
        while True:
            batch = self.records(since)
            if not batch:
                await self._waiters.park()
                continue
            for record in batch:
                since = record.seq
                yield record

    def format(self, record: LogRecord) -> str:
        """dmesg's shape: "[    1.234567] text", every line of the record
        prefixed.  A page of `dmesg` formats 512 records: %-formatting and
        the one-line case without split/join make that 4x cheaper."""
        sec, usec = divmod(round(record.timestamp * 1_000_000), 1_000_000)
        prefix = "[%5d.%06d] " % (sec, usec)
        text = record.text
        if "\n" not in text:
            return prefix + text
        return "\n".join(prefix + line for line in text.split("\n"))


def _seq(record: LogRecord) -> int:
    return record.seq


def _cost(record: LogRecord) -> int:
    return sys.getsizeof(record.text) + RECORD_OVERHEAD
