"""kernel/jump_label.c: static keys, and the module code patched when one flips.

A `struct static_key` is `{atomic_t enabled; unsigned long type/entries}`:
`enabled` counts the users that want the key on, and the low bit of the
second word (JUMP_TYPE_TRUE) says the key was defined true.  Every
`static_branch_likely/unlikely()` in a module leaves a site in its text (a
NOP or a JMP, arch/x86/jump_label.py) and an entry in its `__jump_table`:
`struct jump_entry {s32 code; s32 target; long key;}`, each field relative
to its own address, the key's bit 0 the branch's direction (`branch`) and
bit 1, which the loader sets, that the site lies in init text.  A site is a
JMP when `static_key_enabled(key) ^ branch` (`jump_label_type`) and a NOP
otherwise; the compiler emitted it for the key's defined state,
`type ^ branch` (`jump_label_init_type`).

`add_module` is jump_label_add_module() at MODULE_STATE_COMING: the
module's entries join their keys' sites, and a site whose key — another
module's, or the kernel's — is no longer at its defined state is patched
before the module's init runs.  `static_key_enable`, `static_key_slow_inc`
and the rest move the count as Linux's do (its fast paths, its warnings)
and, on a 0 <-> 1 transition, patch every site of the key in every loaded
module (`jump_label_update`).  Init-text sites are patched only while their
module is COMING, and forgotten with its init text; a module going takes
its sites with it (jump_label_del_module), and its own keys.

The count lives where Linux keeps it, in the key's first word, which
module code reads inline (`static_key_enabled`).  A key in kernel data that
kloader does not back (an execute-only stub of a profile's export, such as
`nf_hooks_needed` under a real kernel) has its count and type kept here
instead: its type is learned from the first site that names it (the
instruction the compiler emitted is `type ^ branch`), and the count starts
at it.  kloader does not write the second word's entries pointer, which
module code never reads (docs/semantics.md).

Patching from a kernel call stops the emulation first: the call returns a
coroutine (as a sleeping function does; these take `cpus_read_lock` and
`jump_label_mutex` in Linux), which runs with no guest code on the CPU and
decides again, so the check and the patch are one step for every other task.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from ..arch.x86.jump_label import UnexpectedOp, arch_jump_label_transform, site_type
from ..elf.defs import SHF_ALLOC
from ..errors import KernelError
from .api import export
from .memory import GuestFault
from .module import ModuleState
from .printk import KERN_CRIT

if TYPE_CHECKING:
    from .internal import KernelServices
    from .module import Module

JUMP_ENTRY_SIZE = 16
_ENTRY = struct.Struct("<iiq")
INT_MAX = 0x7FFFFFFF
_WHERE = "kernel/jump_label.c"
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class JumpEntry:
    """One site, its fields made absolute."""
    code: int
    target: int
    key: int
    branch: int              # 1: the branch is taken when the key is off
    init: bool               # in the module's init text
    module: "Module"


def read_jump_table(mem: Any, base: int, count: int, mod: "Module") -> list[JumpEntry]:
    """The entries of a `__jump_table` at `base` (relocated: fields relative
    to their own addresses), with the init bit jump_label_add_module sets."""
    raw = mem.read(base, count * JUMP_ENTRY_SIZE)
    init_lo, init_hi = mod.init_base, mod.init_base + mod.layout.init.size
    out = []
    for i, (code, target, key) in enumerate(_ENTRY.iter_unpack(raw)):
        at = base + i * JUMP_ENTRY_SIZE
        code_at = (at + code) & _MASK64
        key_at = (at + 8 + key) & _MASK64
        out.append(JumpEntry(code_at, (at + 4 + target) & _MASK64, key_at & ~3, key_at & 1,
                             init_lo <= code_at < init_hi, mod))
    return out


class JumpLabels:
    """Every loaded module's sites, by key; the counts of keys kloader does
    not back with memory."""

    def __init__(self, kernel: "KernelServices") -> None:
        self.kernel = kernel
        self.sites: dict[int, list[JumpEntry]] = {}      # key -> its sites, in load order
        self.unbacked: dict[int, list[int]] = {}         # key -> [enabled, type]
        kernel.sanitizer.leftover_checks.append(self.del_module)

    # -- a key's state --------------------------------------------------------------
    def _unbacked(self, key: int) -> list[int] | None:
        """[enabled, type] of a kernel key kloader keeps itself: one in a
        not-emulated export's stub.  Unless a site named it first, it is
        taken to be defined false, as most kernel keys modules switch are."""
        state = self.unbacked.get(key)
        if state is None and self.kernel.machine.not_emulated_at(key) is not None:
            state = self.unbacked[key] = [0, 0]
        return state

    def count(self, key: int) -> int:
        """atomic_read(&key->enabled)."""
        state = self._unbacked(key)
        if state is not None:
            return state[0]
        return self.kernel.mem.read_s32(key)

    def set_count(self, key: int, value: int) -> None:
        state = self._unbacked(key)
        if state is not None:
            state[0] = value
        else:
            self.kernel.mem.write_u32(key, value & 0xFFFFFFFF)

    def _learn(self, key: int, entry: JumpEntry) -> None:
        """A kernel key no memory backs, first named by a site: its type is
        what the site was compiled for, and its count starts there."""
        if key in self.unbacked or self.kernel.machine.not_emulated_at(key) is None:
            return
        compiled = site_type(self.kernel.mem, entry.code)
        type_ = (compiled ^ entry.branch) if compiled is not None else 0
        self.unbacked[key] = [type_, type_]

    def _type_of(self, entry: JumpEntry) -> int:
        """jump_label_type(): JMP when the key is on, xor the branch."""
        return int(self.count(entry.key) != 0) ^ entry.branch

    # -- modules ---------------------------------------------------------------------
    def add_module(self, mod: "Module") -> None:
        """jump_label_add_module(): at COMING, before the module's init."""
        section = mod.image.section("__jump_table")
        if section is None or not section.flags & SHF_ALLOC or mod.linked is None:
            return
        base = mod.linked.section_addr.get(section.index)
        count = section.size // JUMP_ENTRY_SIZE
        if base is None or not count:
            return
        entries = read_jump_table(self.kernel.mem, base, count, mod)
        for entry in entries:
            if not self._within(mod, entry.code):
                raise KernelError(errno.ENOEXEC, f"{mod.name}: __jump_table entry at "
                                                 f"{entry.code:#x} is outside the module's text")
        by_key: dict[int, list[JumpEntry]] = {}
        for entry in entries:
            by_key.setdefault(entry.key, []).append(entry)
        for key, sites in by_key.items():
            if not self._within(mod, key):
                self._learn(key, sites[0])
            self.sites.setdefault(key, []).extend(sites)
            if not self._within(mod, key):
                # Another module's or the kernel's key: follow its state now.
                self._update(sites)

    def del_module(self, mod: "Module") -> None:
        """jump_label_del_module(): its sites go, and its own keys."""
        for key in list(self.sites):
            kept = [e for e in self.sites[key] if e.module is not mod]
            if kept and not self._within(mod, key):
                self.sites[key] = kept
            else:
                del self.sites[key]
        for key in [k for k in self.unbacked if self._within(mod, k)]:
            del self.unbacked[key]

    @staticmethod
    def _within(mod: "Module", address: int) -> bool:
        return (mod.core_base <= address < mod.core_base + mod.layout.core.size
                or mod.init_base <= address < mod.init_base + mod.layout.init.size)

    # -- patching --------------------------------------------------------------------
    def update(self, key: int) -> None:
        """jump_label_update(): every site of `key` to the key's state."""
        self._update(self.sites.get(key, ()))

    def _update(self, sites: Iterable[JumpEntry]) -> None:
        mem = self.kernel.mem
        for entry in sites:
            # Cannot update code that was in an init text area (jump_label_can_update).
            if entry.init and (entry.module.state is not ModuleState.COMING or entry.module.init_freed):
                continue
            type_ = self._type_of(entry)
            try:
                arch_jump_label_transform(mem, entry.code, entry.target, type_,
                                          self.kernel.symbolize(entry.code) or "")
            except UnexpectedOp as bug:
                self.kernel.log.emit(KERN_CRIT, bug.line, entry.module.name)
                raise


def jump_labels(kernel: Any) -> JumpLabels:
    return kernel.subsystem(JumpLabels)


def jump_label_add_module(kernel: "KernelServices", mod: "Module") -> None:
    try:
        jump_labels(kernel).add_module(mod)
    except UnexpectedOp as bug:
        raise KernelError(errno.ENOEXEC, f"{mod.name}: {bug.line}") from None
    except GuestFault as fault:
        raise KernelError(errno.ENOEXEC, f"{mod.name}: __jump_table names a static key at "
                                         f"{fault.address:#x}, which is not mapped") from None


# -- the count, as Linux moves it ------------------------------------------------------

def _warn_once(ctx: Any, site: str, function: str) -> None:
    """WARN_ON_ONCE() at `site` (a function of jump_label.c), reported as
    Linux's is, in the exported function it was inlined into."""
    from .panic import Once, warn
    fired = ctx.kernel.subsystem(Once).fired
    if f"{_WHERE}:{site}" not in fired:
        fired.add(f"{_WHERE}:{site}")
        warn(ctx, "", _WHERE, function)


def _patching(ctx: Any, step: Any, *args: Any) -> Any:
    """Run `step(ctx, *args)` with the emulation stopped (see the docstring)."""
    async def patching() -> int:
        return int(step(ctx, *args) or 0)
    return patching()


def _switch(ctx: Any, key: int, want: int, function: str) -> int:
    """static_key_enable/disable_cpuslocked() under jump_label_mutex: the
    key from 0 to 1 or 1 to 0, its sites patched; any other count is left
    alone, and warned about unless the key is already where it should be."""
    labels = jump_labels(ctx.kernel)
    count = labels.count(key)
    if count == 1 - want:
        labels.set_count(key, want)
        labels.update(key)
    elif count != want:
        _warn_once(ctx, function, function.removesuffix("_cpuslocked"))
    return 0


def enable_locked(ctx: Any, key: int) -> int:
    return _switch(ctx, key, 1, "static_key_enable_cpuslocked")


def disable_locked(ctx: Any, key: int) -> int:
    return _switch(ctx, key, 0, "static_key_disable_cpuslocked")


def static_key_enable_cpuslocked(ctx: Any, key: int) -> Any:
    count = jump_labels(ctx.kernel).count(key)
    if count > 0:
        if count != 1:
            _warn_once(ctx, "static_key_enable_cpuslocked", "static_key_enable")
        return 0
    return _patching(ctx, enable_locked, key)


def static_key_disable_cpuslocked(ctx: Any, key: int) -> Any:
    count = jump_labels(ctx.kernel).count(key)
    if count != 1:
        if count != 0:
            _warn_once(ctx, "static_key_disable_cpuslocked", "static_key_disable")
        return 0
    return _patching(ctx, disable_locked, key)


def _fast_inc_not_disabled(labels: JumpLabels, key: int) -> bool:
    """static_key_fast_inc_not_disabled(): +1 unless off (or at INT_MAX)."""
    value = labels.count(key)
    if value <= 0 or value + 1 > INT_MAX:
        return False
    labels.set_count(key, value + 1)
    return True


def _inc_slow(ctx: Any, key: int) -> int:
    labels = jump_labels(ctx.kernel)
    if labels.count(key) == 0:
        labels.set_count(key, 1)
        labels.update(key)
        return 1
    if not _fast_inc_not_disabled(labels, key):
        _warn_once(ctx, "static_key_slow_inc_cpuslocked", "static_key_slow_inc")
        return 0
    return 1


def static_key_slow_inc_cpuslocked(ctx: Any, key: int) -> Any:
    if _fast_inc_not_disabled(jump_labels(ctx.kernel), key):
        return 1
    return _patching(ctx, _inc_slow, key)


def dec_not_one(ctx: Any, labels: JumpLabels, key: int) -> bool:
    """static_key_dec_not_one(): -1 unless that is the last user; an
    underflow is warned about and reported as done."""
    value = labels.count(key)
    if value < 0:
        _warn_once(ctx, "static_key_dec_not_one:negative", "static_key_slow_dec")
    if value == 0:
        _warn_once(ctx, "static_key_dec_not_one:underflow", "static_key_slow_dec")
        return True
    if value <= 1:
        return False
    labels.set_count(key, value - 1)
    return True


def _dec_slow(ctx: Any, key: int) -> int:
    labels = jump_labels(ctx.kernel)
    if labels.count(key) <= 0:
        _warn_once(ctx, "__static_key_slow_dec_cpuslocked", "static_key_slow_dec")
        return 0
    if dec_not_one(ctx, labels, key):       # another user came meanwhile
        return 0
    labels.set_count(key, 0)
    labels.update(key)
    return 0


def static_key_slow_dec_cpuslocked(ctx: Any, key: int) -> Any:
    if dec_not_one(ctx, jump_labels(ctx.kernel), key):
        return 0
    return _patching(ctx, _dec_slow, key)


_KEY = "struct static_key *key"
for _name, _fn, _ret in (("static_key_enable", static_key_enable_cpuslocked, "void"),
                         ("static_key_disable", static_key_disable_cpuslocked, "void"),
                         ("static_key_slow_inc", static_key_slow_inc_cpuslocked, "bool"),
                         ("static_key_slow_dec", static_key_slow_dec_cpuslocked, "void")):
    # cpus_read_lock() around the _cpuslocked body: one CPU, nothing to hold off.
    export(_name, f"{_ret} {_name}({_KEY})", nargs=1)(_fn)
    export(f"{_name}_cpuslocked", f"{_ret} {_name}_cpuslocked({_KEY})", nargs=1)(_fn)


@export("static_key_count", f"int static_key_count({_KEY})", nargs=1)
def static_key_count(ctx: Any, key: int) -> int:
    """-1 (a first enable under way) reads as 1, as static_key_enabled wants."""
    n = jump_labels(ctx.kernel).count(key)
    return n if n >= 0 else 1


@export("static_key_fast_inc_not_disabled", f"bool static_key_fast_inc_not_disabled({_KEY})", nargs=1)
def static_key_fast_inc_not_disabled(ctx: Any, key: int) -> int:
    return int(_fast_inc_not_disabled(jump_labels(ctx.kernel), key))
