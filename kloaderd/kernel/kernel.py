"""The emulated kernel: the one object that owns modules, symbols, memory,
the CPU and the log, and the operations the daemon serves.

Everything runs in one trio thread, so code between two `await`s is
atomic — the role `module_mutex` and stop_machine() play in Linux.  Waiting
(a namesake settling, an exporter's init, a removal's references draining)
is one mechanism: `wait_for_change()` wakes on every state or reference
change and the waiter re-checks its own condition.
"""

from __future__ import annotations

import errno
import time
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any, Callable, TypeVar

import trio

from .. import config
from ..elf.image import parse
from ..errors import KernelError
from . import api
from .api.params import PARAM_OPS
from .cpu import Machine, Oops
from .kallsyms import Kallsyms
from .kmod import Kmod
from .load import load_module, off_loop
from .memory import RegionAllocator
from .module import Module, ModuleState, OwnerKind, RefOwner, TAINT_FLAGS, taint_letters
from .moduleparam import CUSTOM, find_param, get_param, param_owner, set_param
from .printk import KERN_ALERT, KERN_ERR, KERN_WARNING, LogBuffer
from .fault_inject import Faults
from .kdata import DATA_EXPORTS
from .percpu import PerCpuArea
from .profile import KernelProfile
from .registry import Registrations
from .slab import Slab
from .symbols import KernelSymbol, SymbolTable
from .unload import delete_module, drain_exits, finish_removal
from ..sanitizer import Sanitizer

T = TypeVar("T")


def option(default: Any, help: str, metavar: str = "", *, at_least: float | None = None,
           above: float | None = None) -> Any:
    """A kernel option: its default, what it means in its unit (`kloaderd --help`
    shows it) and the least value that makes sense (checked on construction)."""
    return field(default=default, metadata={"help": help, "metavar": metavar,
                                            "at_least": at_least, "above": above})


@dataclass
class KernelOptions:
    watchdog: float = option(5.0, "CPU seconds a task may run without sleeping before the soft-lockup "
                                  "watchdog oopses it", "SECONDS", above=0)
    try_get_coming: bool = option(False, "try_module_get admits a module still in its init (COMING), "
                                         "as modern Linux does")
    exporter_wait: float = option(30.0, "seconds a load waits for a COMING module that exports what it "
                                        "needs (0: do not wait)", "SECONDS", at_least=0)
    max_image_size: int = option(64 << 20, "bytes: the largest module image accepted; larger is EFBIG",
                                 "BYTES", at_least=1)
    log_capacity: int = option(1 << 20, "bytes of memory the kernel log ring may hold (text and bookkeeping)", "BYTES", at_least=1)
    kernel: str = option("", "a real kernel to emulate: its build tree DIR or its RELEASE "
                             "(\"\": kloader's own kernel)", "DIR|RELEASE")
    vermagic: str = option("", "the vermagic string a module must carry unless forced "
                               "(\"\": the emulated kernel's own)", "STR")
    max_modules: int = option(8192, "modules loaded at once; more is ENOSPC", "N", at_least=1)
    max_module_memory: int = option(1 << 30, "bytes of module core and init images in all; more is ENOMEM",
                                    "BYTES", at_least=1)
    module_heap_limit: int = option(256 << 20, "kmalloc bytes one module may hold; beyond, kmalloc "
                                               "returns NULL", "BYTES", at_least=0)
    heap_limit: int = option(2 << 30, "kmalloc bytes in all; beyond, kmalloc returns NULL", "BYTES", at_least=0)
    max_connections: int = option(1024, "daemon: clients connected at once; more are told EMFILE",
                                  "N", at_least=1)
    max_connections_per_uid: int = option(128, "daemon: clients of one uid connected at once; more are "
                                                "told EMFILE", "N", at_least=1)
    idle_timeout: float = option(600.0, "daemon: seconds after which a silent client with no request "
                                        "in flight and no reference held is closed (0: never)",
                                 "SECONDS", at_least=0)
    exit_grace: float = option(5.0, "seconds shutdown lets module exits still running finish "
                                    "before it interrupts them (and logs which)", "SECONDS", at_least=0)
    max_open_files: int = option(1024, "descriptors one client may hold open; more is EMFILE",
                                 "N", at_least=1)
    max_io: int = option(1 << 20, "bytes one read, write or ioctl buffer may carry; more is EINVAL",
                         "BYTES", at_least=1)
    module_quarantine: int = option(256 << 20, "bytes of freed module address space held back from "
                                               "reuse, so stale pointers into it fault", "BYTES",
                                    at_least=0)
    module_dir: str = option("", "the module tree modprobe and request_module() read "
                                 "(lib/modules/RELEASE; \"\": /lib/modules/RELEASE of the emulated kernel)", "DIR")
    modprobe_config: str = option("", "modprobe.d files or directories, ':'-separated "
                                      "(\"\": modprobe's defaults, /etc/modprobe.d ...)", "PATH")
    kmod_concurrent_max: int = option(50, "request_module() calls running at once, as Linux's "
                                          "kmod_concurrent_max", "N", at_least=1)
    kmod_busy_timeout: float = option(5.0, "seconds a request_module() waits for a free slot before "
                                           "-ETIME", "SECONDS", at_least=0)

    def __post_init__(self) -> None:
        for f in fields(self):
            problem = option_problem(f, getattr(self, f.name))
            if problem:
                raise ValueError(f"KernelOptions.{f.name}: {problem}")


def option_problem(f: Field[Any], value: Any) -> str | None:
    """Why `value` makes no sense for the option `f`, or None."""
    at_least, above = f.metadata.get("at_least"), f.metadata.get("above")
    if at_least is not None and value < at_least:
        return f"must be at least {at_least}, not {value}"
    if above is not None and value <= above:
        return f"must be more than {above}, not {value}"
    return None


class Kernel:
    def __init__(self, options: KernelOptions | None = None) -> None:
        self.options = options or KernelOptions()
        # The identity: a real kernel's build tree, or kloader's own (DESIGN.md §9).
        self.profile = KernelProfile(self.options.kernel) if self.options.kernel else None
        self.boot_time = time.monotonic()
        self.log = LogBuffer(capacity=self.options.log_capacity)
        self.taints: set[str] = set()
        self.loaded: dict[str, Module] = {}
        self.formed = 0                   # modules in `loaded` past UNFORMED: status() in O(1)
        self.symbols = SymbolTable()
        self.kernel_owner = RefOwner(OwnerKind.KERNEL, "kernel")
        self._changed = trio.Event()
        self._by_struct: dict[int, Module] = {}
        self.init_scopes: set[trio.CancelScope] = set()   # inits running now
        self.exit_scopes: dict[str, trio.CancelScope] = {}   # exits running now, by module
        self.shutting_down = False
        self.registrations = Registrations(self.log, lambda: self.loaded.values())
        self._subsystems: dict[type, Any] = {}
        api.load_all()
        self.machine = Machine(self, watchdog=self.options.watchdog, symbolize=self.symbolize)
        self.mem = self.machine.mem
        self.percpu = PerCpuArea(self)
        self.faults = Faults(self)
        self.module_area = RegionAllocator(config.MODULES_VADDR, config.MODULES_END)
        self.slab = Slab(self.mem, config.KERNEL_HEAP_BASE,
                         config.KERNEL_HEAP_END - config.KERNEL_HEAP_BASE, log=self.log,
                         tainted=self.taint_string,
                         max_owner_bytes=self.options.module_heap_limit,
                         max_total_bytes=self.options.heap_limit)
        self.slab.should_fail = self.faults.should_failslab
        exported = self.machine.kernel_symbols()
        if self.profile is None:
            for name, address in exported.items():
                entry = api.FUNCTIONS.get(name) or api.OBJECTS[name]
                self.symbols.add(KernelSymbol(name, address, entry.gpl, None, api.symbol_crc(name)))
        else:
            version = self.profile.version
            self._export_profile({name: address for name, address in exported.items()
                                  if api.emulated_for(name, version)})
        self.param_ops = {exported[obj]: kind for obj, kind in PARAM_OPS.items()}
        self.ksyms = Kallsyms(self.machine.kallsyms())
        self.sanitizer = Sanitizer(self)
        self._threads: set[trio.CancelScope] = set()
        for boot in api.BOOT:
            boot(self)
        self.kmod = Kmod(self)

    def provide(self, name: str, fn: Callable[..., Any], *, nargs: int | None = None,
                gpl: bool = False) -> None:
        """Define or override the kernel function `name` for this kernel:
        `fn(ctx, *args)`, as kloaderd/kernel/api's implementations."""
        self.faults.provide(name, fn, nargs=nargs, gpl=gpl)

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

    def _export_profile(self, implemented: dict[str, int]) -> None:
        """A real kernel's exports: every vmlinux line of Module.symvers, with
        its CRC, GPL-ness and namespace.  Those kloader implements run the
        implementation; every other one is a stub that oopses naming itself."""
        assert self.profile is not None
        exports = self.profile.exports
        addresses = dict(implemented)
        data = []
        for name in exports:
            if name in addresses:
                continue
            offset = self.percpu.export(name)
            if offset is not None:
                addresses[name] = offset          # per-CPU: an offset from the GS base
            elif name in DATA_EXPORTS and DATA_EXPORTS[name].holds_for(self.profile):
                spec = DATA_EXPORTS[name]
                init = spec.value(self.profile, self.machine.per_cpu_base) if spec.value else b""
                data.append((name, spec.size(self.profile), init))
        addresses.update(self.machine.add_objects(data))
        addresses.update(self.machine.add_not_emulated([n for n in exports if n not in addresses]))
        for name, entry in exports.items():
            self.symbols.add(KernelSymbol(name, addresses[name], entry.gpl, None, entry.crc,
                                          entry.namespace))


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
        """Wake every waiter: something changed that it may be waiting for."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_change(self) -> None:
        await self._changed.wait()

    def set_state(self, mod: Module, state: ModuleState) -> None:
        if mod.state is ModuleState.UNFORMED and state is not ModuleState.UNFORMED:
            self.formed += 1
        mod.state = state
        self.notify()

    # -- log and taint -------------------------------------------------------
    def warn(self, text: str) -> None:
        self.log.emit(KERN_WARNING, text)

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
    def map_module(self, mod: Module) -> None:
        """Write the linked images and apply STRICT_MODULE_RWX permissions."""
        linked = mod.linked
        assert linked is not None
        for base, image, layout in ((mod.core_base, linked.core, mod.layout.core),
                                    (mod.init_base, linked.init, mod.layout.init)):
            if not layout.size:
                continue
            self.mem.map(base, layout.size, "rw-")
            self.mem.write(base, image)
            for region in layout.regions:
                self.mem.protect(base + region.offset, region.size, region.perms)
        self._by_struct[linked.this_module] = mod
        # The images live in emulated memory now: a second copy would double
        # what a big module costs for as long as it is loaded.
        mod.linked = replace(linked, core=b"", init=b"")

    def free_module_init(self, mod: Module) -> None:
        """After a successful init: unmap init, seal ro_after_init."""
        self._free_init(mod)
        for region in mod.layout.core.regions:
            if region.final_perms != region.perms:
                self.mem.protect(mod.core_base + region.offset, region.size, region.final_perms)
        self.ksyms.add_module(mod)

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
            self.report_oops(oops)
            raise KernelError(errno.EFAULT, f"{mod.name}: {what} oopsed: {oops.lines[0]}") \
                from None

    def report_oops(self, oops: Oops) -> None:
        """Log an oops (saying whose freed memory it touched, if any) and taint."""
        for line in self.sanitizer.annotate_oops(oops.lines, (oops.address, oops.rip)):
            self.log.emit(KERN_ALERT, line, None)
        self.add_taint(oops.taint)

    @property
    def module_memory(self) -> int:
        """Bytes of module space in use (what max_module_memory bounds): the
        sanitizer's quarantine holds freed ranges back but they are not in use."""
        return self.module_area.used - self.sanitizer.quarantined

    # -- references ----------------------------------------------------------------
    def new_owner(self, label: str) -> RefOwner:
        return RefOwner(OwnerKind.SESSION, label)

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
                                            f"underflow (put by {owner})")
                self.add_taint("W")
                return
        self.notify()

    def try_module_get(self, name: str, owner: RefOwner) -> None:
        mod = self.get_module(name)
        if not self.module_get(mod, owner):
            raise KernelError(errno.EBUSY, f"Module {name} is {mod.state.value}: "
                                           "try_module_get refused")

    def module_put(self, name: str, owner: RefOwner) -> None:
        mod = self.get_module(name)
        if not mod.put(owner):
            raise KernelError(errno.EINVAL, f"{owner} holds no reference on module {name}")
        self.notify()

    def release_owner(self, owner: RefOwner) -> None:
        """Drop every reference `owner` holds (a session that ended)."""
        for mod in list(owner.modules):
            if mod.drop(owner):
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

    # -- the system calls ------------------------------------------------------------
    async def init_module(self, image: bytes, params: str = "", *, flags: int = 0) -> str:
        if self.shutting_down:
            raise KernelError(errno.ESHUTDOWN, "the kernel is shutting down: no new modules")
        mod = await load_module(self, image, params, flags)
        return mod.name

    async def delete_module(self, name: str, *, wait: bool = False, force: bool = False,
                            timeout: float | None = None) -> None:
        await delete_module(self, name, wait=wait, force=force, timeout=timeout)

    # -- information ------------------------------------------------------------------
    def _ordered(self) -> list[Module]:
        """/proc/modules order: newest first (`loaded` keeps insertion order)."""
        return [m for m in reversed(self.loaded.values()) if m.state is not ModuleState.UNFORMED]

    def modules(self) -> list[dict[str, Any]]:
        return [self._summary(m) for m in self._ordered()]

    def _summary(self, mod: Module) -> dict[str, Any]:
        return {
            "name": mod.name,
            "state": mod.state.value,
            "size": mod.core_size,
            "refcnt": mod.refcount,
            "holders": [h.name for h in mod.holders],
            "address": mod.core_base,
            "taints": taint_letters(mod.taints, module_only=True),
        }

    def module_info(self, name: str) -> dict[str, Any]:
        mod = self.get_module(name)
        linked = mod.linked
        info = self._summary(mod)
        info.update({
            "core_size": mod.core_size,
            "init_size": mod.init_size,
            "uses": [u.name for u in mod.uses],
            "references": mod.reference_owners(),
            "params": {p.name: get_param(self, p) for p in mod.params
                       if p.readable and p.kind != CUSTOM},
            "version": mod.image.modinfo_get("version"),
            "srcversion": mod.image.modinfo_get("srcversion"),
            "license": mod.license,
            "modinfo": [[key, value] for key, value in mod.image.modinfo],
            "exports": list(mod.exports),
            "registrations": [r.describe() for r in self.registrations.of_module(mod)],
            "sections": {} if linked is None else {
                mod.image.sections[i].name: addr for i, addr in linked.section_addr.items()
                if not (mod.init_freed and mod.image.sections[i].name.startswith(".init"))},
        })
        return info

    def _param(self, module: str, param: str):
        mod = self.get_module(module)
        p = find_param(mod, param)
        if p is None or not p.perm:
            raise KernelError(errno.ENOENT, f"/sys/module/{module}/parameters/{param}: "
                                            "No such file or directory")
        return mod, p

    def param_get(self, module: str, param: str) -> str:
        mod, p = self._param(module, param)
        if not p.readable:
            raise KernelError(errno.EACCES, f"parameter {param} of {module} is not readable")
        return get_param(self, p)

    def param_set(self, module: str, param: str, value: str) -> None:
        mod, p = self._param(module, param)
        if not p.writable:
            raise KernelError(errno.EACCES, f"parameter {param} of {module} is read-only "
                                            f"(mode {p.perm:04o})")
        set_param(self, mod, p, value)

    async def modinfo(self, data: bytes) -> dict[str, Any]:
        """An image's name and `.modinfo`, without loading it (a big image is
        parsed off the loop: this is open to unprivileged peers)."""
        image = await off_loop(len(data), parse, data, max_size=self.options.max_image_size)
        return {"name": image.name, "modinfo": [list(pair) for pair in image.modinfo]}

    def kallsyms(self) -> list[dict[str, Any]]:
        return [{"address": s.address, "type": s.type, "name": s.name, "module": s.module}
                for s in self.ksyms.all()]

    def status(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "vermagic": self.vermagic,
            "kernel": str(self.profile.tree) if self.profile is not None else "kloader",
            "tainted": self.taint_string(),
            "taints": taint_letters(self.taints),
            "modules": self.formed,
            "uptime": time.monotonic() - self.boot_time,
            "symbols": len(self.symbols),
        }

    def begin_shutdown(self) -> None:
        """Refuse new loads and interrupt the inits in progress.

        The first half of shutting down, for callers that must let in-flight
        requests finish before `shutdown()`: an init that sleeps forever
        would otherwise keep its load, and so the daemon, alive forever.
        """
        self.shutting_down = True
        for scope in self.init_scopes:
            scope.cancel()

    async def shutdown(self) -> None:
        """Remove every module, users before what they use, running exits."""
        self.begin_shutdown()
        with trio.CancelScope(shield=True):
            # Exits (those of earlier removals and those run now) get
            # `exit_grace` in all, then are interrupted: shutdown is bounded.
            deadline = trio.current_time() + self.options.exit_grace
            while any(m.state in (ModuleState.UNFORMED, ModuleState.COMING)
                      for m in self.loaded.values()):
                await self.wait_for_change()          # interrupted loads unwinding
            while True:
                removable = [m for m in self._ordered()
                             if not m.holders and m.state is ModuleState.LIVE]
                if not removable:
                    if not self.exit_scopes:
                        break
                    await drain_exits(self, deadline)    # what they hold may go next
                    continue
                for mod in removable:
                    self.set_state(mod, ModuleState.GOING)
                    await finish_removal(self, mod, abandon_at=deadline)
            for scope in list(self._threads):
                scope.cancel()                  # kernel threads outlive no kernel
