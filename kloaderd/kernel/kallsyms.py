"""kallsyms: every symbol of the core kernel and of each module, and the
reverse lookup oops reports and `%pS` need (`hello_init+0x12/0x40 [hello]`).

Lookups are a bisection over one sorted array, rebuilt lazily when modules
come or go (or free their init sections), so loading stays cheap and
symbolising stays O(log n).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
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


def module_symbols(module: "Module") -> list[KallSym]:
    """The symbols of a linked module that kallsyms lists (functions and
    objects in laid-out sections; init ones only while init is mapped)."""
    image, linked = module.image, module.linked
    assert linked is not None
    out = []
    for sym in image.symbols:
        if sym.type not in (STT_FUNC, STT_OBJECT) or not sym.name:
            continue
        base = linked.section_addr.get(sym.shndx)
        if base is None:
            continue
        section = image.sections[sym.shndx]
        if module.init_freed and section.name.startswith(".init"):
            continue
        out.append(KallSym(base + sym.value, sym.size, sym.name,
                           _type_letter(section.flags, section.type, sym.bind == STB_LOCAL),
                           module.name))
    return out


class Kallsyms:
    def __init__(self, core: Iterable[tuple[int, int, str, str]]) -> None:
        """`core`: (address, size, type letter, name) of the core kernel."""
        self._core = [KallSym(addr, size, name, letter, None) for addr, size, letter, name in core]
        self._modules: dict[str, list[KallSym]] = {}
        self._sorted: list[KallSym] | None = None
        self._starts: list[int] = []

    def add_module(self, module: "Module") -> None:
        self._modules[module.name] = module_symbols(module)
        self._sorted = None

    def remove_module(self, module: "Module") -> None:
        self._modules.pop(module.name, None)
        self._sorted = None

    def all(self) -> list[KallSym]:
        if self._sorted is None:
            merged = list(self._core)
            for syms in self._modules.values():
                merged.extend(syms)
            merged.sort(key=lambda s: s.address)    # stable: symtab order within an address
            self._sorted = merged
            self._starts = [s.address for s in merged]
        return self._sorted

    def lookup(self, address: int) -> tuple[KallSym, int, int] | None:
        """(symbol, offset, size) of the symbol containing `address`."""
        syms = self.all()
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0:
            return None
        # Aliases (faults_init and its init_module alias): like Linux, the
        # first in symbol-table order wins, and that is the local name.
        i = bisect.bisect_left(self._starts, self._starts[i])
        sym = syms[i]
        size = sym.size
        if not size:
            nxt = syms[i + 1].address if i + 1 < len(syms) else sym.address
            size = max(nxt - sym.address, 0)
        offset = address - sym.address
        if offset and offset >= size:
            return None
        return sym, offset, size

    def symbolize(self, address: int, offset: bool = True) -> str | None:
        found = self.lookup(address)
        if found is None:
            return None
        sym, off, size = found
        text = f"{sym.name}+{off:#x}/{size:#x}" if offset else sym.name
        return f"{text} [{sym.module}]" if sym.module else text
