"""drivers/firmware/dmi_scan.c: the machine's DMI identity and the quirk
tables modules match against it (`dmi_check_system`, `dmi_first_match`,
`dmi_match`, `dmi_get_system_info`).

The emulated machine's SMBIOS strings are the ones its oopses print
("Hardware name: kloader emulated x86-64 machine, BIOS kloader
01/01/2024"): BIOS vendor and version "kloader", BIOS date "01/01/2024",
system vendor "kloader", product name "emulated x86-64 machine"; every
other field is absent, so a match on it fails, as dmi_matches() fails on a
NULL dmi_ident.  A table is `struct dmi_system_id` entries (callback,
ident, four `struct dmi_strmatch` {slot:7, exact_match:1, substr[79]} in
`matches`, driver_data; at the kernel's offsets) ending at one whose first
slot is DMI_NONE.  A matching entry's callback is module code, run as
Linux runs it; a nonzero return stops the scan.  DMI_OEM_STRING matches
nothing: the machine has no OEM strings.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.callback import call_module_code
from ...kernel.layouts import struct

SYSTEM_ID = struct("struct dmi_system_id", "linux/mod_devicetable.h", "callback", "ident", "matches",
                   "driver_data")
STRMATCH = struct("struct dmi_strmatch", "linux/mod_devicetable.h", "substr")  # after the slot's byte
STRUCTS = (SYSTEM_ID, STRMATCH)
MATCHES_PER_ENTRY = 4
DMI_NONE, DMI_OEM_STRING, DMI_STRING_MAX = 0, 24, 23
MAX_ENTRIES = 4096      # a table without its terminator stops here (Linux would run off its end)
IDENT = {1: "kloader", 2: "kloader", 3: "01/01/2024", 6: "kloader",   # BIOS vendor/version/date,
         7: "emulated x86-64 machine"}                                 # sys vendor, product name


def _matches(ctx: Any, entry: int) -> bool:
    """dmi_matches()."""
    mem, strmatch = ctx.mem, ctx.kernel.layouts[STRMATCH]
    for i in range(MATCHES_PER_ENTRY):
        match = entry + ctx.kernel.layouts[SYSTEM_ID].matches + i * strmatch.size
        head = mem.read(match, 1)[0]
        slot, exact = head & 0x7F, head >> 7
        if slot == DMI_NONE:
            break
        info = IDENT.get(slot)
        if info is None or slot >= DMI_STRING_MAX:
            return False
        substr = mem.read_cstr(match + strmatch.substr, strmatch.size - strmatch.substr).decode("latin-1")
        if not (info == substr if exact else substr in info):
            return False
    return True


def _entries(ctx: Any, table: int):
    at = ctx.kernel.layouts[SYSTEM_ID]
    for i in range(MAX_ENTRIES):
        entry = table + i * at.size
        if ctx.mem.read(entry + at.matches, 1)[0] & 0x7F == DMI_NONE:    # dmi_is_end_of_table()
            return
        yield entry


@export("dmi_check_system", "int dmi_check_system(const struct dmi_system_id *list)", nargs=1)
def dmi_check_system(ctx: Any, table: int) -> Any:
    """How many entries match; each match's callback runs, a nonzero one stops the scan."""
    matched = [entry for entry in _entries(ctx, table) if _matches(ctx, entry)]
    callback = ctx.kernel.layouts[SYSTEM_ID].callback
    if not any(ctx.mem.read_u64(entry + callback) for entry in matched):
        return len(matched)

    async def calling() -> int:
        count = 0
        for entry in matched:
            count += 1
            fn = ctx.mem.read_u64(entry + callback)
            if fn and await call_module_code(ctx, fn, entry) & 0xFFFFFFFF:
                break
        return count
    return calling()


@export("dmi_first_match", "const struct dmi_system_id *dmi_first_match("
        "const struct dmi_system_id *list)", nargs=1)
def dmi_first_match(ctx: Any, table: int) -> int:
    return next((entry for entry in _entries(ctx, table) if _matches(ctx, entry)), 0)


class DmiIdent:
    """dmi_ident[]: the identity strings in kernel memory, for dmi_get_system_info()."""

    def __init__(self, kernel: Any) -> None:
        self.strings: dict[int, int] = {}
        for slot, text in IDENT.items():
            data = text.encode() + b"\0"
            self.strings[slot] = kernel.slab.alloc(len(data), None)
            kernel.mem.write(self.strings[slot], data)


@export("dmi_get_system_info", "const char *dmi_get_system_info(int field)", nargs=1)
def dmi_get_system_info(ctx: Any, field: int) -> int:
    return ctx.kernel.subsystem(DmiIdent).strings.get(field & 0xFFFFFFFF, 0)


@export("dmi_match", "bool dmi_match(enum dmi_field f, const char *str)", nargs=2)
def dmi_match(ctx: Any, field: int, string: int) -> int:
    info = IDENT.get(field & 0xFFFFFFFF)
    if info is None or not string:
        return int(info is None and not string)
    return int(ctx.mem.read_cstr(string, 256).decode("latin-1") == info)
