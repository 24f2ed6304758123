"""lib/ratelimit.c: `___ratelimit`, behind printk_ratelimited(),
net_ratelimit()'s callers and every DEFINE_RATELIMIT_STATE.

The state lives in the caller's `struct ratelimit_state` (at the
kernel's offsets, kernel/layouts.py) and is updated there, so a module
reading it sees what Linux would.  On one emulated CPU the state's lock is never contended, so the
"too busy to print" early return of Linux never happens.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.layouts import struct
from ..kernel.printk import KERN_WARNING

STATE = struct("struct ratelimit_state", "linux/ratelimit.h", "interval", "burst", "printed", "missed",
               "begin", "flags")
STRUCTS = (STATE,)
RATELIMIT_MSG_ON_RELEASE = 1
_MASK64 = (1 << 64) - 1


def _s32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


@export("___ratelimit", "int ___ratelimit(struct ratelimit_state *rs, const char *func)", nargs=2)
def ___ratelimit(ctx: Any, rs: int, func: int) -> int:
    mem, at = ctx.mem, ctx.kernel.layouts[STATE]
    interval, burst = _s32(mem.read_u32(rs + at.interval)), _s32(mem.read_u32(rs + at.burst))
    if not interval:
        return 1
    now = ctx.machine.jiffies()
    if not mem.read_u64(rs + at.begin):
        mem.write_u64(rs + at.begin, now)
    begin = mem.read_u64(rs + at.begin)
    if _signed64(now - (begin + interval)) > 0:              # time_is_before_jiffies()
        missed = _s32(mem.read_u32(rs + at.missed))
        if missed and not mem.read_u32(rs + at.flags) & RATELIMIT_MSG_ON_RELEASE:
            name = mem.read_cstr(func, 256).decode("utf-8", "replace")
            ctx.kernel.log.emit(KERN_WARNING, f"{name}: {missed} callbacks suppressed",
                                getattr(ctx.module, "name", None))
            mem.write_u32(rs + at.missed, 0)
        mem.write_u64(rs + at.begin, now)
        mem.write_u32(rs + at.printed, 0)
    printed = _s32(mem.read_u32(rs + at.printed))
    if burst and burst > printed:
        mem.write_u32(rs + at.printed, (printed + 1) & 0xFFFFFFFF)
        return 1
    mem.write_u32(rs + at.missed, (mem.read_u32(rs + at.missed) + 1) & 0xFFFFFFFF)
    return 0


def _signed64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value
