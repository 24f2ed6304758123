"""kernel/softirq.c: `__local_bh_enable_ip`, the out-of-line half of
`local_bh_enable()` (and of `spin_unlock_bh()` written inline, as the
rhashtable bucket locks are).

`local_bh_disable()` is inline: it adds SOFTIRQ_DISABLE_OFFSET to the
per-CPU `__preempt_count` the module reads through %gs.  Enabling takes
`cnt` back off that count, as Linux does.  Linux then runs the softirqs
raised meanwhile; kloader's softirqs (timers, tasklets) run in their own
kernel threads, so none is ever pending here, and the count reaching zero
leaves rescheduling to the timer tick.  kloader's own kernel has no
per-CPU preempt count (its headers keep none): there the call changes
nothing.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export


@export("__local_bh_enable_ip", "void __local_bh_enable_ip(unsigned long ip, unsigned int cnt)",
        nargs=2)
def __local_bh_enable_ip(ctx: Any, ip: int, cnt: int) -> None:
    count = ctx.kernel.symbols.get("__preempt_count")
    if count is None:
        return
    address = ctx.machine.per_cpu_base + count.address
    ctx.mem.write_u32(address, (ctx.mem.read_u32(address) - (cnt & 0xFFFFFFFF)) & 0xFFFFFFFF)
