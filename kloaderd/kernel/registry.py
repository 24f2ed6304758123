"""Registrations: what a module handed to a kernel subsystem, one registry per subsystem.

Linux keeps a list per subsystem (`crypto_alg_list`, a notifier chain's
`head`, `file_systems`, `cdev_map`, `tcp_cong_list`, …) and nothing ties an
entry back to the module it points into: a module freed with a registration
still on a list leaves the kernel a pointer into unmapped memory, and the
next walk of that list oopses somewhere far from the bug.  kloader keeps the
same lists (each subsystem owns the order and lookup rules of its own) but
records every entry in one facility, so that

* `module_info(name)["registrations"]` shows what a module has registered,
* the matching unregister removes it (`Registry.remove`), and
* when a module is freed (after exit, or after a failed init) every entry it
  owns or that points into its memory is **reported** in the kernel log —
  ``hello: leaked registration: crypto algorithm "sha1" (sha1-generic)`` —
  and **made inert**: removed from its registry, so no later walk calls into
  freed code, and the subsystem's `on_leftover` hook runs (to drop a
  `/dev` node, a mount, …).  The plugin counts that line as a leak.

Where this differs from Linux: Linux does not notice a leftover at all (the
report is kloader's, worded like the slab leak report beside it), and a
leftover is taken off its list instead of dangling.

API (for subsystem code; `kernel.registrations` is the one `Registrations`
of a kernel)::

    reg = kernel.registrations.registry("crypto")      # created on first use
    found = reg.find(key)                               # the live entry or None
    entry = reg.add(key, f'crypto algorithm "{name}" ({driver})',
                    owner=module_or_None, address=alg,   # guest address of the object
                    points_to=(alg, callback, ...),      # other addresses it holds
                    data=anything, on_leftover=fn)       # fn(entry) when made inert
    reg.remove(key)                                     # the unregister: the entry or None
    reg.entries()                                       # live entries, registration order
    kernel.registrations.module_at(address)             # the module whose memory holds it

`add` refuses a key already present (`KeyError`): each subsystem checks
`find` first and answers with Linux's errno and message (-EEXIST, -EBUSY, …).
A key is whatever identifies the entry in Linux (an algorithm's driver name,
the address of a `notifier_block` on one chain, a filesystem's name).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .printk import KERN_ERR, Problem

if TYPE_CHECKING:
    from .module import Module


@dataclass(eq=False)
class Registration:
    """One live entry in one subsystem's registry."""

    subsystem: str
    key: Hashable
    what: str                      # for people: 'crypto algorithm "sha1" (sha1-generic)'
    owner: "Module | None"         # the module responsible for it (None: core kernel)
    address: int = 0               # the registered object in guest memory
    points_to: tuple[int, ...] = ()  # further addresses it holds (callbacks, ops)
    data: Any = None               # the subsystem's own state for the entry
    on_leftover: Callable[["Registration"], None] | None = None
    modules: tuple["Module", ...] = ()   # its owner and the modules it pointed into, when added

    def addresses(self) -> Iterator[int]:
        if self.address:
            yield self.address
        yield from (a for a in self.points_to if a)

    def describe(self) -> dict[str, Any]:
        """What `module_info` shows of it."""
        return {"subsystem": self.subsystem, "what": self.what, "address": self.address}


class Registry:
    """One subsystem's registered entries, by key, in registration order."""

    def __init__(self, name: str, index: "Registrations", ordinal: int) -> None:
        self.name = name
        self.ordinal = ordinal          # registries are listed in the order they were made
        self._entries: dict[Hashable, Registration] = {}
        self._index = index

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def find(self, key: Hashable) -> Registration | None:
        return self._entries.get(key)

    def entries(self) -> list[Registration]:
        return list(self._entries.values())

    def add(self, key: Hashable, what: str, *, owner: "Module | None", address: int = 0,
            points_to: Iterable[int] = (), data: Any = None,
            on_leftover: Callable[[Registration], None] | None = None) -> Registration:
        if key in self._entries:
            raise KeyError(f"{self.name}: {key!r} is already registered")
        entry = Registration(self.name, key, what, owner, address, tuple(points_to), data,
                             on_leftover)
        self._entries[key] = entry
        self._index.note(entry)
        return entry

    def remove(self, key: Hashable) -> Registration | None:
        """The unregister: the entry it removed, or None if there was none."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._index.forget(entry)
        return entry


@dataclass
class Registrations:
    """Every subsystem registry of one kernel, and an index of their entries
    by the modules each one involves (its owner, and the modules its
    addresses pointed into when it was added): a module's unload looks at its
    own entries, not at every registration of every loaded module."""

    log: Any                                           # the kernel's LogBuffer
    module_at: Callable[[int], "Module | None"]        # __module_address (Kallsyms.module_at)
    _registries: dict[str, Registry] = field(default_factory=dict)
    _by_module: dict["Module", dict[int, Registration]] = field(default_factory=dict)

    def registry(self, name: str) -> Registry:
        reg = self._registries.get(name)
        if reg is None:
            reg = self._registries[name] = Registry(name, self, len(self._registries))
        return reg

    def all(self) -> Iterator[Registration]:
        for reg in self._registries.values():
            yield from reg.entries()

    def note(self, entry: Registration) -> None:
        involved = {self.module_at(a) for a in entry.addresses()}
        involved.add(entry.owner)
        entry.modules = tuple(mod for mod in involved if mod is not None)
        for mod in entry.modules:
            self._by_module.setdefault(mod, {})[id(entry)] = entry

    def forget(self, entry: Registration) -> None:
        for mod in entry.modules:
            entries = self._by_module.get(mod)
            if entries is not None:
                entries.pop(id(entry), None)
                if not entries:
                    del self._by_module[mod]

    def of_module(self, mod: "Module") -> list[Registration]:
        """Entries `mod` owns or that point into its memory, registry by
        registry, each in registration order (as `all()` lists them)."""
        mine = [e for e in self._by_module.get(mod, {}).values()
                if e.owner is mod or any(_holds(mod, a) for a in e.addresses())]
        mine.sort(key=lambda e: self._registries[e.subsystem].ordinal)
        return mine

    def release_module(self, mod: "Module") -> list[Registration]:
        """The module is being freed: report and make inert what it left registered."""
        left = self.of_module(mod)
        for entry in left:
            self._registries[entry.subsystem].remove(entry.key)
            self.log.emit(KERN_ERR, f"{mod.name}: leaked registration: {entry.what}", mod.name,
                          problem=Problem.LEAK)
            if entry.on_leftover is not None:
                entry.on_leftover(entry)
        return left


def _holds(mod: "Module", address: int) -> bool:
    core = mod.core_base <= address < mod.core_base + mod.layout.core.size
    init = not mod.init_freed and mod.init_base <= address < mod.init_base + mod.layout.init.size
    return core or init


def owner_of(kernel: Any, obj: int, module_struct: int = 0) -> "Module | None":
    """The module responsible for a registered object: the one its
    `.owner`/THIS_MODULE field names, else the one whose memory holds it."""
    named = kernel.module_by_struct(module_struct) if module_struct else None
    return named or kernel.registrations.module_at(obj)


def leftover_unlinks(entry: Registration) -> None:
    """on_leftover for entries whose `data` is (GuestList, offset of the
    list_head in the object): take the object off the kernel's list."""
    guest_list, offset = entry.data
    guest_list.unlink_quietly(entry.address + offset)


def record_listed(kernel: Any, subsystem: str, obj: int, what: str, guest_list: Any,
                  offset: int, module_struct: int = 0) -> Registration:
    """Record `obj`, just linked on a kernel list (`guest_list`) through the
    list_head at `offset`; made inert by unlinking it from that list."""
    return kernel.registrations.registry(subsystem).add(
        obj, what, owner=owner_of(kernel, obj, module_struct), address=obj,
        data=(guest_list, offset), on_leftover=leftover_unlinks)
