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

from typing import Sequence

from kloaderd.elf.defs import (
    R_X86_64_32, R_X86_64_32S, R_X86_64_64, R_X86_64_NONE, R_X86_64_PC32,
    R_X86_64_PC64, R_X86_64_PLT32, RELA_SIZE,
)
from kloaderd.errors import enoexec

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
_SIGN32 = 1 << 31

# type -> (bytes written, PC-relative)
RELOC_TYPES: dict[int, tuple[int, bool]] = {
    R_X86_64_64: (8, False),
    R_X86_64_32: (4, False),
    R_X86_64_32S: (4, False),
    R_X86_64_PC32: (4, True),
    R_X86_64_PLT32: (4, True),
    R_X86_64_PC64: (8, True),
}


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
    q = memoryview(rela).cast("Q")
    offs = q[0::3].tolist()
    infos = q[1::3].tolist()
    types = [i & M32 for i in infos]
    vals = [(symbol_values[i >> 32] + a) & M64 for i, a in zip(infos, q[2::3].tolist())]
    kinds = set(types)
    groups = {t: [k for k, u in enumerate(types) if u == t] for t in kinds} if len(kinds) > 1 else {types[0]: range(n)}
    if _overlapping(offs, types):
        fail = _apply_in_order(mem, mem_offset, section_addr, section_size, offs, types, vals)
    else:
        fails = (_apply_group(mem, mem_offset, section_addr, section_size, t, idx, offs, vals)
                 for t, idx in groups.items())
        fail = min((f for f in fails if f is not None), default=None)
    if fail is None:
        return n
    _refuse(fail[1], types[fail[0]], offs[fail[0]], vals[fail[0]], section_addr, section_size, modname)


def _overlapping(offs: list[int], types: list[int]) -> bool:
    """Whether two entries patch overlapping bytes (then only in-order application is exact)."""
    spans = sorted((o, RELOC_TYPES.get(t, (0,))[0]) for o, t in zip(offs, types))
    end = -1
    for o, size in spans:
        if o < end:
            return True
        end = max(end, o + size)
    return False


def _apply_group(mem: bytearray, base: int, pc: int, section_size: int, rtype: int,
                 idx: Sequence[int], offs: list[int], vals: list[int]) -> tuple[int, str] | None:
    """Apply every entry of one type; (index, reason) of the first it must refuse, or None."""
    if rtype == R_X86_64_NONE:
        return None
    spec = RELOC_TYPES.get(rtype)
    if spec is None:
        return idx[0], "type"
    size, pcrel = spec
    limit = section_size - size
    zero = bytes(size)
    mask = M32 if size == 4 else M64
    if rtype == R_X86_64_32:
        lo, hi = 0, M32                           # must zero-extend
    elif rtype == R_X86_64_32S:
        lo, hi = M64 - _SIGN32 + 1, _SIGN32 - 1   # must sign-extend: outside (hi, lo)
    else:
        lo = hi = None
    for k in idx:
        o = offs[k]
        if o > limit:
            return k, "bounds"
        v = vals[k]
        if lo is not None and (v > hi if rtype == R_X86_64_32 else hi < v < lo):
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
        fail = _apply_group(mem, base, pc, section_size, rtype, (k,), offs, vals)
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
