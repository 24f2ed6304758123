"""lib/bug.c: what a module's `ud2` means, from its `__bug_table`.

x86's BUG() and WARN() are a `ud2` instruction plus a `__bug_table` entry
(`struct bug_entry` with relative pointers: bug_addr_disp, file_disp, line,
flags; 12 bytes).  When module code traps on ud2, report_bug() looks the
address up in that module's table:

* an entry flagged BUGFLAG_WARNING is a WARN: "WARNING: CPU: 0 PID: N at
  FILE:LINE FUNC+off/size [module]", the registers and call trace, the end
  marker, the taint it names (W by default), and the task resumes after
  the ud2 as Linux's does;
* one flagged BUGFLAG_ONCE as well fires once, then is marked BUGFLAG_DONE
  and resumes silently;
* any other entry is a BUG: "kernel BUG at FILE:LINE!", then the
  invalid-opcode oops;
* an address with no entry is a plain invalid opcode.

The "cut here" line comes first unless BUGFLAG_NO_CUT_HERE (WARN() with a
message printed it already, through __warn_printk).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

ENTRY = struct.Struct("<iiHH")
BUGFLAG_WARNING, BUGFLAG_ONCE, BUGFLAG_DONE, BUGFLAG_NO_CUT_HERE = 1, 2, 4, 8
TAINT_LETTERS = "PFSRMBUDAWCIOELKXTN"       # kernel/panic.c taint_flags, by bit number
TAINT_WARN = 9
MAX_ENTRIES = 1 << 16


@dataclass(frozen=True)
class Bug:
    entry: int               # the bug_entry's address
    file: str | None
    line: int
    flags: int

    @property
    def warning(self) -> bool:
        return bool(self.flags & BUGFLAG_WARNING)

    @property
    def taint(self) -> str:
        bit = self.flags >> 8
        return TAINT_LETTERS[bit] if bit < len(TAINT_LETTERS) else TAINT_LETTERS[TAINT_WARN]

    @property
    def cut_here(self) -> bool:
        return not self.flags & BUGFLAG_NO_CUT_HERE


def find_bug(kernel: Any, address: int) -> Bug | None:
    """find_bug(): the entry of the module holding `address`, if any."""
    registrations = getattr(kernel, "registrations", None)      # a bare Machine's kernel has none
    mod = registrations.module_at(address) if registrations is not None else None
    if mod is None or mod.linked is None:
        return None
    mem = kernel.mem
    for index, section in enumerate(mod.image.sections):
        base = mod.linked.section_addr.get(index)
        if section.name != "__bug_table" or base is None:
            continue
        for i in range(min(section.size // ENTRY.size, MAX_ENTRIES)):
            entry = base + i * ENTRY.size
            bug_disp, file_disp, line, flags = ENTRY.unpack(mem.read(entry, ENTRY.size))
            if entry + bug_disp != address:
                continue
            file = mem.read_cstr(entry + 4 + file_disp, 256).decode("utf-8", "replace") \
                if file_disp else None
            return Bug(entry, file, line, flags)
    return None


def mark_done(kernel: Any, bug: Bug) -> bool:
    """For a WARN_ONCE: True when it fired before (stay silent); else mark it."""
    if not bug.flags & BUGFLAG_ONCE:
        return False
    if bug.flags & BUGFLAG_DONE:
        return True
    kernel.mem.write(bug.entry + 10, struct.pack("<H", bug.flags | BUGFLAG_DONE))
    return False
