"""drivers/firmware/dmi_scan.c: the machine's DMI identity and the quirk
tables modules match against it (`dmi_check_system`, `dmi_first_match`,
`dmi_match`, `dmi_get_system_info`).

The emulated machine's SMBIOS strings are the ones its oopses print
("Hardware name: kloader emulated x86-64 machine, BIOS kloader
01/01/2024"): BIOS vendor and version "kloader", BIOS date "01/01/2024",
system vendor "kloader", product name "emulated x86-64 machine"; every
other field is absent, so a match on it fails, as dmi_matches() fails on a
NULL dmi_ident.  A table is `struct dmi_system_id` entries (Linux 6.1's
layout: callback@0, ident@8, four `struct dmi_strmatch` {slot:7,
exact_match:1, substr[79]}@16, driver_data@336) ending at one whose first
slot is DMI_NONE.  A matching entry's callback is module code, run as
Linux runs it; a nonzero return stops the scan.  DMI_OEM_STRING matches
nothing: the machine has no OEM strings.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.callback import call_module_code

LAYOUTS = (6, 1)
ENTRY_SIZE, MATCHES, STRMATCH_SIZE, SUBSTR_LEN = 344, 16, 80, 79
DMI_NONE, DMI_OEM_STRING, DMI_STRING_MAX = 0, 24, 23
MAX_ENTRIES = 4096      # a table without its terminator stops here (Linux would run off its end)
IDENT = {1: "kloader", 2: "kloader", 3: "01/01/2024", 6: "kloader",   # BIOS vendor/version/date,
         7: "emulated x86-64 machine"}                                 # sys vendor, product name


def _matches(ctx: Any, entry: int) -> bool:
    """dmi_matches()."""
    mem = ctx.mem
    for i in range(4):
        match = entry + MATCHES + i * STRMATCH_SIZE
        head = mem.read(match, 1)[0]
        slot, exact = head & 0x7F, head >> 7
        if slot == DMI_NONE:
            break
        info = IDENT.get(slot)
        if info is None or slot >= DMI_STRING_MAX:
            return False
        substr = mem.read_cstr(match + 1, SUBSTR_LEN).decode("latin-1")
        if not (info == substr if exact else substr in info):
            return False
    return True


def _entries(ctx: Any, table: int):
    for i in range(MAX_ENTRIES):
        entry = table + i * ENTRY_SIZE
        if ctx.mem.read(entry + MATCHES, 1)[0] & 0x7F == DMI_NONE:    # dmi_is_end_of_table()
            return
        yield entry


@export("dmi_check_system", "int dmi_check_system(const struct dmi_system_id *list)", nargs=1)
def dmi_check_system(ctx: Any, table: int) -> Any:
    """How many entries match; each match's callback runs, a nonzero one stops the scan."""
    matched = [entry for entry in _entries(ctx, table) if _matches(ctx, entry)]
    if not any(ctx.mem.read_u64(entry) for entry in matched):
        return len(matched)

    async def calling() -> int:
        count = 0
        for entry in matched:
            count += 1
            callback = ctx.mem.read_u64(entry)
            if callback and await call_module_code(ctx, callback, entry) & 0xFFFFFFFF:
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
