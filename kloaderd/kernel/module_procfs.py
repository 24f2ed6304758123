"""/proc/modules and /proc/kallsyms (Linux's kernel/module/procfs.c and
kernel/kallsyms.c): what `lsmod`, `modprobe` and perf read, byte for byte.

One line per module, newest first, as m_show() prints it::

    name size refcnt holders state address[ (taints)]
    user 12288 0 - Live 0xffffffffc0002000 (O)
    exporter 12288 1 user, Live 0xffffffffc0000000 (O)

`size` is every image of the module (core and, while it is there, init);
the holders list ends with a comma, `[permanent],` marks a module with an
init but no exit, `-` stands for an empty list; the state is Live,
Loading or Unloading; taints are in parentheses with `+` (loading) or `-`
(unloading) after them.  /proc/kallsyms lists `address type name` for the
core kernel and `address type name\t[module]` for modules.  Addresses are
shown to a privileged reader only; others see zeros, as
kallsyms_show_value() decides for a reader without CAP_SYSLOG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fs.tree import Content, FileTree, populate
from .kallsyms import module_symbols
from .module import ModuleState, taint_letters

if TYPE_CHECKING:
    from ..fs.file import OpenFile
    from .kernel import Kernel
    from .module import Module

_STATES = {ModuleState.GOING: "Unloading", ModuleState.COMING: "Loading"}


def module_flags(mod: "Module", show_state: bool) -> str:
    """module_flags(): "(OE)", "(O-)" going, "(O+)" coming; "" with nothing to say."""
    letters = taint_letters(mod.taints, module_only=True)
    mark = {ModuleState.GOING: "-", ModuleState.COMING: "+"}.get(mod.state, "") if show_state else ""
    if not letters and not mark:
        return ""
    return f"({letters}{mark})"


def module_line(mod: "Module", show_value: bool) -> str:
    """One m_show() line of /proc/modules."""
    holders = "".join(f"{h.name}," for h in reversed(mod.holders))   # source_list: newest first
    if mod.has_init and not mod.has_exit:
        holders += "[permanent],"
    line = (f"{mod.name} {mod.core_size + mod.init_size} {mod.refcount} {holders or '-'} "
            f"{_STATES.get(mod.state, 'Live')} 0x{mod.core_base if show_value else 0:016x}")
    if mod.taints:
        line += f" {module_flags(mod, True)}"
    return line + "\n"


def proc_modules(kernel: "Kernel", file: "OpenFile") -> str:
    return "".join(module_line(mod, file.table.privileged) for mod in kernel._ordered())


def proc_kallsyms(kernel: "Kernel", file: "OpenFile") -> str:
    """The core kernel's symbols by address, then each module's (newest
    module first) in its symbol table's order, as s_show() walks them."""
    show = file.table.privileged
    lines = [f"{sym.address if show else 0:016x} {sym.type} {sym.name}\n"
             for sym in kernel.ksyms.all() if sym.module is None]
    for mod in kernel._ordered():
        if mod.linked is not None:
            lines += [f"{sym.address if show else 0:016x} {sym.type} {sym.name}\t[{mod.name}]\n"
                      for sym in module_symbols(mod)]
    return "".join(lines)


@populate
def _proc_files(tree: FileTree) -> None:
    kernel = tree.kernel
    tree.add("/proc", "modules", Content(lambda file: proc_modules(kernel, file)), mode=0o444)
    tree.add("/proc", "kallsyms", Content(lambda file: proc_kallsyms(kernel, file)), mode=0o444)
