"""arch/x86/kernel/cpu/match.c: x86_match_cpu(), a module's CPU table
(`struct x86_cpu_id`, MODULE_DEVICE_TABLE(x86cpu, ...)) against the
emulated CPU (`boot_cpu_data`, cpuinfo.py).

The table ends at an entry whose vendor, family, model and feature are all
0; X86_VENDOR_ANY (0xffff), family/model/stepping/feature 0 match
anything; steppings is a bitmask.  A driver for a CPU kloader does not
emulate finds no match (NULL) and its init returns -ENODEV, as on such a
machine.
"""

from __future__ import annotations

import struct
from typing import Any

from ...kernel.api import export
from .cpuinfo import MODEL, STEPPING, VENDOR, X86, boot_cpu_data, cpu_has

LAYOUTS = (6, 1)
ENTRY_SIZE = 24                 # struct x86_cpu_id: five u16, then driver_data@16
X86_VENDOR_ANY = 0xFFFF
MAX_ENTRIES = 4096              # a table without its terminator stops here (a fault in Linux)


def matches(entry: tuple[int, int, int, int, int]) -> bool:
    vendor, family, model, steppings, feature = entry
    cpu = boot_cpu_data()
    return ((vendor == X86_VENDOR_ANY or vendor == cpu[VENDOR])
            and (not family or family == cpu[X86])
            and (not model or model == cpu[MODEL])
            and (not steppings or bool(steppings >> cpu[STEPPING] & 1))
            and (not feature or cpu_has(feature)))


@export("x86_match_cpu", "const struct x86_cpu_id *x86_match_cpu(const struct x86_cpu_id *match)",
        nargs=1)
def x86_match_cpu(ctx: Any, match: int) -> int:
    for i in range(MAX_ENTRIES):
        entry = struct.unpack("<5H", ctx.mem.read(match + i * ENTRY_SIZE, 10))
        vendor, family, model, _, feature = entry
        if not vendor | family | model | feature:
            return 0
        if matches(entry):
            return match + i * ENTRY_SIZE
    return 0
