"""Timekeeping (Linux's kernel/time/timekeeping.c and time.c's timespec
helpers, timer.c's round_jiffies): the clocks modules read.

CLOCK_MONOTONIC is the machine's uptime (what `ktime_get` returns);
CLOCK_BOOTTIME equals it (the emulated machine never suspends);
CLOCK_REALTIME is the host's wall clock; CLOCK_TAI is REALTIME, as in a
Linux whose TAI offset nobody set with adjtimex; the raw monotonic clock is
the monotonic one (no NTP slews it).  The coarse variants read the same
clocks (Linux's differ by at most a tick).  `round_jiffies` and friends
round to whole seconds of jiffies as Linux does on CPU 0 (whose skew is
zero).

A `struct timespec64` is {tv_sec@0, tv_nsec@8}: returned by value
(`ns_to_timespec64`) it comes back in %rax:%rdx, as the x86-64 ABI returns
a 16-byte structure.
"""

from __future__ import annotations

import time
from typing import Any

from unicorn.x86_const import UC_X86_REG_RDX

from ..config import HZ
from ..kernel.api import export

NSEC_PER_SEC = 1_000_000_000
TK_OFFS_REAL, TK_OFFS_BOOT, TK_OFFS_TAI = 0, 1, 2
_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


def monotonic_ns(ctx: Any) -> int:
    return int(ctx.machine.uptime() * NSEC_PER_SEC)


def _real_offset_ns(ctx: Any) -> int:
    """offs_real: wall clock minus monotonic, now."""
    return time.time_ns() - monotonic_ns(ctx)


def _timespec(ns: int) -> tuple[int, int]:
    """ns_to_timespec64: the nanoseconds always in [0, NSEC_PER_SEC)."""
    sec, nsec = divmod(ns, NSEC_PER_SEC)
    return sec, nsec


def _write_timespec(ctx: Any, ts: int, ns: int) -> None:
    sec, nsec = _timespec(ns)
    ctx.mem.write_u64(ts, sec & _MASK64)
    ctx.mem.write_u64(ts + 8, nsec)


def _with_offset(ctx: Any, offs: int) -> int:
    mono = monotonic_ns(ctx)
    return mono + (_real_offset_ns(ctx) if (offs & 0xFFFFFFFF) in (TK_OFFS_REAL, TK_OFFS_TAI) else 0)


@export("ktime_get_with_offset", "ktime_t ktime_get_with_offset(enum tk_offsets offs)", nargs=1, gpl=True)
def ktime_get_with_offset(ctx: Any, offs: int) -> int:
    """CLOCK_REALTIME (TK_OFFS_REAL), BOOTTIME (TK_OFFS_BOOT) or TAI in ns."""
    return _with_offset(ctx, offs)


@export("ktime_get_coarse_with_offset", "ktime_t ktime_get_coarse_with_offset(enum tk_offsets offs)",
        nargs=1, gpl=True)
def ktime_get_coarse_with_offset(ctx: Any, offs: int) -> int:
    return _with_offset(ctx, offs)


@export("ktime_get_raw", "ktime_t ktime_get_raw(void)", nargs=0, gpl=True)
def ktime_get_raw(ctx: Any) -> int:
    return monotonic_ns(ctx)


@export("ktime_get_mono_fast_ns", "u64 ktime_get_mono_fast_ns(void)", nargs=0, gpl=True)
def ktime_get_mono_fast_ns(ctx: Any) -> int:
    return monotonic_ns(ctx)


@export("ktime_get_seconds", "time64_t ktime_get_seconds(void)", nargs=0, gpl=True)
def ktime_get_seconds(ctx: Any) -> int:
    return monotonic_ns(ctx) // NSEC_PER_SEC


@export("ktime_get_real_seconds", "time64_t ktime_get_real_seconds(void)", nargs=0, gpl=True)
def ktime_get_real_seconds(ctx: Any) -> int:
    return time.time_ns() // NSEC_PER_SEC


for _name, _clock, _gpl in (("ktime_get_ts64", monotonic_ns, True),
                            ("ktime_get_coarse_ts64", monotonic_ns, False),
                            ("ktime_get_raw_ts64", monotonic_ns, False),
                            ("ktime_get_real_ts64", lambda ctx: time.time_ns(), False),
                            ("ktime_get_coarse_real_ts64", lambda ctx: time.time_ns(), False)):
    def _reader(ctx: Any, ts: int, clock: Any = _clock) -> None:
        _write_timespec(ctx, ts, clock(ctx))
    export(_name, f"void {_name}(struct timespec64 *ts)", nargs=1, gpl=_gpl)(_reader)


@export("getboottime64", "void getboottime64(struct timespec64 *ts)", nargs=1, gpl=True)
def getboottime64(ctx: Any, ts: int) -> None:
    """The wall-clock time the machine booted at: REALTIME minus BOOTTIME."""
    _write_timespec(ctx, ts, _real_offset_ns(ctx))


def return_timespec64(ctx: Any, sec: int, nsec: int) -> int:
    """A `struct timespec64` returned by value: tv_nsec in %rdx, tv_sec the %rax to return."""
    ctx.machine.uc.reg_write(UC_X86_REG_RDX, nsec)
    return sec & _MASK64


@export("ns_to_timespec64", "struct timespec64 ns_to_timespec64(s64 nsec)", nargs=1)
def ns_to_timespec64(ctx: Any, nsec: int) -> int:
    return return_timespec64(ctx, *_timespec(_signed(nsec)))


@export("set_normalized_timespec64", "void set_normalized_timespec64(struct timespec64 *ts, time64_t sec, "
        "s64 nsec)", nargs=3)
def set_normalized_timespec64(ctx: Any, ts: int, sec: int, nsec: int) -> None:
    _write_timespec(ctx, ts, _signed(sec) * NSEC_PER_SEC + _signed(nsec))


def _round_jiffies(ctx: Any, j: int, force_up: bool) -> int:
    """round_jiffies_common on CPU 0: to a whole second, down when less
    than a quarter past it, unless that is not in the future."""
    j &= _MASK64
    rem = j % HZ
    rounded = (j - rem if rem < HZ // 4 and not force_up else j - rem + HZ) & _MASK64
    return rounded if _signed(ctx.machine.jiffies() - rounded) < 0 else j


@export("round_jiffies", "unsigned long round_jiffies(unsigned long j)", nargs=1, gpl=True)
def round_jiffies(ctx: Any, j: int) -> int:
    return _round_jiffies(ctx, j, False)


@export("round_jiffies_relative", "unsigned long round_jiffies_relative(unsigned long j)", nargs=1, gpl=True)
def round_jiffies_relative(ctx: Any, j: int) -> int:
    now = ctx.machine.jiffies()
    return (_round_jiffies(ctx, j + now, False) - now) & _MASK64


@export("round_jiffies_up", "unsigned long round_jiffies_up(unsigned long j)", nargs=1, gpl=True)
def round_jiffies_up(ctx: Any, j: int) -> int:
    return _round_jiffies(ctx, j, True)


@export("round_jiffies_up_relative", "unsigned long round_jiffies_up_relative(unsigned long j)", nargs=1, gpl=True)
def round_jiffies_up_relative(ctx: Any, j: int) -> int:
    now = ctx.machine.jiffies()
    return (_round_jiffies(ctx, j + now, True) - now) & _MASK64
