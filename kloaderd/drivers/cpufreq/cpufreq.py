"""drivers/cpufreq/cpufreq.c: CPU frequency governors
(`cpufreq_register_governor`).

As Linux 6.1: NULL is -EINVAL; a name already registered (compared
case-insensitively over CPUFREQ_NAME_LEN) is -EBUSY; the governor goes on
`cpufreq_governor_list` through `governor_list` (list_add, in guest
memory).  The emulated machine has no cpufreq driver, so no policy ever
uses a governor; unregistering just unlinks, and
`cpufreq_get_current_driver()` is NULL.  The kernel's own governors
(performance, and schedutil/powersave/userspace/ondemand/conservative when
the profile's .config builds them in) hold their names.  `struct
cpufreq_governor` is read at the kernel's offsets (kernel/layouts.py).
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.registry import record_listed
from ...lib.list import GuestList

GOVERNOR = struct("struct cpufreq_governor", "linux/cpufreq.h", "name", "governor_list", "owner")
STRUCTS = (GOVERNOR,)
CPUFREQ_NAME_LEN = 16
BUILTIN = {"performance": "CPU_FREQ_GOV_PERFORMANCE", "powersave": "CPU_FREQ_GOV_POWERSAVE",
           "userspace": "CPU_FREQ_GOV_USERSPACE", "ondemand": "CPU_FREQ_GOV_ONDEMAND",
           "conservative": "CPU_FREQ_GOV_CONSERVATIVE", "schedutil": "CPU_FREQ_GOV_SCHEDUTIL"}
OWN_BUILTIN = ("performance", "schedutil")


class Governors:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)
        # kloader's own kernel has x86's usual two, not every governor built in
        self.builtin = {name for name, option in BUILTIN.items()
                        if kernel.builds_in(option) and (kernel.profile is not None or name in OWN_BUILTIN)}


def _name(mem: Any, at: Any, gov: int) -> str:
    return mem.read(gov + at.name, CPUFREQ_NAME_LEN).split(b"\0", 1)[0].decode("utf-8", "replace")


@export("cpufreq_register_governor", "int cpufreq_register_governor(struct cpufreq_governor "
        "*governor)", nargs=1, gpl=True)
def cpufreq_register_governor(ctx: Any, gov: int) -> int:
    if not gov:
        return -errno.EINVAL
    mem, state, at = ctx.mem, ctx.kernel.subsystem(Governors), ctx.kernel.layouts[GOVERNOR]
    name = _name(mem, at, gov)
    taken = {n.lower() for n in state.builtin} | {_name(mem, at, node - at.governor_list).lower()
                                                  for node in state.list}
    if name.lower() in taken:
        return -errno.EBUSY
    state.list.add(ctx, gov + at.governor_list)
    record_listed(ctx.kernel, "cpufreq_governor", gov, f"cpufreq governor {name}", state.list,
                  at.governor_list, mem.read_u64(gov + at.owner))
    return 0


@export("cpufreq_unregister_governor", "void cpufreq_unregister_governor(struct cpufreq_governor "
        "*governor)", nargs=1, gpl=True)
def cpufreq_unregister_governor(ctx: Any, gov: int) -> None:
    if not gov:
        return
    ctx.kernel.subsystem(Governors).list.delete(ctx, gov + ctx.kernel.layouts[GOVERNOR].governor_list)
    ctx.kernel.registrations.registry("cpufreq_governor").remove(gov)


@export("cpufreq_get_current_driver", "struct cpufreq_driver *cpufreq_get_current_driver(void)",
        nargs=0, gpl=True)
def cpufreq_get_current_driver(ctx: Any) -> int:
    return 0
