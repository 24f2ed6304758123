"""drivers/leds/led-triggers.c: LED triggers (`led_trigger_register`).

As Linux 6.1: the trigger's lock and LED list are initialised; a name
already registered with a compatible trigger type is -EEXIST; the trigger
goes on `trigger_list` through `next_trig` (in guest memory).  The emulated
machine has no LEDs, so no LED ever takes the trigger as its default and
no activate/deactivate callback runs.  Unregistering a trigger whose
`next_trig` is empty does nothing, as in Linux.  The kernel's own triggers
(disk-activity/read/write, cpu, panic on Debian) hold their names.  Layout:
each kernel's own (kloaderd/kernel/layouts.py).
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.registry import record_listed
from ...lib.list import GuestList, init_list_head

TRIGGER = struct("struct led_trigger", "linux/leds.h", "name", "trigger_type", "leddev_list_lock",
                 "led_cdevs", "next_trig")
STRUCTS = (TRIGGER,)         # what these functions read at the kernel's offsets
BUILTIN = {"disk-activity": "LEDS_TRIGGER_DISK", "disk-read": "LEDS_TRIGGER_DISK",
           "disk-write": "LEDS_TRIGGER_DISK", "cpu": "LEDS_TRIGGER_CPU",
           "panic": "LEDS_TRIGGER_PANIC"}


class Triggers:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)
        self.builtin = {name for name, option in BUILTIN.items() if kernel.builds_in(option)}


def _name(ctx: Any, trig: int) -> str:
    mem = ctx.mem
    return mem.read_cstr(mem.read_u64(trig + ctx.kernel.layouts[TRIGGER].name), 64).decode("utf-8", "replace")


@export("led_trigger_register", "int led_trigger_register(struct led_trigger *trigger)", nargs=1,
        gpl=True)
def led_trigger_register(ctx: Any, trig: int) -> int:
    mem, state, t = ctx.mem, ctx.kernel.subsystem(Triggers), ctx.kernel.layouts[TRIGGER]
    mem.write_u32(trig + t.leddev_list_lock, 0)
    init_list_head(mem, trig + t.led_cdevs)
    name, kind = _name(ctx, trig), mem.read_u64(trig + t.trigger_type)
    if name in state.builtin:
        return -errno.EEXIST
    for node in state.list:
        other = node - t.next_trig
        other_kind = mem.read_u64(other + t.trigger_type)
        if _name(ctx, other) == name and (kind == other_kind or not kind or not other_kind):
            return -errno.EEXIST
    state.list.add_tail(ctx, trig + t.next_trig)
    record_listed(ctx.kernel, "led_trigger", trig, f"led trigger {name}", state.list, t.next_trig)
    return 0


@export("led_trigger_unregister", "void led_trigger_unregister(struct led_trigger *trigger)",
        nargs=1, gpl=True)
def led_trigger_unregister(ctx: Any, trig: int) -> None:
    mem, next_trig = ctx.mem, trig + ctx.kernel.layouts[TRIGGER].next_trig
    if mem.read_u64(next_trig) == next_trig:          # list_empty_careful()
        return
    ctx.kernel.subsystem(Triggers).list.delete(ctx, next_trig, init=True)
    ctx.kernel.registrations.registry("led_trigger").remove(trig)
