"""What the kernel's own code shares: the module list, module memory,
references, the log and taint, waiting — Linux's kernel/module/internal.h.

`KernelServices` is what the pipelines (`load.py`, `unload.py`,
`version.py`, `moduleparam.py`) and the kernel API are handed; `Kernel`
(`kernel.py`) adds the operations the daemon serves (the system calls and
what /proc and /sys show) and boots the machine, memory and subsystems
declared here.  So the served API sits on top of the services and nothing
below it imports it: tests/test_structure.py checks the import graph.
"""

from __future__ import annotations

import errno
import time
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from .. import config
from ..errors import KernelError
from ..mm.anon import PAGE, discard_of
from .cpu import Machine
from .oops import Oops
from .fault_inject import Faults
from .kallsyms import Kallsyms
from .layouts import Layouts, kloader_layouts, profile_layouts
from .memory import AddressSpace, RegionAllocator
from .module import Module, ModuleState, OwnerKind, RefOwner, TAINT_FLAGS, param_owner, taint_letters
from .options import KernelOptions
from .percpu import PerCpuArea
from .printk import KERN_ALERT, KERN_ERR, KERN_WARNING, LogBuffer, Problem
from .profile import load_profile
from .registry import Registrations
from .slab import Slab
from .symbols import SymbolTable

if TYPE_CHECKING:
    from ..sanitizer import Sanitizer

# Bytes of a module image written into emulated memory in one event-loop
# step (each is copied once on its way, so this is also what a write adds to
# the daemon's peak memory).
MAP_WRITE_PIECE = 1 << 20

T = TypeVar("T")


class KernelServices:
    """The kernel's state and the services its own code calls back into.

    Everything runs in one trio thread, so code between two `await`s is
    atomic — the role `module_mutex` and stop_machine() play in Linux.
    Waiting (a namesake settling, an exporter's init, a removal's references
    draining) is one mechanism: `wait_for_change()` wakes on every state or
    reference change and the waiter re-checks its own condition.
    """

    # Booted by Kernel.__init__ (kernel.py): the emulated machine and what lives in it.
    machine: Machine
    mem: AddressSpace
    percpu: PerCpuArea
    faults: Faults
    module_area: RegionAllocator
    slab: Slab
    param_ops: dict[int, str]         # param_ops_* object address -> parameter type
    ksyms: Kallsyms
    sanitizer: Sanitizer

    def __init__(self, options: KernelOptions) -> None:
        self.options = options
        # The identity: a real kernel's build tree, or kloader's own (DESIGN.md §9).
        self.profile = load_profile(self.options.kernel) if self.options.kernel else None
        self.boot_time = time.monotonic()
        self.log = LogBuffer(capacity=self.options.log_capacity)
        # Where the structures modules hand over have their members: once per kernel.
        self.layouts: Layouts = (kloader_layouts() if self.profile is None else
                                 profile_layouts(self.profile, lambda text: self.log.emit(KERN_WARNING, text)))
        self.taints: set[str] = set()
        self.loaded: dict[str, Module] = {}
        self.formed = 0                   # modules in `loaded` past UNFORMED: status() in O(1)
        self.symbols = SymbolTable()
        self.kernel_owner = RefOwner(OwnerKind.KERNEL, "kernel")
        self._changed = trio.lowlevel.ParkingLot()     # who waits for notify()
        self._by_struct: dict[int, Module] = {}
        self.init_scopes: set[trio.CancelScope] = set()   # inits running now
        self.exit_scopes: dict[str, trio.CancelScope] = {}   # exits running now, by module
        self.shutting_down = False
        self.registrations = Registrations(self.log, lambda address: self.ksyms.module_at(address))
        self._subsystems: dict[type, Any] = {}
        self._threads: set[trio.CancelScope] = set()

    @property
    def release(self) -> str:
        """UTS_RELEASE of the emulated kernel: `uname -r`."""
        return self.profile.release if self.profile is not None else config.UTS_RELEASE

    @property
    def vermagic(self) -> str:
        """The VERMAGIC_STRING modules must carry (`--vermagic` overrides it)."""
        if self.options.vermagic:
            return self.options.vermagic
        return self.profile.vermagic if self.profile is not None else config.VERMAGIC

    def subsystem(self, cls: type[T]) -> T:
        """The one state object of a subsystem (`cls(kernel)`), made on first
        use: a subsystem keeps its per-kernel state here, not in globals."""
        state = self._subsystems.get(cls)
        if state is None:
            state = self._subsystems[cls] = cls(self)
        return state

    def spawn(self, afn: Any, *args: Any, name: str) -> trio.CancelScope:
        """Run `afn(*args)` as a kernel thread of this kernel (a timer
        softirq, a kworker, a kthread): it outlives the request that started
        it, so it is a trio system task, ended by cancelling the scope this
        returns, and by `shutdown()` for those still running then."""
        scope = trio.CancelScope()

        async def thread() -> None:
            try:
                with scope:
                    await afn(*args)
            except Exception as exc:   # a kloader bug: logged, never the daemon's end
                self.log.emit(KERN_ERR, f"kloader: kernel thread {name} failed: {exc!r}", None)
            finally:
                self._threads.discard(scope)
        self._threads.add(scope)
        trio.lowlevel.spawn_system_task(thread, name=name)
        return scope

    # -- notification -------------------------------------------------------
    def notify(self) -> None:
        """Wake every waiter: something changed that it may be waiting for.
        A load and an unload notify six times and usually nobody waits:
        then this is a length check, not a new Event."""
        if self._changed:
            self._changed.unpark_all()

    async def wait_for_change(self) -> None:
        await self._changed.park()

    def set_state(self, mod: Module, state: ModuleState) -> None:
        if mod.state is ModuleState.UNFORMED and state is not ModuleState.UNFORMED:
            self.formed += 1
        mod.state = state
        self.notify()

    # -- log and taint -------------------------------------------------------
    def warn(self, text: str) -> None:
        self.log.emit(KERN_WARNING, text)

    def builds_in(self, option: str) -> bool:
        """CONFIG_<option>=y: as a real kernel's .config says; kloader's
        own kernel builds everything in."""
        return self.profile is None or self.profile.enabled(option)

    def add_taint(self, flag: str) -> None:
        self.taints.add(flag)

    def add_module_taint(self, mod: Module, flag: str) -> None:
        mod.taints.add(flag)
        self.taints.add(flag)

    def taint_string(self) -> str:
        """print_tainted(): 'Not tainted' or 'Tainted: P           O      '."""
        if not self.taints:
            return "Not tainted"
        return "Tainted: " + "".join(flag if flag in self.taints else clear
                                     for flag, clear, _ in TAINT_FLAGS)

    def modules_linked_in(self) -> str:
        """print_modules(): 'hello(O) faults(O+)', newest first, for oopses."""
        def flags(mod: Module) -> str:
            marks = taint_letters(mod.taints, module_only=True) + \
                {ModuleState.GOING: "-", ModuleState.COMING: "+"}.get(mod.state, "")
            return f"({marks})" if marks else ""
        linked = " ".join(f"{m.name}{flags(m)}" for m in self._ordered())
        last = self.sanitizer.last_unloaded
        return f"{linked} [last unloaded: {last}]".lstrip() if last else linked

    def symbolize(self, address: int, offset: bool = True) -> str | None:
        return self.ksyms.symbolize(address, offset)

    # -- the module list -------------------------------------------------------
    def add_module(self, mod: Module) -> None:
        self.loaded[mod.name] = mod       # insertion order is load order
        self.notify()

    def find_module(self, name: str) -> Module | None:
        """find_module(): UNFORMED modules are invisible."""
        mod = self.loaded.get(name)
        return mod if mod is not None and mod.state is not ModuleState.UNFORMED else None

    def get_module(self, name: str) -> Module:
        mod = self.find_module(name)
        if mod is None:
            raise KernelError(errno.ENOENT, f"Module {name} is not currently loaded")
        return mod

    def module_by_struct(self, address: int) -> Module | None:
        return self._by_struct.get(address)

    # -- memory of a module ----------------------------------------------------
    async def map_module(self, mod: Module) -> None:
        """Write the linked images and apply STRICT_MODULE_RWX permissions.

        A big image is written in `MAP_WRITE_PIECE` pieces with the event
        loop let in between (a 56 MiB module in one write held every other
        client up); a piece the linker shared with the module file goes
        from there (`Linked.core_pieces`).  Both images are mapped before
        any piece is written, so a load cancelled meanwhile is undone by
        `free_module` as any other."""
        linked = mod.linked
        assert linked is not None
        images = [(base, pieces, layout) for base, pieces, layout in (
            (mod.core_base, linked.core_pieces, mod.layout.core),
            (mod.init_base, linked.init_pieces, mod.layout.init)) if layout.size]
        for base, _, layout in images:
            self.mem.map(base, layout.size, "rw-")
        # A file received into memory of its own gives back each shared
        # section's pages once they are written (nothing reads them again):
        # the file and the module are never both resident in full.
        discard = discard_of(mod.image.data)
        in_file = {id(s.data): s.offset for s in mod.image.sections} if discard else {}
        written = 0
        for base, pieces, layout in images:
            for start, data in pieces:
                view = memoryview(data)
                at = in_file.get(id(data))
                for offset in range(0, len(view), MAP_WRITE_PIECE):
                    if written >= MAP_WRITE_PIECE:
                        await trio.lowlevel.checkpoint()
                        written = 0
                    chunk = view[offset:offset + MAP_WRITE_PIECE]
                    self.mem.write(base + start + offset, chunk)
                    written += len(chunk)
                    if at is not None:      # from the page the last chunk left
                        discard(at + max(offset - PAGE, 0), at + offset + len(chunk))
            for region in layout.regions:
                self.mem.protect(base + region.offset, region.size, region.perms)
        self._by_struct[linked.this_module] = mod

    def free_module_init(self, mod: Module) -> None:
        """After a successful init: unmap init, seal ro_after_init."""
        self._free_init(mod)
        for region in mod.layout.core.regions:
            if region.final_perms != region.perms:
                self.mem.protect(mod.core_base + region.offset, region.size, region.final_perms)
        self.ksyms.remove_init(mod)

    def _free_init(self, mod: Module) -> None:
        """The init image goes: unmapped (if it was mapped) and its range
        freed, or quarantined if code may still point into it."""
        if mod.layout.init.size and not mod.init_freed:
            if mod.linked is not None:
                self.mem.unmap(mod.init_base, mod.layout.init.size)
                self.sanitizer.quarantine(f"{mod.name} (init)", mod.init_base, mod.layout.init.size)
            else:
                self.module_area.free(mod.init_base)
        mod.init_freed = True

    def free_module(self, mod: Module) -> None:
        """Undo everything a (partial) load did; the module ceases to exist."""
        formed = mod.state is not ModuleState.UNFORMED
        if formed:
            mod.state = ModuleState.GOING
        if mod.linked is not None:
            self.sanitizer.module_freed(mod)     # before its symbols go: reports name them
        self.registrations.release_module(mod)
        self.symbols.remove_module(mod)
        self.ksyms.remove_module(mod)
        for used in mod.uses:
            used.put(mod.dependency_owner)
            used.holders.remove(mod)
        mod.uses.clear()
        mod.drop_all()
        self.percpu.module_free(mod)
        self.slab.release(param_owner(mod))
        self.slab.reclaim_module(mod.name)
        self._free_init(mod)
        if mod.linked is not None:
            self._by_struct.pop(mod.linked.this_module, None)
            self.mem.unmap(mod.core_base, mod.layout.core.size)
            self.sanitizer.quarantine(mod.name, mod.core_base, mod.layout.core.size)
        else:
            self.module_area.free(mod.core_base)
        if self.loaded.get(mod.name) is mod:
            del self.loaded[mod.name]
            self.formed -= formed
        self.notify()

    async def call_module(self, mod: Module, address: int, what: str) -> int:
        """Run module code; an oops is logged, taints, and fails with EFAULT."""
        try:
            return await self.machine.call(address, module=mod, name="insmod" if what == "init"
                                           else "rmmod")
        except Oops as oops:
            self.report_oops(oops, mod.name)
            raise KernelError(errno.EFAULT, f"{mod.name}: {what} oopsed: {oops.lines[0]}") \
                from None

    def report_oops(self, oops: Oops, module: str | None = None) -> None:
        """Log an oops (saying whose freed memory it touched, if any) and
        taint; its records name `module`, the module whose code the task ran
        (its init or exit, a callback of its), so that who died is known
        apart from what else was running then (a survey's verdicts)."""
        for i, line in enumerate(self.sanitizer.annotate_oops(oops.lines, (oops.address, oops.rip))):
            self.log.emit(KERN_ALERT, line, module, problem=None if i else Problem.OOPS)
        self.add_taint(oops.taint)

    @property
    def module_memory(self) -> int:
        """Bytes of module space in use (what max_module_memory bounds): the
        sanitizer's quarantine holds freed ranges back but they are not in use."""
        return self.module_area.used - self.sanitizer.quarantined

    # -- references ----------------------------------------------------------------
    def module_get(self, mod: Module, owner: RefOwner, *, unconditional: bool = False) -> bool:
        """try_module_get(): only a live module may be entered (the FAQ);
        `try_get_coming` admits COMING too, as modern Linux does."""
        ok = unconditional or mod.state is ModuleState.LIVE or (
            self.options.try_get_coming and mod.state is ModuleState.COMING)
        if ok:
            mod.get(owner)
        return ok

    def module_put_from_code(self, mod: Module, owner: RefOwner) -> None:
        """module_put() from module code: prefer the caller's own reference,
        then any other module code's; never below zero."""
        if not mod.put(owner):
            other = next((o for o in mod.refs if o.kind in (OwnerKind.MODULE, OwnerKind.KERNEL)),
                         None)
            if other is None or not mod.put(other):
                self.log.emit(KERN_WARNING, f"WARNING: module_put: {mod.name} refcount "
                                            f"underflow (put by {owner})", problem=Problem.WARNING)
                self.add_taint("W")
                return
        self.notify()

    def symbol_get(self, name: str, caller: Module | None) -> int:
        """__symbol_get(): as Linux 6.6, only EXPORT_SYMBOL_GPL symbols, and a
        reference on the exporting module."""
        sym = self.symbols.find(name, gplok=True)
        if sym is None:
            return 0
        if not sym.gpl_only:
            self.warn(f"failing symbol_get of non-GPLONLY symbol {name}.")
            return 0
        if sym.owner is not None and not self.module_get(sym.owner, self._symbol_owner(caller)):
            return 0
        return sym.address

    def symbol_put(self, name: str, caller: Module | None) -> None:
        sym = self.symbols.get(name)
        if sym is None:
            self.log.emit(KERN_ERR, f"symbol_put: {name} is not exported")
            return
        if sym.owner is not None:
            if not sym.owner.put(self._symbol_owner(caller)):
                self.warn(f"symbol_put: {name}: no symbol_get reference held")
            self.notify()

    def _symbol_owner(self, caller: Module | None) -> RefOwner:
        return caller.symbol_owner if caller is not None else self.kernel_owner

    def _ordered(self) -> list[Module]:
        """/proc/modules order: newest first (`loaded` keeps insertion order)."""
        return [m for m in reversed(self.loaded.values()) if m.state is not ModuleState.UNFORMED]
