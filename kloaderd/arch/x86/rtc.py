"""The CMOS RAM behind the RTC's index and data ports (Linux's
arch/x86/kernel/rtc.c): `rtc_cmos_read(addr)` writes the index to port
0x70 and reads port 0x71, `rtc_cmos_write` writes it.  kloader's machine has
no RTC (ioport.py: no device on any port), so every byte reads 0xff and a
write goes nowhere — what nvram.ko's /dev/nvram and /proc/driver/nvram show.
`rtc_lock`, the spinlock callers hold around the pair, is the kernel's
unlocked `spinlock_t`.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export, export_object
from .ioport import port_read

RTC_PORT_DATA = 0x71

export_object("rtc_lock", "extern spinlock_t rtc_lock", 4, writable=True)


@export("rtc_cmos_read", "unsigned char rtc_cmos_read(unsigned char addr)", nargs=1)
def rtc_cmos_read(ctx: Any, addr: int) -> int:
    return port_read(RTC_PORT_DATA, 1)


@export("rtc_cmos_write", "void rtc_cmos_write(unsigned char val, unsigned char addr)", nargs=2)
def rtc_cmos_write(ctx: Any, val: int, addr: int) -> None:
    return None
