"""kernel/time/time.c: the out-of-line jiffies conversions
(`__msecs_to_jiffies`, `jiffies_to_msecs`, `__usecs_to_jiffies`,
`jiffies_to_usecs`), which msecs_to_jiffies() and friends call for values
not known at compile time; and `sys_tz`, the kernel's `struct timezone`
(`settimeofday()`'s, which nothing sets here: UTC, no DST, all zero).

At the emulated kernel's HZ (config.HZ, 250, as Debian's CONFIG_HZ), with
Linux's rounding: milliseconds and microseconds round up to whole jiffies, a
negative millisecond count is MAX_JIFFY_OFFSET, and jiffies convert back
exactly (HZ divides 1000).
"""

from __future__ import annotations

from typing import Any

from ..config import HZ
from ..kernel.api import export
from ..kernel.kdata import DataExport, export_data

MSEC_PER_SEC, USEC_PER_SEC = 1000, 1_000_000
LONG_MAX = (1 << 63) - 1
MAX_JIFFY_OFFSET = (LONG_MAX >> 1) - 1
_U32 = 0xFFFFFFFF

# struct timezone { int tz_minuteswest; int tz_dsttime; }, any release
export_data("sys_tz", DataExport(lambda _profile: 8))


@export("__msecs_to_jiffies", "unsigned long __msecs_to_jiffies(const unsigned int m)", nargs=1)
def __msecs_to_jiffies(ctx: Any, m: int) -> int:
    m &= _U32
    if m & 0x80000000:                       # (int)m < 0: "infinite" timeout
        return MAX_JIFFY_OFFSET
    per = MSEC_PER_SEC // HZ
    return (m + per - 1) // per


@export("__usecs_to_jiffies", "unsigned long __usecs_to_jiffies(const unsigned int u)", nargs=1)
def __usecs_to_jiffies(ctx: Any, u: int) -> int:
    u &= _U32
    per = USEC_PER_SEC // HZ
    return min((u + per - 1) // per, MAX_JIFFY_OFFSET)


@export("jiffies_to_msecs", "unsigned int jiffies_to_msecs(const unsigned long j)", nargs=1)
def jiffies_to_msecs(ctx: Any, j: int) -> int:
    return (j * (MSEC_PER_SEC // HZ)) & _U32


@export("jiffies_to_usecs", "unsigned int jiffies_to_usecs(const unsigned long j)", nargs=1)
def jiffies_to_usecs(ctx: Any, j: int) -> int:
    return (j * (USEC_PER_SEC // HZ)) & _U32
