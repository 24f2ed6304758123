"""What depmod reads from a module: its .modinfo, its exports, the symbols it needs.

`parse` (image.py) validates and decodes everything the loader needs, which
costs about 0.8 ms a module; depmod over a distribution tree reads a thousand
modules and needs only three tables, so this is a second, narrow reader over
the same ELF definitions.  It reads them the way kmod's libkmod-elf.c does,
because `kdepmod`'s output must be depmod's byte for byte:

* `.modinfo` is split on runs of NULs, leading padding skipped, and each
  string split at its first `=` (a string without one is its own value);
* exports are the `__crc_NAME` symbols of `.symtab`, each CRC read from
  the section the symbol points into (or its value when absolute); a module
  without any (no CONFIG_MODVERSIONS) falls back to every string of
  `__ksymtab_strings` with CRC 0 — namespaces included, as kmod does;
* needed symbols are the undefined, named `.symtab` entries in table order
  with their `__versions` CRC (0 when not listed) and whether they are weak,
  then the `__versions` entries no symbol named (`module_layout`).

Malformed headers raise `KernelError(ENOEXEC)` like the loader; tables kmod
would silently skip (a `.symtab` of odd length) are skipped here too.
"""

from __future__ import annotations

import os
import struct
from typing import Callable, NamedTuple

from kloaderd.elf.defs import (
    EHDR_SIZE, ELFCLASS64, ELFDATA2LSB, ELFMAG, SHDR_SIZE, SHN_ABS, SHN_UNDEF, SHT_NOBITS,
    STB_WEAK, SYM_SIZE,
)
from kloaderd.errors import enoexec
from kloaderd.decompress import compression_of, decompress

_SHDR = struct.Struct("<IIQQQQIIQQ")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_SYM = struct.Struct("<IBBHQQ")
MODVERSION_INFO_SIZE = 64       # struct modversion_info: u64 crc, char name[56]
CRC_PREFIX = b"__crc_"
BAD_CRC = (1 << 64) - 1         # kmod's (uint64_t)-1 for a CRC it cannot read


# A needed symbol: (name, crc, weak).  Plain tuples: tens of thousands per tree.
Needed = tuple[str, int, bool]


class DepInfo(NamedTuple):
    modinfo: tuple[tuple[str, str], ...]
    exports: tuple[tuple[str, int], ...]     # (name, crc) in .symtab order
    needs: tuple[Needed, ...]


def _strings(raw: bytes) -> list[str]:
    """kmod_elf_get_strings: NUL-separated strings, runs of NULs as one separator."""
    return [s for s in raw.decode("latin-1").split("\0") if s]


def _find_section(names: list[int], secstrings: bytes, wanted: bytes) -> int:
    """The first section whose name is `wanted` (kmod's elf_find_section), or 0.

    Names are offsets into a tail-merged string table, so every place the
    name ends a string is a candidate offset; list.index keeps the scan in C.
    """
    best = 0
    needle = wanted + b"\0"
    at = secstrings.find(needle)
    while at >= 0:
        try:
            i = names.index(at, 1)
            best = i if not best else min(best, i)
        except ValueError:
            pass
        at = secstrings.find(needle, at + 1)
    return best


def read(data: bytes) -> DepInfo:
    """The three tables depmod uses, from a module image in memory."""
    return _read(lambda offset, size: data[offset:offset + size], len(data))


def read_file(path: str) -> DepInfo:
    """The same from a file: compressed ones decompressed, plain ones read a section at a time.

    depmod over a tree needs a few sections of each module, a tenth of its
    bytes, so a plain module is read with pread() where it is needed rather
    than whole.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        n = os.fstat(fd).st_size
        head = os.pread(fd, EHDR_SIZE, 0)
        if compression_of(head) is not None:
            return read(decompress(_read_all(fd, n)))
        return _read(lambda offset, size: head[offset:offset + size] if offset + size <= len(head)
                     else os.pread(fd, size, offset), n)
    finally:
        os.close(fd)


def _read_all(fd: int, n: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, max(n - offset, 1 << 16), offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _read(get: Callable[[int, int], bytes], n: int) -> DepInfo:
    """Strings are decoded as latin-1 so that every byte comes back out of
    `kdepmod` unchanged, whatever its encoding."""
    data = get(0, EHDR_SIZE)
    if n < EHDR_SIZE or data[:4] != ELFMAG:
        raise enoexec("Invalid ELF header magic: != \\177ELF")
    if data[4] != ELFCLASS64 or data[5] != ELFDATA2LSB:
        raise enoexec(f"Invalid ELF header class/data: {data[4]}/{data[5]} (need ELFCLASS64, ELFDATA2LSB)")
    e_shoff, = _U64.unpack_from(data, 0x28)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    if e_shentsize != SHDR_SIZE or e_shoff >= n or e_shnum * SHDR_SIZE > n - e_shoff or e_shstrndx >= e_shnum:
        raise enoexec("Invalid ELF section header overflow")
    shdrs = list(_SHDR.iter_unpack(get(e_shoff, e_shnum * SHDR_SIZE)))
    str_sh = shdrs[e_shstrndx]
    secstrings = _section_bytes(get, n, str_sh)
    sh_names = [sh[0] for sh in shdrs]

    def body(name: bytes) -> bytes | None:
        i = _find_section(sh_names, secstrings, name)
        return _section_bytes(get, n, shdrs[i]) if i else None

    modinfo = []
    for text in _strings(body(b".modinfo") or b""):
        key, eq, value = text.partition("=")
        modinfo.append((key, value if eq else key))

    symtab, strtab = body(b".symtab"), body(b".strtab")
    if symtab is None or strtab is None or len(symtab) % SYM_SIZE:
        symtab = strtab = b""
    strtab_len = len(strtab)
    strs = strtab.decode("latin-1")
    # Columns of the symbol table by strided slices: no tuple per symbol.
    words = memoryview(symtab).cast("I")
    st_names = words[6::6].tolist()          # st_name of symbols 1..n-1
    names_ok = not st_names or max(st_names) < strtab_len

    def name_at(off: int) -> str:
        return strs[off:strs.find("\0", off)]

    exports: list[tuple[str, int]] = []
    if names_ok and CRC_PREFIX in strtab:
        starts, at = set(), strtab.find(CRC_PREFIX)
        while at >= 0:
            starts.add(at)
            at = strtab.find(CRC_PREFIX, at + 1)
        for i, off in enumerate(st_names, 1):
            if off in starts:
                _name, _info, _other, shndx, value, _size = _SYM.unpack_from(symtab, i * SYM_SIZE)
                exports.append((name_at(off)[len(CRC_PREFIX):], _resolve_crc(get, shdrs, value, shndx)))
    if not exports:
        exports = [(text, 0) for text in _strings(body(b"__ksymtab_strings") or b"")]

    versions_raw = body(b"__versions") or b""
    if len(versions_raw) % MODVERSION_INFO_SIZE:
        versions_raw = b""
    vtext = versions_raw.decode("latin-1")
    vcrcs = memoryview(versions_raw).cast("Q")[0::MODVERSION_INFO_SIZE // 8].tolist() if versions_raw else []
    vnames = [vtext[i:i + MODVERSION_INFO_SIZE - 8].partition("\0")[0]
              for i in range(8, len(vtext), MODVERSION_INFO_SIZE)]
    first_index = dict(zip(reversed(vnames), range(len(vnames) - 1, -1, -1)))

    # Undefined symbols: st_shndx == 0, found by searching its low byte for NUL.
    lo, hi = symtab[SYM_SIZE + 6::SYM_SIZE], symtab[SYM_SIZE + 7::SYM_SIZE]
    undefined = []
    i = lo.find(0)
    while i >= 0:
        if hi[i] == 0:
            undefined.append(i)
        i = lo.find(0, i + 1)
    offsets = [st_names[i] for i in undefined]
    if offsets and max(offsets) >= strtab_len:
        return DepInfo(tuple(modinfo), tuple(exports), ())
    # Comprehensions, not one loop with appends: this is depmod's inner loop.
    find = strs.find
    names = [strs[o:find("\0", o)] for o in offsets]
    infos = symtab[SYM_SIZE + 4::SYM_SIZE]
    weak = [infos[i] >> 4 == STB_WEAK for i in undefined]
    where = [first_index.get(name) for name in names]
    crcs = [0 if k is None else vcrcs[k] for k in where]
    needs: list[Needed] = list(zip(names, crcs, weak))
    if "" in names:
        needs = [need for need in needs if need[0]]
    visited = set(where)
    visited.discard(None)
    if len(visited) < len(vnames):
        needs += [(v, vcrcs[k], False) for k, v in enumerate(vnames) if k not in visited]
    return DepInfo(tuple(modinfo), tuple(exports), tuple(needs))


def _section_bytes(get: Callable[[int, int], bytes], n: int, sh: tuple) -> bytes:
    """A section's contents; one outside the file is ENOEXEC (kmod refuses to read it too)."""
    if sh[1] == SHT_NOBITS:
        return b""
    if sh[4] + sh[5] > n:
        raise enoexec("Invalid ELF section in module: it lies outside the file")
    return get(sh[4], sh[5])


def _resolve_crc(get: Callable[[int, int], bytes], shdrs: list[tuple], value: int, shndx: int) -> int:
    """kmod_elf_resolve_crc: an absolute `__crc_` is the CRC; else the u32 it points at."""
    if shndx in (SHN_ABS, SHN_UNDEF):
        return value
    if shndx >= len(shdrs):
        return BAD_CRC
    sh = shdrs[shndx]
    if sh[5] < 4 or value > sh[5] - 4:
        return BAD_CRC
    return _U32.unpack(get(sh[4] + value, 4))[0]
