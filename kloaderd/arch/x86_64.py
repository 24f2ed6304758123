"""x86-64 RELA relocations, as Linux's `arch/x86/kernel/module.c`.

Values are computed modulo 2^64 exactly as the kernel's `u64 val = st_value +
r_addend` does, so a PC-relative reference to a per-CPU symbol at a small
address wraps the way it does in Linux.  The checks and messages are
Linux's: R_X86_64_32 must zero-extend, R_X86_64_32S must sign-extend, PC32
and PLT32 are truncated unchecked, and a target that is not zero is refused
(it means the relocation was applied twice or the object is corrupt).

Entries are decoded in bulk from the section bytes (`memoryview.cast`), never
as one Python object per relocation, and grouped by type so each group runs
one tight loop; `bench/bench_link.py` measures the rate.
"""

from __future__ import annotations

import struct
from collections import deque
from functools import partial
from itertools import repeat
from operator import add, and_, itemgetter, sub
from typing import Sequence

from kloaderd.elf.defs import (
    R_X86_64_32, R_X86_64_32S, R_X86_64_64, R_X86_64_NONE, R_X86_64_PC32,
    R_X86_64_PC64, R_X86_64_PLT32, RELA_SIZE,
)
from kloaderd.errors import enoexec

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
_SIGN32 = 1 << 31
_PACK = {4: struct.Struct("<I"), 8: struct.Struct("<Q")}

# type -> (bytes written, PC-relative)
RELOC_TYPES: dict[int, tuple[int, bool]] = {
    R_X86_64_64: (8, False),
    R_X86_64_32: (4, False),
    R_X86_64_32S: (4, False),
    R_X86_64_PC32: (4, True),
    R_X86_64_PLT32: (4, True),
    R_X86_64_PC64: (8, True),
}
_SIZE = {t: size for t, (size, _pcrel) in RELOC_TYPES.items()}


def apply_relocate_add(mem: bytearray, mem_offset: int, section_addr: int, section_size: int,
                       rela: bytes, symbol_values: Sequence[int], modname: str) -> int:
    """Apply one SHT_RELA section to the section at `section_addr`, whose bytes
    are mem[mem_offset:mem_offset + section_size].

    `symbol_values` are the resolved st_values, indexed by symbol (indexes
    were checked by the ELF reader).  Returns the number of entries applied.
    On failure raises ENOEXEC with Linux's message for the first entry Linux
    would stop at; what was written before is unspecified, since the caller
    discards a module whose relocation failed (so does Linux).
    """
    n = len(rela) // RELA_SIZE
    if not n:
        return 0
    words = memoryview(rela).cast("I")              # r_info is (sym << 32) | type
    offs = memoryview(rela).cast("Q")[0::3].tolist()
    types = words[2::6].tolist()
    addends = memoryview(rela).cast("q")[2::3].tolist()
    vals = list(map(add, map(symbol_values.__getitem__, words[3::6].tolist()), addends))   # masked where used
    if _overlapping(offs, types):
        fail = _apply_in_order(mem, mem_offset, section_addr, section_size, offs, types, vals)
    else:
        order = sorted(range(n), key=types.__getitem__)      # stable: ascending within a type
        fails = []
        start = 0
        for rtype in sorted(set(types)):
            stop = start + types.count(rtype)
            fails.append(_dispatch(_apply_group, mem, mem_offset, section_addr, section_size, rtype,
                                   order[start:stop], offs, vals))
            start = stop
        fail = min((f for f in fails if f is not None), default=None)
    if fail is None:
        return n
    k, reason = fail
    _refuse(reason, types[k], offs[k], vals[k] & M64, section_addr, section_size, modname)


def _overlapping(offs: list[int], types: list[int]) -> bool:
    """Whether two entries patch overlapping bytes (then only in-order application is exact)."""
    if len(offs) < 2:
        return False
    ends = list(map(add, offs, map(_SIZE.get, types, repeat(0))))
    order = sorted(range(len(offs)), key=offs.__getitem__)
    starts = list(map(offs.__getitem__, order))
    ends = list(map(ends.__getitem__, order))
    # Sorted by start, no overlap iff every entry starts at or after the previous one ends.
    return min(map(sub, starts[1:], ends[:-1])) < 0


def _dispatch(apply, mem: bytearray, base: int, pc: int, section_size: int, rtype: int,
              idx: Sequence[int], offs: list[int], vals: list[int]) -> tuple[int, str] | None:
    """NONE writes nothing; an unknown type stops at its first entry; the rest are applied."""
    if rtype == R_X86_64_NONE:
        return None
    spec = RELOC_TYPES.get(rtype)
    if spec is None:
        return idx[0], "type"
    return apply(mem, base, pc, section_size, rtype, *spec, idx, offs, vals)


def _apply_group(mem: bytearray, base: int, pc: int, section_size: int, rtype: int, size: int, pcrel: bool,
                 idx: list[int], offs: list[int], vals: list[int]) -> tuple[int, str] | None:
    """Apply the non-overlapping entries of one type in bulk; (index, reason) of the first refused, or None.

    The checks run over whole lists in C (max, any, map); only when one fails
    does the entry-by-entry walk find which entry Linux would stop at.
    """
    g_offs = list(map(offs.__getitem__, idx))
    g_vals = list(map(vals.__getitem__, idx))
    positions = list(map(add, g_offs, repeat(base)))
    ok = max(g_offs) <= section_size - size and not any(
        map(itemgetter(0), map(partial(_PACK[size].unpack_from, mem), positions)))    # targets all zero
    if ok and rtype == R_X86_64_32:
        ok = max(map(and_, g_vals, repeat(M64))) <= M32                        # zero-extends
    elif ok and rtype == R_X86_64_32S:
        ok = max(map(and_, map(add, g_vals, repeat(_SIGN32)), repeat(M64))) <= M32   # sign-extends
    if not ok:
        return _apply_checked(mem, base, pc, section_size, rtype, size, pcrel, idx, offs, vals)
    mask = M32 if size == 4 else M64
    if pcrel:                                   # S + A - P
        g_vals = map(sub, g_vals, map(add, g_offs, repeat(pc)))
    deque(map(partial(_PACK[size].pack_into, mem), positions, map(and_, g_vals, repeat(mask))), maxlen=0)
    return None


def _apply_checked(mem: bytearray, base: int, pc: int, section_size: int, rtype: int, size: int, pcrel: bool,
                   idx: Sequence[int], offs: list[int], vals: list[int]) -> tuple[int, str] | None:
    """Entry by entry, as Linux's loop: the reference the bulk path falls back on."""
    mask = M32 if size == 4 else M64
    zero = bytes(size)
    for k in idx:
        o = offs[k]
        if o > section_size - size:
            return k, "bounds"
        v = vals[k] & M64
        if (rtype == R_X86_64_32 and v > M32) or (rtype == R_X86_64_32S and _SIGN32 <= v <= M64 - _SIGN32):
            return k, "overflow"
        p = base + o
        if mem[p:p + size] != zero:
            return k, "nonzero"
        if pcrel:
            v -= pc + o
        mem[p:p + size] = (v & mask).to_bytes(size, "little")
    return None


def _apply_in_order(mem: bytearray, base: int, pc: int, section_size: int,
                    offs: list[int], types: list[int], vals: list[int]) -> tuple[int, str] | None:
    """Entry by entry, as Linux loops: exact when entries overlap."""
    for k, rtype in enumerate(types):
        fail = _dispatch(_apply_checked, mem, base, pc, section_size, rtype, (k,), offs, vals)
        if fail is not None:
            return fail
    return None


def _refuse(reason: str, rtype: int, o: int, val: int, section_addr: int, section_size: int, modname: str):
    if reason == "type":
        raise enoexec(f"{modname}: Unknown rela relocation: {rtype}")
    if reason == "bounds":
        raise enoexec(f"{modname}: relocation type {rtype} at offset {o:#x} is outside its {section_size}-byte section")
    if reason == "overflow":
        raise enoexec(f"overflow in relocation type {rtype} val {val:x}\n"
                      f"`{modname}' likely not compiled with -mcmodel=kernel")
    if RELOC_TYPES[rtype][1]:
        val = (val - section_addr - o) & M64
    raise enoexec(f"x86/modules: Invalid relocation target, existing value is nonzero for type {rtype}, "
                  f"loc {section_addr + o:016x}, val {val:x}")
