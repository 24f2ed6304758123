"""The clocks modules read (kernel/time/timekeeping.c): monotonic, boot,
real and TAI time, timespec64s written and returned by value, and
round_jiffies' whole seconds — called from real guest code."""

from __future__ import annotations

import time

import pytest

from guestcode import Kernel, build
from kloaderd.config import HZ
from kloaderd.kernel.cpu import Machine

CODE = r"""
struct timespec64 { long long tv_sec; long tv_nsec; };
long long ktime_get(void);
long long ktime_get_with_offset(int offs);
long long ktime_get_real_seconds(void);
long long ktime_get_seconds(void);
void ktime_get_real_ts64(struct timespec64 *);
void ktime_get_ts64(struct timespec64 *);
void getboottime64(struct timespec64 *);
struct timespec64 ns_to_timespec64(long long nsec);
void set_normalized_timespec64(struct timespec64 *ts, long long sec, long long nsec);
unsigned long round_jiffies(unsigned long j);
unsigned long round_jiffies_up(unsigned long j);
unsigned long round_jiffies_relative(unsigned long j);
extern volatile unsigned long jiffies;

struct timespec64 ts;
long long mono(void) { return ktime_get(); }
long long with_offset(int offs) { return ktime_get_with_offset(offs); }
long long real_seconds(void) { return ktime_get_real_seconds(); }
long long mono_seconds(void) { return ktime_get_seconds(); }
long long real_ts(void) { ktime_get_real_ts64(&ts); return ts.tv_sec * 1000000000LL + ts.tv_nsec; }
long long mono_ts(void) { ktime_get_ts64(&ts); return ts.tv_sec * 1000000000LL + ts.tv_nsec; }
long long boot_ts(void) { getboottime64(&ts); return ts.tv_sec * 1000000000LL + ts.tv_nsec; }
long long split(long long ns) { struct timespec64 t = ns_to_timespec64(ns); return t.tv_sec * 10 + (t.tv_nsec == 0 ? 0 : t.tv_nsec / 100000000); }
long normalized(long long sec, long long nsec) { set_normalized_timespec64(&ts, sec, nsec); return ts.tv_sec * 10 + ts.tv_nsec / 100000000; }
unsigned long now(void) { return jiffies; }
unsigned long rnd(unsigned long j) { return round_jiffies(j); }
unsigned long rnd_up(unsigned long j) { return round_jiffies_up(j); }
unsigned long rnd_rel(unsigned long j) { return round_jiffies_relative(j); }
"""

SECOND = 1_000_000_000


@pytest.fixture
def machine() -> Machine:
    return Machine(Kernel())


@pytest.fixture
def g(machine):
    return build(machine, CODE)


def _s(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


@pytest.mark.trio
async def test_the_clocks_agree_with_each_other_and_the_host(machine, g):
    mono = await machine.call(g["mono"])
    boot = await machine.call(g["with_offset"], 1)            # TK_OFFS_BOOT: never suspended
    real = await machine.call(g["with_offset"], 0)            # TK_OFFS_REAL
    tai = await machine.call(g["with_offset"], 2)             # no TAI offset set
    host = time.time_ns()
    assert 0 <= boot - mono < SECOND
    assert abs(real - host) < 2 * SECOND and abs(tai - real) < SECOND
    assert abs(await machine.call(g["real_seconds"]) - host // SECOND) <= 1
    assert await machine.call(g["mono_seconds"]) == (await machine.call(g["mono"])) // SECOND
    assert abs(await machine.call(g["real_ts"]) - time.time_ns()) < 2 * SECOND
    assert 0 <= await machine.call(g["mono_ts"]) - mono < SECOND
    booted = await machine.call(g["boot_ts"])                 # REALTIME - BOOTTIME
    assert abs(booted + await machine.call(g["mono"]) - time.time_ns()) < 2 * SECOND


@pytest.mark.trio
async def test_timespecs_are_normalised_and_returned_in_two_registers(machine, g):
    assert await machine.call(g["split"], 2_500_000_000) == 25
    assert _s(await machine.call(g["split"], -1_500_000_000)) == -15        # {-2, 0.5 s}
    assert await machine.call(g["normalized"], 1, 2_300_000_000) == 33
    assert _s(await machine.call(g["normalized"], 3, -500_000_000)) == 25


@pytest.mark.trio
async def test_round_jiffies_rounds_to_whole_seconds_in_the_future(machine, g):
    now = await machine.call(g["now"])
    base = (now // HZ + 10) * HZ                              # a whole second, 10 s ahead
    assert await machine.call(g["rnd"], base + HZ // 4 - 1) == base          # down: under a quarter
    assert await machine.call(g["rnd"], base + HZ // 4) == base + HZ         # up from a quarter
    assert await machine.call(g["rnd_up"], base + 1) == base + HZ
    past = now - 3 * HZ
    assert await machine.call(g["rnd"], past) == past                        # not in the future: as given
    rel = await machine.call(g["rnd_rel"], 5 * HZ)
    assert (rel + await machine.call(g["now"])) % HZ in (0, 1) and 4 * HZ <= rel <= 6 * HZ
