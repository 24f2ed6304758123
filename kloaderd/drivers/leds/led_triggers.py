"""drivers/leds/led-triggers.c: LED triggers (`led_trigger_register`).

As Linux 6.1: the trigger's lock and LED list are initialised; a name
already registered with a compatible trigger type is -EEXIST; the trigger
goes on `trigger_list` through `next_trig` (in guest memory).  The emulated
machine has no LEDs, so no LED ever takes the trigger as its default and
no activate/deactivate callback runs.  Unregistering a trigger whose
`next_trig` is empty does nothing, as in Linux.  The kernel's own triggers
(disk-activity/read/write, cpu, panic on Debian) hold their names.  Layout:
led_trigger {name@0 (char *), leddev_list_lock@40, led_cdevs@48,
next_trig@64, trigger_type@32}.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.registry import record_listed
from ...lib.list import GuestList, init_list_head

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

NAME, TRIGGER_TYPE, LOCK, LED_CDEVS, NEXT_TRIG = 0, 32, 40, 48, 64
BUILTIN = {"disk-activity": "LEDS_TRIGGER_DISK", "disk-read": "LEDS_TRIGGER_DISK",
           "disk-write": "LEDS_TRIGGER_DISK", "cpu": "LEDS_TRIGGER_CPU",
           "panic": "LEDS_TRIGGER_PANIC"}


class Triggers:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)
        profile = getattr(kernel, "profile", None)
        self.builtin = {name for name, option in BUILTIN.items()
                        if profile is None or profile.enabled(option)}


def _name(mem: Any, trig: int) -> str:
    return mem.read_cstr(mem.read_u64(trig + NAME), 64).decode("utf-8", "replace")


@export("led_trigger_register", "int led_trigger_register(struct led_trigger *trigger)", nargs=1,
        gpl=True)
def led_trigger_register(ctx: Any, trig: int) -> int:
    mem, state = ctx.mem, ctx.kernel.subsystem(Triggers)
    mem.write_u32(trig + LOCK, 0)
    init_list_head(mem, trig + LED_CDEVS)
    name, kind = _name(mem, trig), mem.read_u64(trig + TRIGGER_TYPE)
    if name in state.builtin:
        return -errno.EEXIST
    for node in state.list:
        other = node - NEXT_TRIG
        other_kind = mem.read_u64(other + TRIGGER_TYPE)
        if _name(mem, other) == name and (kind == other_kind or not kind or not other_kind):
            return -errno.EEXIST
    state.list.add_tail(ctx, trig + NEXT_TRIG)
    record_listed(ctx.kernel, "led_trigger", trig, f"led trigger {name}", state.list, NEXT_TRIG)
    return 0


@export("led_trigger_unregister", "void led_trigger_unregister(struct led_trigger *trigger)",
        nargs=1, gpl=True)
def led_trigger_unregister(ctx: Any, trig: int) -> None:
    mem = ctx.mem
    if mem.read_u64(trig + NEXT_TRIG) == trig + NEXT_TRIG:          # list_empty_careful()
        return
    ctx.kernel.subsystem(Triggers).list.delete(ctx, trig + NEXT_TRIG, init=True)
    ctx.kernel.registrations.registry("led_trigger").remove(trig)
