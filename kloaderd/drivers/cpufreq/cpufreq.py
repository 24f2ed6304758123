"""drivers/cpufreq/cpufreq.c: CPU frequency governors
(`cpufreq_register_governor`).

As Linux 6.1: NULL is -EINVAL; a name already registered (compared
case-insensitively over CPUFREQ_NAME_LEN) is -EBUSY; the governor goes on
`cpufreq_governor_list` through `governor_list` (list_add, in guest
memory).  The emulated machine has no cpufreq driver, so no policy ever
uses a governor; unregistering just unlinks.  The kernel's own governors
(performance, and schedutil/powersave/userspace/ondemand/conservative when
the profile's .config builds them in) hold their names.  Layout:
cpufreq_governor {name@0 (16 bytes), governor_list@72, owner@88}.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.registry import record_listed
from ...lib.list import GuestList

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

NAME, LIST, OWNER = 0, 72, 88
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


def _name(mem: Any, gov: int) -> str:
    return mem.read(gov + NAME, CPUFREQ_NAME_LEN).split(b"\0", 1)[0].decode("utf-8", "replace")


@export("cpufreq_register_governor", "int cpufreq_register_governor(struct cpufreq_governor "
        "*governor)", nargs=1, gpl=True)
def cpufreq_register_governor(ctx: Any, gov: int) -> int:
    if not gov:
        return -errno.EINVAL
    mem, state = ctx.mem, ctx.kernel.subsystem(Governors)
    name = _name(mem, gov)
    taken = {n.lower() for n in state.builtin} | {_name(mem, node - LIST).lower()
                                                  for node in state.list}
    if name.lower() in taken:
        return -errno.EBUSY
    state.list.add(ctx, gov + LIST)
    record_listed(ctx.kernel, "cpufreq_governor", gov, f"cpufreq governor {name}", state.list,
                  LIST, mem.read_u64(gov + OWNER))
    return 0


@export("cpufreq_unregister_governor", "void cpufreq_unregister_governor(struct cpufreq_governor "
        "*governor)", nargs=1, gpl=True)
def cpufreq_unregister_governor(ctx: Any, gov: int) -> None:
    if not gov:
        return
    ctx.kernel.subsystem(Governors).list.delete(ctx, gov + LIST)
    ctx.kernel.registrations.registry("cpufreq_governor").remove(gov)
