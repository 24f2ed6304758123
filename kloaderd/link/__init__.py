"""Linking a laid-out module: Linux's `simplify_symbols` + `apply_relocations`.

`link` builds the core and init images at the addresses the kernel chose,
resolves every symbol (the caller supplies the addresses of the external
symbols this module may see), applies the relocations, and reads back what
the kernel needs from the *relocated* bytes, as Linux does after the fact:
the module's exports, `__this_module`, init/exit and each `__param` entry.

An image is a list of pieces, not one buffer: a large section that no
relocation patches is not copied at all, its piece is the section's view of
the module file, and the kernel writes it into emulated memory from there.
So a module that is mostly one big table (firmware, a lookup table) is held
once while it loads, not once per copy.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from itertools import compress, repeat
from operator import add, and_, attrgetter, itemgetter
from typing import Mapping, NamedTuple

from kloaderd.arch import ignore_undef_symbol
from kloaderd.arch.x86_64 import FAST_MIN_ENTRIES, apply_relocate_add, as_signed64
from kloaderd.elf.defs import SHF_ALLOC, SHN_ABS, SHN_COMMON, SHN_LIVEPATCH, SHN_UNDEF, STB_WEAK
from kloaderd.elf.image import Image, Section
from kloaderd.errors import KernelError, enoexec
from kloaderd.link.layout import Layout, ModLayout, layout_sections

__all__ = ["Layout", "Linked", "LinkedExport", "Piece", "layout_sections", "link"]

M64 = (1 << 64) - 1
# Sections at least this large that no relocation patches are shared with
# the module file instead of copied (smaller ones are cheaper to copy than
# to keep as pieces of their own).
SHARE_MIN = 1 << 16
_SHNDX = attrgetter("shndx")
_VALUE = attrgetter("value")
_UNRESOLVED = frozenset({SHN_UNDEF, SHN_COMMON})


class Piece(NamedTuple):
    """Part of a memory image: bytes the linker made (relocated), or a
    section's bytes shared with the module file.  What no piece covers is zero."""
    offset: int
    data: bytearray | memoryview


class LinkedExport(NamedTuple):
    name: str
    address: int
    gpl: bool


@dataclass(frozen=True)
class Linked:
    image: Image
    layout: Layout
    core_base: int
    init_base: int
    core_pieces: tuple[Piece, ...]      # in address order; the kernel maps them, then drops them
    init_pieces: tuple[Piece, ...]
    section_addr: dict[int, int]        # laid-out sections only
    symbol_values: tuple[int, ...]      # resolved st_value per symbol index (dropped once loaded)
    exports: tuple[LinkedExport, ...]   # parallel to image.exports
    this_module: int                    # address of __this_module
    init_addr: int | None               # init_module, if the module has one
    exit_addr: int | None               # cleanup_module
    param_addrs: tuple[int, ...]        # parallel to image.params
    relocations: int                    # entries applied

    def symbol_value(self, index: int) -> int:
        return self.symbol_values[index]

    @property
    def core(self) -> bytes:
        """The whole core image as one `bytes` (a copy: for readers and tests)."""
        return _assemble(self.core_pieces, self.layout.core.size)

    @property
    def init(self) -> bytes:
        return _assemble(self.init_pieces, self.layout.init.size)


def link(image: Image, layout: Layout, core_base: int, init_base: int,
         externals: Mapping[str, int], *, percpu_base: int = 0) -> Linked:
    """Resolve, relocate and return the module's memory images.

    `externals` maps the names this module may link against (already
    filtered for GPL visibility) to addresses.  Per-CPU symbols of the
    module's own `.data..percpu` resolve against `percpu_base`, as Linux's
    `mod_percpu(mod)`.
    """
    mod = image.name
    section_addr: dict[int, int] = {}
    for i, off in layout.core.offsets.items():
        section_addr[i] = core_base + off
    for i, off in layout.init.offsets.items():
        section_addr[i] = init_base + off

    values = _simplify_symbols(image, section_addr, externals, percpu_base)

    patched = {r.target for r in image.rela if r.count}
    pieces = {"core": _pieces(image, layout.core, patched), "init": _pieces(image, layout.init, patched)}

    applied = 0
    # The fast path wants the values signed, a pass over every symbol: made
    # only when some section has entries enough to take that path.
    signed = as_signed64(values) if any(r.count >= FAST_MIN_ENTRIES for r in image.rela) else values
    for r in image.rela:
        target = image.sections[r.target]
        where = layout.place(r.target)
        if not target.flags & SHF_ALLOC or where is None:
            continue
        if not r.rela:
            raise enoexec(f"module {mod}: REL relocation unsupported")
        buf, off = _locate(pieces[where[0]], where[1])
        applied += apply_relocate_add(buf, off, section_addr[r.target], target.size, r.data, signed, mod)

    core, init = tuple(pieces["core"]), tuple(pieces["init"])
    reader = _Memory(core_base, core, init_base, init, mod)
    exports = tuple(_read_export(reader, e.name, e.gpl, section_addr[e.section] + e.offset, e.entry_size)
                    for e in image.exports)
    return Linked(
        image=image, layout=layout, core_base=core_base, init_base=init_base, core_pieces=core,
        init_pieces=init,
        section_addr=section_addr, symbol_values=values, exports=exports,
        this_module=section_addr[image.this_module_index],
        init_addr=values[image.init.index] if image.init else None,
        exit_addr=values[image.exit.index] if image.exit else None,
        param_addrs=tuple(section_addr[p.section] + p.offset for p in image.params),
        relocations=applied,
    )


def _pieces(image: Image, layout: ModLayout, patched: set[int]) -> list[Piece]:
    """One image's pieces: the shared sections, and between them buffers
    holding every other section's bytes (zeros where there are none)."""
    sections = image.sections
    placed = sorted(((off, sections[i]) for i, off in layout.offsets.items() if sections[i].data),
                    key=itemgetter(0))
    size = layout.size
    pieces: list[Piece] = []
    start = 0                                   # of the buffer being filled
    own: list[tuple[int, memoryview]] = []      # its sections: (offset in the image, bytes)

    def flush(end: int) -> None:
        if end > start:
            buf = bytearray(end - start)
            for off, data in own:
                buf[off - start:off - start + len(data)] = data
            pieces.append(Piece(start, buf))
        own.clear()

    for off, s in placed:
        if len(s.data) >= SHARE_MIN and s.index not in patched:
            flush(off)
            pieces.append(Piece(off, s.data))
            start = off + len(s.data)
        else:
            own.append((off, s.data))
    flush(size)
    return pieces


def _locate(pieces: list[Piece], offset: int) -> tuple[bytearray, int]:
    """The buffer holding image offset `offset`, and the offset in it (a
    section that relocations patch is never shared, so it is one of ours)."""
    for piece in pieces:
        if piece.offset <= offset < piece.offset + len(piece.data) and isinstance(piece.data, bytearray):
            return piece.data, offset - piece.offset
    raise AssertionError(f"no buffer holds image offset {offset:#x}")


def _assemble(pieces: tuple[Piece, ...], size: int) -> bytes:
    out = bytearray(size)
    for off, data in pieces:
        out[off:off + len(data)] = data
    return bytes(out)


def _simplify_symbols(image: Image, section_addr: dict[int, int], externals: Mapping[str, int],
                      percpu_base: int) -> tuple[int, ...]:
    """Every symbol's final value; all failures reported together, errno of the last as Linux.

    A defined symbol's value is its section's address plus st_value (0 for
    sections that are not laid out, such as debug info or .modinfo; the
    per-CPU base for .data..percpu; nothing for SHN_ABS and SHN_LIVEPATCH):
    computed for the whole table at once, since a distribution module has
    ~10,000 symbols.  The undefined (and SHN_COMMON) ones are then resolved
    one by one, in symbol order, as Linux's loop reports them.
    """
    mod = image.name
    symbols = image.symbols
    base = dict(section_addr)
    base[SHN_ABS] = base[SHN_LIVEPATCH] = 0
    if image.percpu_index:
        base[image.percpu_index] = percpu_base
    shndxs = list(map(_SHNDX, symbols))
    values = list(map(and_, map(add, map(base.get, shndxs, repeat(0)), map(_VALUE, symbols)), repeat(M64)))
    problems: list[str] = []
    err = 0
    missing: list[str] = []
    for s in compress(symbols, map(_UNRESOLVED.__contains__, shndxs)):
        if s.index == 0:
            values[0] = 0
        elif s.shndx == SHN_COMMON:
            problems.append(f"{mod}: please compile with -fno-common")
            err = errno.ENOEXEC
        elif (addr := externals.get(s.name)) is not None:
            values[s.index] = addr & M64
        elif s.bind == STB_WEAK:
            values[s.index] = 0
        elif ignore_undef_symbol(s.name):
            values[s.index] = s.value
        else:
            missing.append(s.name)
            problems.append(f"{mod}: Unknown symbol {s.name} (err -{errno.ENOENT})")
            err = errno.ENOENT
    if err:
        if missing:
            problems.insert(0, f"{mod}: unknown symbols: {' '.join(missing)}")
        raise KernelError(err, "\n".join(problems))
    return tuple(values)


class _Memory:
    """Reads from the relocated images by kernel address."""

    def __init__(self, core_base: int, core: tuple[Piece, ...], init_base: int, init: tuple[Piece, ...],
                 mod: str) -> None:
        self.spans = [(base + off, data) for base, pieces in ((core_base, core), (init_base, init))
                      for off, data in pieces]
        self.mod = mod

    def locate(self, addr: int, what: str) -> tuple[bytearray | memoryview, int]:
        for start, buf in self.spans:
            if start <= addr < start + len(buf):
                return buf, addr - start
        raise enoexec(f"{self.mod}: {what} points outside the module ({addr:#x})")

    def read(self, addr: int, n: int, what: str) -> bytes:
        buf, off = self.locate(addr, what)
        if off + n > len(buf):
            raise enoexec(f"{self.mod}: {what} runs past the end of the module")
        return bytes(buf[off:off + n])

    def string(self, addr: int, what: str, limit: int = 4096) -> str:
        """The NUL-terminated string at addr (a symbol name: at most `limit` bytes looked at)."""
        buf, off = self.locate(addr, what)
        window = bytes(buf[off:off + limit])
        end = window.find(b"\0")
        if end < 0:
            raise enoexec(f"{self.mod}: {what} is not NUL-terminated")
        return window[:end].decode("utf-8", "replace")


def _read_export(memory: _Memory, name: str, gpl: bool, entry: int, entry_size: int) -> LinkedExport:
    """struct kernel_symbol read Linux's way: PREL32 fields hold (target - field address)."""
    what = f"export {name}"
    raw = memory.read(entry, 8, what)
    if entry_size == 12:
        value = (entry + int.from_bytes(raw[0:4], "little", signed=True)) & M64
        name_addr = (entry + 4 + int.from_bytes(raw[4:8], "little", signed=True)) & M64
    else:
        value = int.from_bytes(raw, "little")
        name_addr = int.from_bytes(memory.read(entry + 8, 8, what), "little")
    return LinkedExport(memory.string(name_addr, what + " name"), value, gpl)
