"""The exported-symbol table: what modules may link against.

Linux searches vmlinux's `__ksymtab*` and then each module's, one by one;
kloader keeps a single dictionary keyed by name, which gives the same answers
(a name is exported at most once: `verify_exported_symbols` refuses
duplicates) at a constant cost however many modules are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .module import Module


@dataclass(frozen=True)
class KernelSymbol:
    name: str
    address: int
    gpl_only: bool
    owner: "Module | None"        # None: the core kernel
    crc: int | None = None        # modversions CRC, when the exporter has one
    namespace: str = ""           # EXPORT_SYMBOL_NS: users must MODULE_IMPORT_NS it

    @property
    def owner_name(self) -> str:
        return self.owner.name if self.owner is not None else "kernel"


class SymbolTable:
    def __init__(self) -> None:
        self._symbols: dict[str, KernelSymbol] = {}

    def add(self, symbol: KernelSymbol) -> None:
        self._symbols[symbol.name] = symbol

    def get(self, name: str) -> KernelSymbol | None:
        return self._symbols.get(name)

    def find(self, name: str, *, gplok: bool) -> KernelSymbol | None:
        """find_symbol(): GPL-only exports are invisible unless `gplok`."""
        symbol = self._symbols.get(name)
        if symbol is None or (symbol.gpl_only and not gplok):
            return None
        return symbol

    def remove_module(self, module: "Module") -> None:
        for name in module.exports:
            symbol = self._symbols.get(name)
            if symbol is not None and symbol.owner is module:
                del self._symbols[name]

    def __len__(self) -> int:
        return len(self._symbols)
