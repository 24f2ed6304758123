"""init_module(): Linux's `load_module()` pipeline, in Linux's order.

validate → check modinfo → lay out → add UNFORMED (name reserved) → resolve
symbols → relocate → verify exports → COMING → parse parameters → run init
→ LIVE → free init sections.

Every step that can fail is undone by `free_module()`: a failed load leaves
nothing behind but its log lines — no name, no exports, no references on
other modules, no memory.
"""

from __future__ import annotations

import errno
import functools
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import trio

from ..elf.defs import R_X86_64_PLT32
from ..elf.image import Image, parse
from ..errors import KernelError
from ..link import Layout, layout_sections, link
from ..uapi import MODULE_INIT_COMPRESSED_FILE, MODULE_INIT_IGNORE_MODVERSIONS, MODULE_NAME_LEN
from .jump_label import jump_label_add_module
from .kallsyms import core_symbols
from .module import Module, ModuleState
from .moduleparam import parse_module_params, read_module_params
from .printk import KERN_ERR, KERN_WARNING
from ..decompress import module_decompress
from .symbols import KernelSymbol
from .version import check_version, check_vermagic, license_is_gpl_compatible

if TYPE_CHECKING:
    from .internal import KernelServices


# Images at least this large are parsed and linked on a worker thread, so a
# big load does not stall other clients; smaller ones are quicker inline than
# the thread hand-off (docs/reliability.md, "Bounds").
OFF_LOOP_BYTES = 1 << 20

T = TypeVar("T")


async def off_loop(size: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args)`, on a worker thread when it works on `size` >= OFF_LOOP_BYTES
    bytes: pure work on immutable input, so nothing else sees it half done."""
    if size < OFF_LOOP_BYTES:
        return fn(*args, **kwargs)
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def parse_and_lay_out(data: bytes, max_size: int) -> tuple[Image, Layout]:
    image = parse(data, max_size=max_size)    # EFBIG beyond it
    return image, layout_sections(image)


async def load_module(kernel: "KernelServices", data: bytes, args: str, flags: int) -> Module:
    limit = kernel.options.max_image_size
    try:
        if flags & MODULE_INIT_COMPRESSED_FILE:
            # Always off the loop: a few KiB of .xz may inflate to the whole
            # image limit (9 KiB to 56 MiB held every other client ~1 s).
            data = await trio.to_thread.run_sync(functools.partial(module_decompress, data, limit, anon=True))
        image, layout = await off_loop(len(data), parse_and_lay_out, data, limit)
    except KernelError as error:
        kernel.log.emit(KERN_ERR, error.message)      # as Linux's pr_err()s in the checks
        raise
    check_name(image.name)
    check_limits(kernel, image.name, layout.core.size + layout.init.size)
    core_base = kernel.module_area.alloc(layout.core.size)
    init_base = kernel.module_area.alloc(layout.init.size) if layout.init.size else 0
    mod = Module(image.name, image, layout, core_base, init_base)
    try:
        check_modstruct_version(kernel, mod, flags)
        check_modinfo(kernel, mod, flags)
        await add_unformed_module(kernel, mod)
    except BaseException:
        kernel.module_area.free(core_base)
        if init_base:
            kernel.module_area.free(init_base)
        raise
    try:
        percpu = percpu_modalloc(kernel, mod)
        externals = await simplify_symbols(kernel, mod, flags)
        mod.linked = await off_loop(len(data), link, image, layout, core_base, init_base, externals,
                                    percpu_base=percpu)
        with kernel.mem.batch():          # fresh images: one TLB flush for all their mappings
            await kernel.map_module(mod)
        percpu_modcopy(kernel, mod, percpu)
        verify_exported_symbols(kernel, mod)
        complete_formation(kernel, mod)
        jump_label_add_module(kernel, mod)        # the MODULE_STATE_COMING notifier
        mod.params = read_module_params(kernel, mod)
        parse_module_params(kernel, mod, args)
        free_copy(mod)
        await do_init_module(kernel, mod)
    except BaseException:
        with trio.CancelScope(shield=True):
            kernel.free_module(mod)
        raise
    return mod


def percpu_modalloc(kernel: "KernelServices", mod: Module) -> int:
    """The per-CPU offset of the module's `.data..percpu` (0 when it has none)."""
    index = mod.image.percpu_index
    if not index:
        return 0
    section = mod.image.sections[index]
    return kernel.percpu.module_alloc(mod, section.size, section.addralign)


def percpu_modcopy(kernel: "KernelServices", mod: Module, offset: int) -> None:
    index = mod.image.percpu_index
    if index:
        section = mod.image.sections[index]
        kernel.percpu.module_copy(mod, offset, section.data, section.size)


def free_copy(mod: Module) -> None:
    """free_copy(): the module file goes once its sections are in module
    memory and its tables are read, and with it the linked images (a second
    copy of what emulated memory holds now) and the symbol values.  A
    loaded module keeps what later readers need (.modinfo, section names
    and flags, its kallsyms), so it costs its memory and a little metadata,
    not its file as well."""
    linked = mod.linked
    assert linked is not None
    mod.image = mod.image.metadata(core_symbols(mod.image.symbols, linked.section_addr))
    mod.linked = replace(linked, image=mod.image, symbol_values=(), core_pieces=(), init_pieces=())


def check_name(name: str) -> None:
    """struct module's `char name[MODULE_NAME_LEN]`: at most 55 bytes."""
    size = len(name.encode("utf-8", "surrogateescape"))
    if size >= MODULE_NAME_LEN:
        raise KernelError(errno.ENOEXEC, f"module name {name[:MODULE_NAME_LEN]!r}... is {size} bytes; "
                                         f"a name is at most {MODULE_NAME_LEN - 1} (MODULE_NAME_LEN)")


def check_limits(kernel: "KernelServices", name: str, size: int) -> None:
    """kloader's own limits (Linux's are the machine's): clear errnos, no trace."""
    options = kernel.options
    if len(kernel.loaded) >= options.max_modules:
        raise KernelError(errno.ENOSPC, f"{name}: cannot load more than "
                                        f"{options.max_modules} modules (max_modules)")
    if kernel.module_memory + size > options.max_module_memory:
        raise KernelError(errno.ENOMEM, f"{name}: module memory would exceed "
                                        f"{options.max_module_memory} bytes (max_module_memory)")


def check_modstruct_version(kernel: "KernelServices", mod: Module, flags: int) -> None:
    """early_mod_check()'s check_modstruct_version(): a module whose
    `__versions` records `module_layout` was built for this kernel's
    `struct module` only if that CRC is the kernel's (ENOEXEC otherwise).
    kloader's own kernel exports no module_layout, so this is a profile's."""
    sym = kernel.symbols.get("module_layout")
    if sym is None or sym.owner is not None or flags & MODULE_INIT_IGNORE_MODVERSIONS \
            or mod.image.section("__versions") is None:
        return
    versions = dict(mod.image.versions)
    if "module_layout" in versions and \
            not check_version(kernel, mod, "module_layout", sym.crc, versions):
        raise KernelError(errno.ENOEXEC, f"{mod.name}: disagrees about version of symbol "
                                         "module_layout")


def check_modinfo(kernel: "KernelServices", mod: Module, flags: int) -> None:
    warn = kernel.warn
    check_vermagic(kernel, mod, flags)
    if mod.image.modinfo_get("intree") is None:
        if "O" not in kernel.taints:
            warn(f"{mod.name}: loading out-of-tree module taints kernel.")
        kernel.add_module_taint(mod, "O")
    if mod.image.modinfo_get("staging") is not None:
        warn(f"{mod.name}: module is from the staging directory, the quality is unknown, "
             "you have been warned.")
        kernel.add_module_taint(mod, "C")
    mod.license = mod.image.modinfo_get("license") or "unspecified"
    if not license_is_gpl_compatible(mod.license):
        if "P" not in kernel.taints:
            warn(f"{mod.name}: module license '{mod.license}' taints kernel.")
        kernel.add_module_taint(mod, "P")


async def add_unformed_module(kernel: "KernelServices", mod: Module) -> None:
    """Reserve the name (module_patient_check_exists).

    A namesake still loading is waited for, in case its init fails; one that
    is going counts as settled, as in Linux — its remover may itself be
    waiting for references, so waiting on it could last forever.
    """
    old = kernel.loaded.get(mod.name)
    if old is None:
        kernel.add_module(mod)
        return
    while old is not None and old.state in (ModuleState.UNFORMED, ModuleState.COMING):
        await kernel.wait_for_change()
        old = kernel.loaded.get(mod.name)
    if old is not None and old.live:
        raise KernelError(errno.EEXIST, f"module {mod.name} is already loaded")
    raise KernelError(errno.EBUSY, f"module {mod.name} was being loaded or removed "
                                   "concurrently; not trying again right now")


async def simplify_symbols(kernel: "KernelServices", mod: Module, flags: int) -> dict[str, int]:
    """Resolve every undefined symbol; log each unknown one, then fail.

    Resolving a symbol of module B records "mod uses B" and takes a
    reference on B (`ref_module`).  An exporter still in its init is waited
    for, bounded, as `resolve_symbol_wait` does.
    """
    image = mod.image
    gplok = license_is_gpl_compatible(mod.license)
    versions = None if flags & MODULE_INIT_IGNORE_MODVERSIONS \
        or image.section("__versions") is None else dict(image.versions)
    externals: dict[str, int] = {}
    err, unknown = 0, []
    for name in image.undefined:
        try:
            sym = await resolve_symbol_wait(kernel, mod, name, gplok, versions)
        except KernelError as e:
            err = e.errno
            unknown.append(name)
            kernel.log.emit(KERN_WARNING, f"{mod.name}: Unknown symbol {name} (err -{e.errno})")
            continue
        externals[name] = sym.address
    for name in image.weak_undefined:
        sym = kernel.symbols.find(name, gplok=gplok)
        if sym is not None and (sym.owner is None or sym.owner.live):
            ref_module(mod, sym.owner)
            externals[name] = sym.address
    if err:
        raise KernelError(err, f"{mod.name}: Unknown symbol {', '.join(unknown)} (see dmesg)")
    missing = kernel.machine.not_emulated_at
    mod.not_emulated_data = data_imports(image, {n: a for n, a in externals.items() if missing(a) is not None})
    return externals


def data_imports(image: Image, imports: dict[str, int]) -> tuple[int, ...]:
    """The addresses of those of `imports` (name -> address) the module
    reads or takes the address of, sorted: every relocation of theirs but a
    call's (R_X86_64_PLT32, which gcc emits for calls and jumps only)."""
    if not imports:
        return ()
    index = {s.index: imports[s.name] for s in image.symbols if s.name in imports}
    data = set()
    for rela in image.rela:
        words = rela.data.cast("Q") if rela.rela else ()
        for info in words[1::3]:
            address = index.get(info >> 32)
            if address is not None and info & 0xFFFFFFFF != R_X86_64_PLT32:
                data.add(address)
    return tuple(sorted(data))



async def resolve_symbol_wait(kernel: "KernelServices", mod: Module, name: str, gplok: bool,
                              versions: dict[str, int] | None) -> KernelSymbol:
    """resolve_symbol(), waiting (bounded) while the exporter is in its init.
    The usual case resolves at once, without a cancel scope (two per
    symbol were a tenth of a small module's insmod)."""
    sym = resolve_symbol(kernel, mod, name, gplok, versions)
    if not isinstance(sym, Module):
        return sym
    with trio.move_on_after(kernel.options.exporter_wait):
        while isinstance(sym, Module):
            await kernel.wait_for_change()
            sym = resolve_symbol(kernel, mod, name, gplok, versions)
        return sym
    kernel.warn(f"{mod.name}: gave up waiting for init of module {sym.name}.")
    raise KernelError(errno.EBUSY, name)


def resolve_symbol(kernel: "KernelServices", mod: Module, name: str, gplok: bool,
                   versions: dict[str, int] | None) -> KernelSymbol | Module:
    """The symbol `name` resolves to (a reference taken on its owner), or the
    owner to wait for while it is COMING; KernelError when it cannot resolve."""
    sym = kernel.symbols.find(name, gplok=gplok)
    if sym is None:
        raise KernelError(errno.ENOENT, name)
    if not check_version(kernel, mod, name, sym.crc, versions):
        raise KernelError(errno.EINVAL, name)
    verify_namespace_is_imported(kernel, mod, sym)
    owner = sym.owner
    if owner is None or owner.state is ModuleState.LIVE:
        ref_module(mod, owner)
        return sym
    if owner.state is not ModuleState.COMING:
        raise KernelError(errno.ENOENT, name)
    return owner


def verify_namespace_is_imported(kernel: "KernelServices", mod: Module, sym: KernelSymbol) -> None:
    """A namespaced export needs MODULE_IMPORT_NS (an `import_ns` modinfo
    entry); Linux 5.4 and later refuse it with EINVAL otherwise."""
    if sym.namespace and sym.namespace not in mod.image.modinfo_all("import_ns"):
        kernel.log.emit(KERN_ERR, f"{mod.name}: module uses symbol ({sym.name}) from namespace "
                                  f"{sym.namespace}, but does not import it.")
        raise KernelError(errno.EINVAL, sym.name)


def ref_module(mod: Module, exporter: Module | None) -> None:
    """Record that `mod` uses `exporter`, taking one reference on it."""
    if exporter is None or exporter in mod.uses:
        return
    exporter.get(mod.dependency_owner)
    mod.uses.append(exporter)
    exporter.holders.append(mod)


def verify_exported_symbols(kernel: "KernelServices", mod: Module) -> None:
    assert mod.linked is not None
    for name, _addr, _gpl in mod.linked.exports:
        other = kernel.symbols.get(name)
        if other is not None:
            error = KernelError(errno.ENOEXEC, f"{mod.name}: exports duplicate symbol {name} "
                                               f"(owned by {other.owner_name})")
            kernel.log.emit(KERN_ERR, error.message)
            raise error


def complete_formation(kernel: "KernelServices", mod: Module) -> None:
    """Exports become visible and the module COMING: others may now link
    against it (and will wait for its init), but nobody may enter it."""
    assert mod.linked is not None
    image = mod.image
    crcs = dict(zip((e.name for e in image.exports), image.crcs or ()))
    for name, address, gpl in mod.linked.exports:
        kernel.symbols.add(KernelSymbol(name, address, gpl, mod, crcs.get(name)))
        mod.exports.append(name)
    kernel.ksyms.add_module(mod)
    kernel.set_state(mod, ModuleState.COMING)


async def do_init_module(kernel: "KernelServices", mod: Module) -> None:
    linked = mod.linked
    assert linked is not None
    if linked.init_addr is not None:
        with trio.CancelScope() as scope:
            kernel.init_scopes.add(scope)
            if kernel.shutting_down:
                scope.cancel()
            try:
                ret = await kernel.call_module(mod, linked.init_addr, "init")
            finally:
                kernel.init_scopes.discard(scope)
        if scope.cancelled_caught:
            raise KernelError(errno.EINTR, f"{mod.name}: init interrupted: "
                                           "the kernel is shutting down")
        ret = (ret & 0xFFFFFFFF) - ((ret & 0x80000000) << 1)   # int, as C sees it
        if ret < 0:
            raise KernelError(-ret, f"{mod.name}: init failed with error {ret}")
        if ret > 0:
            kernel.log.emit(KERN_WARNING,
                            f"do_init_module: '{mod.name}'->init suspiciously returned {ret}, "
                            "it should follow 0/-E convention")
            kernel.log.emit(KERN_WARNING, "do_init_module: loading module anyway...")
    kernel.set_state(mod, ModuleState.LIVE)
    with kernel.mem.batch():
        kernel.free_module_init(mod)
