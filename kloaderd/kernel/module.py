"""`struct module`: a module's state, its references and who holds them.

The FAQ's model: a module is entered only by someone holding a reference,
`try_module_get` fails unless the module is live, and removal stops the
module (clears "live") before it waits for the count to drain.  Linux keeps
one anonymous counter; kloader keeps the same count split by *owner*, so that
"module is in use" can always be answered with "by whom" — a question Linux
cannot answer.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..elf.image import Image
    from ..link import Layout, Linked


class ModuleState(enum.Enum):
    LIVE = "live"
    COMING = "coming"
    GOING = "going"
    UNFORMED = "unformed"


# Linux's taint flags in bit order (include/linux/panic.h).  The second
# character is what print_tainted() shows when the flag is clear; `module`
# marks the flags that are also recorded per module (module_flags_taint).
TAINT_FLAGS: tuple[tuple[str, str, bool], ...] = (
    ("P", "G", True), ("F", " ", True), ("S", " ", False), ("R", " ", False),
    ("M", " ", False), ("B", " ", False), ("U", " ", False), ("D", " ", False),
    ("A", " ", False), ("W", " ", False), ("C", " ", True), ("I", " ", False),
    ("O", " ", True), ("E", " ", True), ("L", " ", False), ("K", " ", True),
    ("X", " ", True), ("T", " ", True), ("N", " ", False), ("J", " ", False),
)


def taint_letters(taints: set[str], *, module_only: bool = False) -> str:
    """Taint letters in Linux's order, as /proc/modules prints them.

    Remembered per set of flags: `modules()` asks once per loaded module,
    and walking the twenty flags each time was a third of its cost."""
    key = (frozenset(taints), module_only)
    letters = _LETTERS.get(key)
    if letters is None:
        letters = _LETTERS[key] = "".join(flag for flag, _, per_module in TAINT_FLAGS
                                          if flag in taints and (per_module or not module_only))
    return letters


# Taint letters by (flags, module_only): at most a few distinct sets occur.
_LETTERS: dict[tuple[frozenset[str], bool], str] = {}


class OwnerKind(enum.Enum):
    DEPENDENCY = "dependency"     # module A links against B's exports
    MODULE = "module"             # try_module_get/__module_get from module code
    SYMBOL_GET = "symbol_get"     # __symbol_get by module code
    SESSION = "session"           # a client connection
    FILE = "file"                 # an open file (fops_get, cdev_get, a mount)
    KERNEL = "kernel"             # core kernel code (no calling module)


@dataclass(eq=False)
class RefOwner:
    """Someone who can hold references: identity matters, not value."""

    kind: OwnerKind
    label: str
    # The modules this owner holds references on, kept by Module.get/put so
    # that releasing an owner (a session closing) costs what it holds, not
    # the number of loaded modules.
    modules: set["Module"] = field(default_factory=set, repr=False)

    def __str__(self) -> str:
        return self.label


@dataclass
class ModuleParam:
    """One entry of a module's parameter table: its `struct kernel_param`,
    decoded from `__param` by moduleparam.py."""

    name: str
    perm: int
    kind: str                # a PARAM_TYPES key, "string" or "array"
    arg: int                 # address of the variable (or of kparam_string/array)
    elem_kind: str = ""      # arrays: the element type
    max: int = 0             # arrays: max count; strings: buffer size
    elemsize: int = 0
    num: int = 0             # arrays: address of the count (0: none)
    elem: int = 0            # arrays: address of the first element

    @property
    def readable(self) -> bool:
        return bool(self.perm & 0o444)

    @property
    def writable(self) -> bool:
        return bool(self.perm & 0o222)


@dataclass(eq=False)
class Module:
    name: str
    image: "Image"
    layout: "Layout"
    core_base: int
    init_base: int
    state: ModuleState = ModuleState.UNFORMED
    linked: "Linked | None" = None
    taints: set[str] = field(default_factory=set)
    license: str = "unspecified"
    # owner references, by owner; the sum is Linux's module_refcount()
    refs: Counter[RefOwner] = field(default_factory=Counter)
    # modules whose exports we use (Linux: target_list) and who uses ours (source_list)
    uses: list["Module"] = field(default_factory=list)
    holders: list["Module"] = field(default_factory=list)
    params: list[ModuleParam] = field(default_factory=list)
    exports: list[str] = field(default_factory=list)
    init_freed: bool = False
    # The addresses of the not-emulated exports it uses as data, sorted:
    # what names the object a read past such a stub really reads (oops.py,
    # load.py's data_imports()).
    not_emulated_data: tuple[int, ...] = ()

    # The owners this module's own code acts as, each made once (so that a
    # get and the matching put from the same module code meet) and only
    # when first used: most modules never need some or all of them.
    @cached_property
    def code_owner(self) -> RefOwner:
        return RefOwner(OwnerKind.MODULE, f"module {self.name}")

    @cached_property
    def symbol_owner(self) -> RefOwner:
        return RefOwner(OwnerKind.SYMBOL_GET, f"symbol_get by {self.name}")

    @cached_property
    def dependency_owner(self) -> RefOwner:
        return RefOwner(OwnerKind.DEPENDENCY, f"module {self.name} (uses its symbols)")

    @property
    def refcount(self) -> int:
        return sum(self.refs.values())

    @property
    def live(self) -> bool:
        return self.state is ModuleState.LIVE

    @property
    def has_init(self) -> bool:
        return self.image.init is not None

    @property
    def has_exit(self) -> bool:
        return self.image.exit is not None

    @property
    def core_size(self) -> int:
        return self.layout.core.size

    @property
    def init_size(self) -> int:
        return 0 if self.init_freed else self.layout.init.size

    def get(self, owner: RefOwner, count: int = 1) -> None:
        self.refs[owner] += count
        owner.modules.add(self)

    def put(self, owner: RefOwner) -> bool:
        """Drop one reference of `owner`; False if it holds none."""
        if self.refs[owner] <= 0:
            self.drop(owner)
            return False
        self.refs[owner] -= 1
        if not self.refs[owner]:
            self.drop(owner)
        return True

    def drop(self, owner: RefOwner) -> int:
        """Drop every reference of `owner`; how many there were."""
        owner.modules.discard(self)
        return self.refs.pop(owner, 0)

    def drop_all(self) -> None:
        for owner in list(self.refs):
            self.drop(owner)

    def reference_owners(self) -> list[dict[str, object]]:
        return [{"owner": owner.label, "kind": owner.kind.value, "count": count}
                for owner, count in self.refs.items()]


def param_owner(mod: Module) -> str:
    """Slab owner of a module's parameter copies: freed with the module, never a leak."""
    return f"{mod.name}/parameters"
