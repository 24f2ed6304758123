"""/sys/module/NAME/: a module's kobject as Linux's kernel/module/sysfs.c
and kernel/params.c make it, what kmod's `rmmod`, `lsmod` and `modinfo`
read:

    initstate   live | coming | going
    refcnt      module_refcount()
    taint       the module's taint letters ("" when clean)
    coresize    bytes of its core image;  initsize: of its init image (0 once freed)
    version, srcversion      its .modinfo's, where it has them
    holders/    a symlink to /sys/module/USER for each module using its exports
    sections/   one file per allocated section: its address (mode 0400)
    parameters/ one file per parameter with a mode: read and written through
                the parameter's type, as the `param_get`/`param_set` requests

Each line ends in a newline, as the show functions' sysfs_emit("%s\\n").
The directory exists from the moment the module is formed until it is
freed; a file open across the module's end answers ENODEV (kernfs).

`drivers/` (`BUS:DRIVER` links) is the driver core's (drivers/base/bus.py).
Where kloader differs: no `notes/` or `uevent`; built-in
modules (kernel parameters of vmlinux) have no directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..fs.tree import PAGE_SIZE, Content, Directory, FileTree, Node, Symlink, populate
from .moduleparam import CUSTOM, get_param, set_param
from .module import taint_letters

if TYPE_CHECKING:
    from ..fs.file import OpenFile
    from .kernel import Kernel
    from .module import Module

SHF_ALLOC = 0x2

# What other subsystems show in a module's directory, made on each lookup:
# fn(kernel, mod) -> {name: Node} (the driver core's `drivers/`).
MODULE_ENTRIES: list[Callable[["Kernel", "Module"], dict[str, Node]]] = []


class ModuleSysfs:
    """/sys/module's directories, one per formed module, made when first
    looked up and removed when the module is freed."""

    def __init__(self, tree: FileTree) -> None:
        self.kernel = kernel = tree.kernel
        self.tree = tree
        self.dirs: dict[str, tuple["Module", Directory]] = {}
        self.root = self.tree.mkdir("/sys/module", generate=self._entries, mode=0o755)
        kernel.sanitizer.leftover_checks.append(self._module_freed)

    def _entries(self) -> dict[str, Node]:
        live = {mod.name: mod for mod in self.kernel._ordered()}
        for name, (mod, node) in list(self.dirs.items()):
            if live.get(name) is not mod:
                self._drop(name)
        out: dict[str, Node] = {}
        for name, mod in live.items():
            made = self.dirs.get(name)
            if made is None:
                made = self.dirs[name] = (mod, self._make(mod))
            out[name] = made[1]
        return out

    def _drop(self, name: str) -> None:
        _, node = self.dirs.pop(name)
        self.tree.remove_now(node)

    def _module_freed(self, mod: "Module") -> None:
        made = self.dirs.get(mod.name)
        if made is not None and made[0] is mod:
            self._drop(mod.name)

    def _make(self, mod: "Module") -> Directory:
        kernel, tree = self.kernel, self.tree
        top = Directory(mod.name, mode=0o755, generate=lambda: {
            name: node for fn in MODULE_ENTRIES for name, node in fn(kernel, mod).items()})
        top.parent = self.root

        def attr(parent: Directory, name: str, show: Any, mode: int = 0o444, **kw: Any) -> None:
            tree.add(parent, name, Content(show, kw.pop("store", None)), mode=mode, size=PAGE_SIZE, **kw)

        attr(top, "initstate", lambda f: f"{mod.state.value}\n")
        attr(top, "refcnt", lambda f: f"{mod.refcount}\n")
        attr(top, "taint", lambda f: taint_letters(mod.taints, module_only=True) + "\n")
        attr(top, "coresize", lambda f: f"{mod.core_size}\n")
        attr(top, "initsize", lambda f: f"{mod.init_size}\n")
        for field in ("version", "srcversion"):
            value = mod.image.modinfo_get(field)
            if value is not None:
                attr(top, field, lambda f, v=value: f"{v}\n")
        tree.attach(top, Directory("holders", mode=0o755, generate=lambda: {
            h.name: Symlink(h.name, f"../../{h.name}") for h in mod.holders}))
        sections = tree.mkdir(top, "sections", mode=0o755)
        linked = mod.linked
        for index, address in ({} if linked is None else linked.section_addr).items():
            section = mod.image.sections[index]
            if section.flags & SHF_ALLOC and section.size and sections.child(section.name) is None:
                attr(sections, section.name, lambda f, a=address: f"0x{a:016x}\n", mode=0o400)
        params = [p for p in mod.params if p.perm]
        if params:
            pdir = tree.mkdir(top, "parameters", mode=0o755)
            for p in params:
                attr(pdir, p.name, lambda f, p=p: _param_show(kernel, p),
                     mode=p.perm & 0o777, store=lambda f, data, p=p: _param_store(kernel, mod, p, data))
        return top


def _param_show(kernel: "Kernel", param: Any) -> str:
    return get_param(kernel, param) + "\n"


def _param_store(kernel: "Kernel", mod: "Module", param: Any, data: bytes) -> int:
    """param_attr_store: the type's set with the written text (a trailing
    newline is the type's to accept, as kstrto* and charp's copy do)."""
    if param.kind == CUSTOM:
        get_param(kernel, param)            # EOPNOTSUPP, saying why
    set_param(kernel, mod, param, data.decode("latin-1"))
    return len(data)


@populate
def _sys_module(tree: FileTree) -> None:
    ModuleSysfs(tree)
