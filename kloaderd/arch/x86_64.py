"""x86-64 RELA relocations, as Linux's `arch/x86/kernel/module.c`.

For each `Elf64_Rela` entry of a section, in order, Linux computes
`val = st_value + r_addend` modulo 2^64 and then, by type:

| type | writes | check before writing |
|---|---|---|
| R_X86_64_NONE | nothing | — |
| R_X86_64_64 | 8 bytes of `val` | — |
| R_X86_64_32 | 4 bytes | `val` must zero-extend from 32 bits |
| R_X86_64_32S | 4 bytes | `val` must sign-extend from 32 bits |
| R_X86_64_PC32, _PLT32 | 4 bytes of `val - place` | none: truncated |
| R_X86_64_PC64 | 8 bytes of `val - place` | — |

Any other type is refused ("Unknown rela relocation"), and so is a place
whose bytes are not all zero ("Invalid relocation target, existing value is
nonzero": it means the relocation was applied twice or the object is
corrupt).  kloader also refuses a place outside its section, which Linux
trusts the ELF checks to prevent.  `_apply_one_by_one` is that loop, line
for line: the reference, and what reports every refusal.

A distribution module carries ~80,000 relocations, and one by one in Python
they would cost ~0.7 µs each.  `_apply_fast` gets the same bytes with a
constant number of passes over whole lists, each done in C (`map` over
operator functions and bound `struct` methods, `bytes.translate`/`count`):

1. decode the entries in bulk (`memoryview.cast`), drop the NONE entries,
   look up each symbol's value and add the addend; subtract the place for
   the PC-relative types;
2. check, for all entries at once, that every place lies in the section,
   that no two places overlap and that every place is zero (see
   `_places_are_free`);
3. write every value with a `struct` of its type's width *and signedness*
   ('q' for 64, 'I' for 32, 'i' for 32S/PC32/PLT32): `struct` refuses a value
   out of the code's range, which is exactly Linux's overflow check for 32
   and 32S, and declines a PC32 Linux would silently truncate (those go to the
   reference, which truncates as Linux does).

The fast path works on a copy of the section, written back only if every
entry went through; if anything declines (an unknown type, an
overflow, a bad place, values not given as signed 64-bit integers) nothing
has been written and the reference loop runs instead, so the result and the
message are always the reference's.  Symbol values reach the fast path as
signed 64-bit integers (`as_signed64`), so that kernel addresses such as
0xffffffffa0000000 are in the range of the 'i' and 'q' codes.
"""

from __future__ import annotations

import struct
from collections import deque
from itertools import compress, repeat
from operator import add, and_, mul, rshift, sub
from typing import Sequence

from kloaderd.elf.defs import (
    R_X86_64_32, R_X86_64_32S, R_X86_64_64, R_X86_64_NONE, R_X86_64_PC32,
    R_X86_64_PC64, R_X86_64_PLT32, RELA_SIZE,
)
from kloaderd.errors import enoexec

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
_SIGN32 = 1 << 31
_SIGN64 = 1 << 63

# type -> (bytes written, PC-relative)
RELOC_TYPES: dict[int, tuple[int, bool]] = {
    R_X86_64_64: (8, False),
    R_X86_64_32: (4, False),
    R_X86_64_32S: (4, False),
    R_X86_64_PC32: (4, True),
    R_X86_64_PLT32: (4, True),
    R_X86_64_PC64: (8, True),
}

# The fast path's writer per type: width and the range Linux accepts without truncating.
_WRITER: dict[int, struct.Struct] = {
    R_X86_64_64: struct.Struct("<q"),
    R_X86_64_32: struct.Struct("<I"),       # zero-extends
    R_X86_64_32S: struct.Struct("<i"),      # sign-extends
    R_X86_64_PC32: struct.Struct("<i"),     # Linux truncates; out of range goes to the reference
    R_X86_64_PLT32: struct.Struct("<i"),
    R_X86_64_PC64: struct.Struct("<q"),
}
_PCREL: dict[int, int] = {t: int(pcrel) for t, (_size, pcrel) in RELOC_TYPES.items()}
# bytes.translate table for `_places_are_free`: zero -> 1, anything else -> 2.
_MARK = bytes([1] + [2] * 255)
_DECLINED = (struct.error, IndexError, OverflowError, KeyError)
# Below this many entries the reference loop is quicker: the fast path's
# passes cost ~6 µs however few entries they carry (measured: 1 entry 6.3 µs
# against 0.9, 8 entries 9.9 against 5.5, 16 about even), and a small module's
# relocation sections hold a handful each.
FAST_MIN_ENTRIES = 16


def as_signed64(values: Sequence[int]) -> list[int]:
    """Values modulo 2^64 as signed 64-bit integers: the form the fast path takes.
    (v mod 2^64, minus 2^64 where bit 63 is set; whole-list passes, no Python loop.)"""
    masked = list(map(and_, values, repeat(M64)))
    return list(map(sub, masked, map(mul, map(rshift, masked, repeat(63)), repeat(1 << 64))))


def apply_relocate_add(mem: bytearray, mem_offset: int, section_addr: int, section_size: int,
                       rela: bytes, symbol_values: Sequence[int], modname: str) -> int:
    """Apply one SHT_RELA section to the section at `section_addr`, whose bytes
    are mem[mem_offset:mem_offset + section_size].

    `symbol_values` are the resolved st_values indexed by symbol (indexes were
    checked by the ELF reader), taken modulo 2^64; pass them through
    `as_signed64` for speed.  Returns the number of entries applied.  On
    failure raises ENOEXEC with Linux's message for the first entry Linux
    would stop at; what was written before it is unspecified, since the caller
    discards a module whose relocation failed (so does Linux).
    """
    n = len(rela) // RELA_SIZE
    if n >= FAST_MIN_ENTRIES and \
            _apply_fast(mem, mem_offset, section_addr, section_size, rela, symbol_values):
        return n
    if n:
        _apply_one_by_one(mem, mem_offset, section_addr, section_size, rela, symbol_values, modname)
    return n


def _apply_one_by_one(mem: bytearray, mem_offset: int, section_addr: int, section_size: int,
                      rela: bytes, symbol_values: Sequence[int], modname: str) -> None:
    """Linux's loop (`__write_relocate_add`), entry by entry: the reference."""
    for offset, info, addend in struct.iter_unpack("<QQq", rela):
        rtype, sym = info & M32, info >> 32
        val = (symbol_values[sym] + addend) & M64
        if rtype == R_X86_64_NONE:
            continue
        if rtype not in RELOC_TYPES:
            raise enoexec(f"{modname}: Unknown rela relocation: {rtype}")
        size, pcrel = RELOC_TYPES[rtype]
        if offset > section_size - size:
            raise enoexec(f"{modname}: relocation type {rtype} at offset {offset:#x} "
                          f"is outside its {section_size}-byte section")
        if (rtype == R_X86_64_32 and val > M32) or \
           (rtype == R_X86_64_32S and _SIGN32 <= val <= M64 - _SIGN32):
            raise enoexec(f"overflow in relocation type {rtype} val {val:x}\n"
                          f"`{modname}' likely not compiled with -mcmodel=kernel")
        place = section_addr + offset
        if pcrel:
            val = (val - place) & M64
        at = mem_offset + offset
        if any(mem[at:at + size]):
            raise enoexec(f"x86/modules: Invalid relocation target, existing value is nonzero "
                          f"for type {rtype}, loc {place:016x}, val {val:x}")
        mem[at:at + size] = (val & (M32 if size == 4 else M64)).to_bytes(size, "little")


def _apply_fast(mem: bytearray, mem_offset: int, section_addr: int, section_size: int,
                rela: bytes, symbol_values: Sequence[int]) -> bool:
    """All entries at once, C loops only (see the module's docstring).  True
    if applied; False, with `mem` untouched, if anything needs the reference."""
    view = memoryview(rela)
    words = view.cast("I")                          # r_info = (symbol << 32) | type
    offsets = view.cast("Q")[0::3].tolist()
    types = words[2::6].tolist()
    symbols = words[3::6].tolist()
    addends = view.cast("q")[2::3].tolist()
    if R_X86_64_NONE in types:                      # writes nothing: drop (R_X86_64_NONE == 0)
        offsets, symbols, addends, types = (list(compress(column, types))
                                            for column in (offsets, symbols, addends, types))
    original = bytes(mem[mem_offset:mem_offset + section_size])
    kinds = set(types)
    try:
        if len(kinds) == 1:                         # common: .orc_unwind_ip, .return_sites...
            writers = [_WRITER[types[0]]] * len(types)
        else:
            writers = list(map(_WRITER.__getitem__, types))             # KeyError: an unknown type
        values = list(map(add, map(symbol_values.__getitem__, symbols), addends))   # S + A
        pcrel = list(map(_PCREL.__getitem__, kinds))
        if any(pcrel):                                                              # - P
            places = map(add, offsets, repeat(as_signed64((section_addr,))[0]))
            if not all(pcrel):
                places = map(mul, map(_PCREL.__getitem__, types), places)
            values = list(map(sub, values, places))
        if not _places_are_free(original, writers, offsets, kinds, types):
            return False
        patched = bytearray(original)
        deque(map(struct.Struct.pack_into, writers, repeat(patched), offsets, values), maxlen=0)
    except _DECLINED:
        return False
    mem[mem_offset:mem_offset + section_size] = patched
    return True


def _places_are_free(section: bytes, writers: list[struct.Struct], offsets: list[int],
                     kinds: set[int], types: list[int]) -> bool:
    """Every place inside the section, zero, and no two overlapping.

    In a copy where each zero byte reads 1 and each other byte 2, write zeros
    at every place (`pack_into` refuses a place past the end).  Then the zeros
    counted are the bytes written — fewer than the entries' widths add up to
    if two places overlap — and a 2 is missing for each nonzero byte a place
    covered.
    """
    marked = bytearray(section.translate(_MARK))
    deque(map(struct.Struct.pack_into, writers, repeat(marked), offsets, repeat(0)), maxlen=0)
    widths = sum(types.count(t) * RELOC_TYPES[t][0] for t in kinds)
    nonzero = len(section) - section.count(0)
    return marked.count(0) == widths and marked.count(2) == nonzero
