"""arch/x86/kernel/cpu/match.c: x86_match_cpu(), a module's CPU table
(`struct x86_cpu_id`, MODULE_DEVICE_TABLE(x86cpu, ...)) against the
emulated CPU (`boot_cpu_data`, cpuinfo.py).

The table ends at the first entry without X86_CPU_ID_FLAG_ENTRY_VALID in
its `flags`, in kernels whose `struct x86_cpu_id` has them (6.12, and 6.1
since the stable backport Debian's 6.1 carries), else at an entry whose
vendor, family, model and feature are all 0; X86_VENDOR_ANY (0xffff),
family/model/stepping/feature 0 match anything; steppings is a bitmask.
A driver for a CPU kloader does not emulate finds no match (NULL) and its
init returns -ENODEV, as on such a machine.
"""

from __future__ import annotations

import struct
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct as declare
from .cpuinfo import cpu, cpu_has

CPU_ID = declare("struct x86_cpu_id", "linux/mod_devicetable.h", "vendor", "family", "model", "steppings",
                 "feature", "driver_data", optional=("flags",))
STRUCTS = (CPU_ID,)
X86_VENDOR_ANY = 0xFFFF
X86_CPU_ID_FLAG_ENTRY_VALID = 1
MAX_ENTRIES = 4096              # a table without its terminator stops here (a fault in Linux)


def matches(vendor: int, family: int, model: int, steppings: int, feature: int) -> bool:
    c = cpu()
    return ((vendor == X86_VENDOR_ANY or vendor == c.vendor)
            and (not family or family == c.family)
            and (not model or model == c.model)
            and (not steppings or bool(steppings >> c.stepping & 1))
            and (not feature or cpu_has(feature)))


@export("x86_match_cpu", "const struct x86_cpu_id *x86_match_cpu(const struct x86_cpu_id *match)",
        nargs=1)
def x86_match_cpu(ctx: Any, match: int) -> int:
    at = ctx.kernel.layouts[CPU_ID]
    fields = (at.vendor, at.family, at.model, at.steppings, at.feature)
    for i in range(MAX_ENTRIES):
        entry = match + i * at.size
        data = ctx.mem.read(entry, at.size)
        vendor, family, model, steppings, feature = (struct.unpack_from("<H", data, f)[0] for f in fields)
        if at.flags is not None:
            if not struct.unpack_from("<H", data, at.flags)[0] & X86_CPU_ID_FLAG_ENTRY_VALID:
                return 0
        elif not vendor | family | model | feature:
            return 0
        if matches(vendor, family, model, steppings, feature):
            return entry
    return 0
