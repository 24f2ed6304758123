"""lib/ratelimit.c: `___ratelimit`, behind printk_ratelimited(),
net_ratelimit()'s callers and every DEFINE_RATELIMIT_STATE.

The state lives in the caller's `struct ratelimit_state` (Linux 6.1
layout: lock@0, interval@4, burst@8, printed@12, missed@16, begin@24,
flags@32) and is updated there, so a module reading it sees what Linux
would.  On one emulated CPU the state's lock is never contended, so the
"too busy to print" early return of Linux never happens.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.printk import KERN_WARNING

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

RATELIMIT_MSG_ON_RELEASE = 1
INTERVAL, BURST, PRINTED, MISSED, BEGIN, FLAGS = 4, 8, 12, 16, 24, 32
_MASK64 = (1 << 64) - 1


def _s32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


@export("___ratelimit", "int ___ratelimit(struct ratelimit_state *rs, const char *func)", nargs=2)
def ___ratelimit(ctx: Any, rs: int, func: int) -> int:
    mem = ctx.mem
    interval, burst = _s32(mem.read_u32(rs + INTERVAL)), _s32(mem.read_u32(rs + BURST))
    if not interval:
        return 1
    now = ctx.machine.jiffies()
    if not mem.read_u64(rs + BEGIN):
        mem.write_u64(rs + BEGIN, now)
    begin = mem.read_u64(rs + BEGIN)
    if _signed64(now - (begin + interval)) > 0:              # time_is_before_jiffies()
        missed = _s32(mem.read_u32(rs + MISSED))
        if missed and not mem.read_u64(rs + FLAGS) & RATELIMIT_MSG_ON_RELEASE:
            name = mem.read_cstr(func, 256).decode("utf-8", "replace")
            ctx.kernel.log.emit(KERN_WARNING, f"{name}: {missed} callbacks suppressed",
                                getattr(ctx.module, "name", None))
            mem.write_u32(rs + MISSED, 0)
        mem.write_u64(rs + BEGIN, now)
        mem.write_u32(rs + PRINTED, 0)
    printed = _s32(mem.read_u32(rs + PRINTED))
    if burst and burst > printed:
        mem.write_u32(rs + PRINTED, (printed + 1) & 0xFFFFFFFF)
        return 1
    mem.write_u32(rs + MISSED, (mem.read_u32(rs + MISSED) + 1) & 0xFFFFFFFF)
    return 0


def _signed64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value
