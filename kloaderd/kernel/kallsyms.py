"""kallsyms: every symbol of the core kernel and of each module, and the
reverse lookup oops reports and `%pS` need (`hello_init+0x12/0x40 [hello]`).

Lookups bisect the module regions, then one region's sorted symbols; a load
or removal inserts or deletes its regions, never re-sorting everything, so
loading stays cheap however many modules are loaded and symbolising stays
O(log n).  The regions double as Linux's mod_tree (kernel/module/
tree_lookup.c): `module_at` is `__module_address`, which the registries,
the sanitizer and oops reports ask on every registration and indirect call.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from ..elf.image import Symbol
    from .module import Module

SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHT_NOBITS = 8
STB_LOCAL = 0
STT_OBJECT, STT_FUNC = 1, 2


@dataclass(frozen=True)
class KallSym:
    address: int
    size: int
    name: str
    type: str
    module: str | None       # None: the core kernel


def _type_letter(flags: int, sh_type: int, local: bool) -> str:
    if flags & SHF_EXECINSTR:
        letter = "T"
    elif sh_type == SHT_NOBITS:
        letter = "B"
    elif flags & SHF_WRITE:
        letter = "D"
    else:
        letter = "R"
    return letter.lower() if local else letter


def core_symbols(symbols: Iterable["Symbol"], section_addr: dict[int, int]) -> tuple["Symbol", ...]:
    """The symbols is_core_symbol() admits: named functions and objects in
    laid-out sections, what kallsyms lists of a module (and all a loaded
    module keeps of its symbol table).  One comprehension, not a call per
    symbol: every load filters its whole table (~10,000 in a distribution
    module)."""
    return tuple(s for s in symbols
                 if (s.type == STT_FUNC or s.type == STT_OBJECT) and s.name and s.shndx in section_addr)


def module_symbols(module: "Module") -> list[KallSym]:
    """The symbols of a linked module that kallsyms lists (functions and
    objects in laid-out sections; init ones only while init is mapped)."""
    image, linked = module.image, module.linked
    assert linked is not None
    out = []
    section_addr = linked.section_addr
    for sym in core_symbols(image.symbols, section_addr):
        base = section_addr[sym.shndx]
        section = image.sections[sym.shndx]
        if module.init_freed and section.name.startswith(".init"):
            continue
        out.append(KallSym(base + sym.value, sym.size, sym.name,
                           _type_letter(section.flags, section.type, sym.bind == STB_LOCAL),
                           module.name))
    return out


def _in_region(module: "Module", start: int, end: int) -> list[KallSym]:
    return [s for s in module_symbols(module) if start <= s.address < end]


class _Table:
    """Symbols sorted by address (stably: symtab order within an address),
    with their start addresses for bisection.  Sorted when first needed: a
    module's table is made at every load, and most are never looked into."""

    __slots__ = ("_source", "_syms", "_starts")

    def __init__(self, syms: Callable[[], Iterable[KallSym]]) -> None:
        self._source: Callable[[], Iterable[KallSym]] | None = syms
        self._syms: list[KallSym] = []
        self._starts: list[int] = []

    def _sort(self) -> None:
        if self._source is not None:
            self._syms = sorted(self._source(), key=lambda s: s.address)
            self._starts = [s.address for s in self._syms]
            self._source = None

    @property
    def syms(self) -> list[KallSym]:
        self._sort()
        return self._syms

    @property
    def starts(self) -> list[int]:
        self._sort()
        return self._starts

    def lookup(self, address: int, end: int | None) -> tuple[KallSym, int, int] | None:
        """(symbol, offset, size) of the symbol containing `address`; a
        size-0 symbol extends to the next one, or to `end`."""
        starts = self.starts
        i = bisect.bisect_right(starts, address) - 1
        if i < 0:
            return None
        # Aliases (faults_init and its init_module alias): like Linux, the
        # first in symbol-table order wins, and that is the local name.
        i = bisect.bisect_left(starts, starts[i])
        sym = self.syms[i]
        size = sym.size
        if not size:
            nxt = starts[i + 1] if i + 1 < len(starts) else (end if end is not None else sym.address)
            size = max(nxt - sym.address, 0)
        offset = address - sym.address
        if offset and offset >= size:
            return None
        return sym, offset, size


class Kallsyms:
    """The core kernel's table and one table per module region (core, and
    init while it is mapped), kept in address order.  Module regions never
    overlap, so a load or a removal inserts or deletes its regions (no
    re-sort of every symbol: with 3,000 modules that was 16 ms a load), a
    lookup bisects the regions then the one table, and the whole sorted
    list the `kallsyms` request returns is a concatenation, rebuilt in
    linear time when it has changed."""

    def __init__(self, core: Iterable[tuple[int, int, str, str]]) -> None:
        """`core`: (address, size, type letter, name) of the core kernel."""
        core = list(core)
        self._core = _Table(lambda: (KallSym(addr, size, name, letter, None)
                                     for addr, size, letter, name in core))
        self._regions: list[tuple[int, int, "Module", _Table]] = []   # (start, end, module, symbols)
        self._region_starts: list[int] = []
        self._all: list[KallSym] | None = None

    def add_module(self, module: "Module") -> None:
        """The module's symbols, replacing any it had (its init ones go when
        init is freed: `remove_init`)."""
        self.remove_module(module)
        regions = [(module.core_base, module.layout.core.size)]
        if not module.init_freed:
            regions.append((module.init_base, module.layout.init.size))
        for base, size in regions:
            if not size:
                continue
            table = _Table(functools.partial(_in_region, module, base, base + size))
            i = bisect.bisect_left(self._region_starts, base)
            self._regions.insert(i, (base, base + size, module, table))
            self._region_starts.insert(i, base)
        self._all = None

    def remove_module(self, module: "Module") -> None:
        self._remove_region(module, module.core_base)
        self._remove_region(module, module.init_base)

    def remove_init(self, module: "Module") -> None:
        """The module's init image was freed: its init symbols go.  Its core
        table stays as it is: made from the core image's address range, it
        never held an init symbol."""
        self._remove_region(module, module.init_base)

    def _remove_region(self, module: "Module", base: int) -> None:
        i = bisect.bisect_left(self._region_starts, base)
        if i < len(self._regions) and self._region_starts[i] == base \
                and self._regions[i][2] is module:
            del self._regions[i]
            del self._region_starts[i]
            self._all = None

    def all(self) -> list[KallSym]:
        if self._all is None:
            merged = list(self._core.syms)
            for _start, _end, _module, table in self._regions:
                merged.extend(table.syms)
            self._all = merged
        return self._all

    def _region(self, address: int) -> tuple[int, int, "Module", _Table] | None:
        i = bisect.bisect_right(self._region_starts, address) - 1
        if i >= 0 and address < self._regions[i][1]:
            return self._regions[i]
        return None

    def module_at(self, address: int) -> "Module | None":
        """The module whose core or (not yet freed) init image holds `address`."""
        region = self._region(address)
        return region[2] if region is not None else None

    def lookup(self, address: int) -> tuple[KallSym, int, int] | None:
        """(symbol, offset, size) of the symbol containing `address`."""
        region = self._region(address)
        if region is not None:
            _start, end, _module, table = region
            return table.lookup(address, end)
        return self._core.lookup(address, self._region_starts[0] if self._region_starts else None)

    def symbolize(self, address: int, offset: bool = True) -> str | None:
        found = self.lookup(address)
        if found is None:
            return None
        sym, off, size = found
        text = f"{sym.name}+{off:#x}/{size:#x}" if offset else sym.name
        return f"{text} [{sym.module}]" if sym.module else text
