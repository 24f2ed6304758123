"""The emulated kernel as the daemon serves it: the system calls
(init_module, delete_module), references by name, and what /proc and /sys
show — the operations `kloaderd/server` calls.

What the kernel's own code shares (the module list, module memory,
references, the log, waiting) is `KernelServices` in `internal.py`, which
`Kernel` boots and extends: the pipelines are handed those services and never
import this file, as Linux's kernel/module/*.c share internal.h, not the
syscalls.
"""

from __future__ import annotations

import errno
import time
from typing import Any, Callable

import trio

from .. import config
from ..elf.image import parse
from ..errors import KernelError
from . import api
from .api.params import PARAM_OPS
from .cpu import Machine
from .fault_inject import Faults
from .internal import KernelServices
from .kallsyms import Kallsyms
from .kdata import DATA_EXPORTS
from .kmod import Kmod
from .load import load_module, off_loop
from .memory import RegionAllocator
from .module import Module, ModuleState, OwnerKind, RefOwner, taint_letters
from .moduleparam import CUSTOM, find_param, get_param, set_param
from .options import KernelOptions
from .percpu import PerCpuArea
from .slab import Slab
from .symbols import KernelSymbol
from .unload import delete_module, drain_exits, finish_removal
from ..sanitizer import Sanitizer


class Kernel(KernelServices):
    def __init__(self, options: KernelOptions | None = None) -> None:
        super().__init__(options or KernelOptions())
        api.load_all()
        self.machine = Machine(self, watchdog=self.options.watchdog, symbolize=self.symbolize)
        self.mem = self.machine.mem
        self.percpu = PerCpuArea(self.machine)
        self.faults = Faults(self.machine, self.symbols, self.log)
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
                if api.emulated_for(name, None, self.layouts):
                    self.symbols.add(KernelSymbol(name, address, entry.gpl, None, api.symbol_crc(name)))
        else:
            version = self.profile.version
            self._export_profile({name: address for name, address in exported.items()
                                  if api.emulated_for(name, version, self.layouts)})
        self.param_ops = {exported[obj]: kind for obj, kind in PARAM_OPS.items()}
        self.ksyms = Kallsyms(self.machine.kallsyms())
        self.sanitizer = Sanitizer(self)
        for boot in api.BOOT:
            boot(self)
        self.kmod = Kmod(self)

    def provide(self, name: str, fn: Callable[..., Any], *, nargs: int | None = None,
                gpl: bool = False) -> None:
        """Define or override the kernel function `name` for this kernel:
        `fn(ctx, *args)`, as kloaderd/kernel/api's implementations."""
        self.faults.provide(name, fn, nargs=nargs, gpl=gpl)

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
                size = spec.sized(self.profile, self.layouts)
                if size is not None:
                    init = spec.value(self.profile, self.machine.per_cpu_base, self.layouts) if spec.value else b""
                    data.append((name, size, init))
        addresses.update(self.machine.add_objects(data))
        addresses.update(self.machine.add_not_emulated([n for n in exports if n not in addresses]))
        for name, entry in exports.items():
            self.symbols.add(KernelSymbol(name, addresses[name], entry.gpl, None, entry.crc,
                                          entry.namespace))


    # -- references ----------------------------------------------------------------
    def new_owner(self, label: str) -> RefOwner:
        return RefOwner(OwnerKind.SESSION, label)

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
    def modules(self) -> list[dict[str, Any]]:
        summary = self._summary
        return [summary(m) for m in self._ordered()]

    @staticmethod
    def _summary(mod: Module) -> dict[str, Any]:
        """One /proc/modules row.  Built once per loaded module for every
        `modules` request, so it reads plain attributes (`_value_`, not
        Enum's `value` property; the layout's size, not `core_size`'s) and
        sums no empty Counter."""
        return {
            "name": mod.name,
            "state": mod.state._value_,
            "size": mod.layout.core.size,
            "refcnt": sum(mod.refs.values()) if mod.refs else 0,
            "holders": [h.name for h in mod.holders] if mod.holders else [],
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
