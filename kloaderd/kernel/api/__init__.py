"""The kernel functions and objects that modules link against.

Each entry here is an exported symbol of the core kernel ("vmlinux"), as
`EXPORT_SYMBOL`/`EXPORT_SYMBOL_GPL` make them in Linux.  A function becomes a
small stub in kernel text; when module code calls it, the CPU hands the
System V argument registers to the Python implementation and returns its
result in %rax.  An object becomes bytes in kernel data or rodata.

One table feeds everything that must agree: the symbol table the linker
resolves against, kallsyms, the CPU's dispatch, and the modversions CRC
that `kmodbuild` writes into `__versions` (computed from `proto`, so a change
of prototype changes the CRC exactly as genksyms would).

Implementations are registered with the decorators below, from the modules
of this package and from the subsystems that own them (DESIGN.md §10:
`kloaderd/lib/`, `kloaderd/crypto/`, …, listed in `SUBSYSTEMS`);
`load_all()` imports them all so the table is complete.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import zlib
from dataclasses import dataclass
from typing import Any, Callable

# An implementation is called as impl(ctx, *args) with one int per declared
# argument (`nargs`), and returns an int (or None for 0).  `ctx` is the
# kernel.cpu.CallContext of the calling task: ctx.kernel, ctx.mem, ctx.task,
# ctx.module (the module whose code made the call, or None), and ctx.va(),
# an iterator over variadic integer arguments after the fixed ones.
# An `async def` implementation may sleep (msleep, a contended mutex,
# wait_for_completion): the task's CPU context is saved while it awaits and
# other tasks run.
Impl = Callable[..., Any]


@dataclass(frozen=True)
class KernelFunction:
    name: str
    impl: Impl
    nargs: int
    gpl: bool
    proto: str
    variadic: bool = False
    # The Linux (major, minor) whose structure layouts the implementation
    # reads and writes (a `struct crypto_alg`, a `struct pci_driver`): under
    # a profile of another release the function is not emulated rather than
    # wrong.  Several releases when the layouts it reads are the same in each
    # (tools/struct_probe.py measures them).  None: it reads no kernel
    # structure, any release will do.
    layouts: tuple[tuple[int, int], ...] | None = None
    # The structures it reads at the running kernel's offsets
    # (kloaderd/kernel/layouts.py): emulated for a kernel that has them all.
    structs: tuple[Any, ...] = ()


@dataclass(frozen=True)
class KernelObject:
    name: str
    size: int
    init: bytes           # initial contents (zero-padded to size)
    gpl: bool
    writable: bool        # .data rather than .rodata
    proto: str
    align: int = 16       # PAGE_SIZE for a page-aligned object (empty_zero_page)


FUNCTIONS: dict[str, KernelFunction] = {}
OBJECTS: dict[str, KernelObject] = {}


def export(name: str, proto: str, *, nargs: int, gpl: bool = False,
           variadic: bool = False, structs: tuple[Any, ...] = ()) -> Callable[[Impl], Impl]:
    """Register a kernel function; `proto` is its C prototype.  A module that
    defines `LAYOUTS = (major, minor)` before its exports declares that its
    functions read that Linux release's structure layouts; `LAYOUTS =
    ((6, 1), (6, 12))` that they hold for each release named.  `STRUCTS =
    (FILE, ...)` instead: they read those structures through the running
    kernel's layouts (kloaderd/kernel/layouts.py), any release that has them;
    `structs` adds those this function alone reads (a structure only newer
    releases have, beside the file's)."""
    def register(impl: Impl) -> Impl:
        old = FUNCTIONS.get(name)
        if name in OBJECTS or old is not None and _origin(old.impl) != _origin(impl):
            raise ValueError(f"kernel symbol {name} exported twice")
        module = sys.modules.get(impl.__module__)
        layouts = getattr(module, "LAYOUTS", None)
        if layouts is not None and isinstance(layouts[0], int):
            layouts = (layouts,)
        FUNCTIONS[name] = KernelFunction(name, impl, nargs, gpl, proto, variadic, layouts,
                                         (*getattr(module, "STRUCTS", ()), *structs))
        return impl
    return register


def emulated_for(name: str, version: tuple[int, int] | None, layouts: Any = None) -> bool:
    """Whether kloader's implementation of `name` holds for a kernel of
    `version` (None: kloader's own kernel, whose headers use the layouts
    the implementations read) whose structure layouts are `layouts` (a
    kernel.layouts.Layouts; None: not consulted)."""
    entry = FUNCTIONS.get(name)
    if entry is None:
        return True
    if layouts is not None and not all(layouts.has(s) for s in entry.structs):
        return False
    return entry.layouts is None or version is None or version in entry.layouts


def _origin(impl: Impl) -> tuple[str, str]:
    """Where a definition lives: the same one registering again is a module
    re-import (pytester's in-process runs do that), not a second export."""
    return impl.__module__, impl.__qualname__


def export_object(name: str, proto: str, size: int, init: bytes = b"", *,
                  gpl: bool = False, writable: bool = False, align: int = 16) -> None:
    """Register a kernel data object (jiffies, param_ops_int, ...)."""
    obj = KernelObject(name, size, init.ljust(size, b"\0"), gpl, writable, proto, align)
    if name in FUNCTIONS or OBJECTS.get(name, obj) != obj:
        raise ValueError(f"kernel symbol {name} exported twice")
    OBJECTS[name] = obj


def symbol_crc(name: str) -> int:
    """The modversions CRC of a core-kernel export, derived from its prototype."""
    entry = FUNCTIONS.get(name) or OBJECTS.get(name)
    if entry is None:
        raise KeyError(name)
    return zlib.crc32(entry.proto.encode())


# Packages and modules outside this one whose modules export kernel
# functions: each subsystem in its own place, as Linux's tree has it.
# A package stands for every module in it.
SUBSYSTEMS = ("kloaderd.kernel.panic", "kloaderd.kernel.rcu", "kloaderd.kernel.notifier",
              "kloaderd.kernel.user_namespace", "kloaderd.kernel.cred", "kloaderd.kernel.task_struct", "kloaderd.kernel.resource", "kloaderd.kernel.cpuhp",
              "kloaderd.kernel.wait", "kloaderd.kernel.jump_label", "kloaderd.kernel.jump_label_ratelimit",
              "kloaderd.kernel.locking", "kloaderd.kernel.power", "kloaderd.lib",
              "kloaderd.mm.slab_common", "kloaderd.mm.page_alloc", "kloaderd.mm.swap", "kloaderd.mm.memory_failure", "kloaderd.crypto",
              "kloaderd.fs.nls_base", "kloaderd.fs.quota", "kloaderd.security", "kloaderd.net", "kloaderd.kernel.bpf", "kloaderd.block",
              "kloaderd.drivers.base", "kloaderd.drivers.gpio", "kloaderd.drivers.virtio", "kloaderd.drivers.tty",
              "kloaderd.drivers.char.random", "kloaderd.drivers.cpufreq", "kloaderd.drivers.leds",
              "kloaderd.drivers.firmware", "kloaderd.drivers.pci", "kloaderd.drivers.nvme", "kloaderd.arch.x86",
              "kloaderd.mm.usercopy", "kloaderd.mm.percpu", "kloaderd.mm.vmalloc", "kloaderd.mm.mempool", "kloaderd.mm.vmscan", "kloaderd.mm.shrinker", "kloaderd.mm.mmu_notifier",
              "kloaderd.fs.char_dev",
              "kloaderd.fs.nfs_common",
              "kloaderd.fs.namei",
              "kloaderd.fs.read_write", "kloaderd.fs.open", "kloaderd.fs.proc_sysctl",
              "kloaderd.fs.seq_file", "kloaderd.fs.procfs", "kloaderd.fs.drop_caches", "kloaderd.fs.proc_net",
              "kloaderd.fs.sysfs", "kloaderd.fs.debugfs",
              "kloaderd.kernel.module_procfs", "kloaderd.kernel.module_sysfs",
              "kloaderd.fs.filesystems", "kloaderd.fs.super", "kloaderd.fs.namespace", "kloaderd.fs.libfs",
              "kloaderd.fs.inode", "kloaderd.fs.dcache", "kloaderd.fs.exec",
              "kloaderd.drivers.char.misc", "kloaderd.time",
              "kloaderd.workqueue", "kloaderd.kthread", "kloaderd.irq")
# Subsystems whose state must exist before any module runs (system_wq is a
# variable modules read): Kernel() makes each with `fn(kernel)`.
BOOT: list[Callable[[Any], Any]] = []


def at_boot(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Register `fn(kernel)` to run when a kernel is made."""
    BOOT.append(fn)
    return fn

_loaded = False


def _import_tree(name: str) -> None:
    module = importlib.import_module(name)
    for info in pkgutil.iter_modules(getattr(module, "__path__", ())):
        _import_tree(f"{name}.{info.name}")


def load_all() -> None:
    """Import every implementation module (idempotent)."""
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    for name in SUBSYSTEMS:
        _import_tree(name)
    _loaded = True
