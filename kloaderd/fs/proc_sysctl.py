"""fs/proc/proc_sysctl.c for module code: `register_sysctl`,
`register_sysctl_table`, `unregister_sysctl_table`.

A module's `struct ctl_table` array (Linux 6.1: procname@0, data@8,
maxlen@16, mode@20, child@24, proc_handler@32, 64 bytes an entry, ended by
a NULL procname) is checked as sysctl_check_table() checks it, each fault
logged "sysctl table check failed: PATH/NAME REASON" and the registration
refused (NULL): a file with a `child`, no proc_handler, a standard handler
(proc_dointvec, ...) without data or maxlen, a mode beyond 0666.  A name
already registered is "sysctl duplicate entry: PATH/NAME" and NULL.
`register_sysctl_table` takes the older form whose directories are entries
with a `child` table.  The files are recorded in the kernel's sysctl
table (the "sysctl" registry: module_info shows them, and one a module
leaves registered is reported when it goes) until unregister.

Where kloader differs: the files do not appear under /proc/sys, so no
proc_handler ever runs.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.panic import warn
from ..kernel.printk import KERN_ERR

LAYOUTS = (6, 1)
ENTRY_SIZE, PROCNAME, DATA, MAXLEN, MODE, CHILD, PROC_HANDLER = 64, 0, 8, 16, 20, 24, 32
HEADER_SIZE = 80                  # struct ctl_table_header: what modules read of it
HEADER_CTL_TABLE, HEADER_CTL_TABLE_ARG = 0, 32
MAX_ENTRIES = 4096                # a table without its terminator stops here
MAX_DEPTH = 8
STANDARD_HANDLERS = ("proc_dostring", "proc_dobool", "proc_dointvec", "proc_douintvec",
                     "proc_dointvec_minmax", "proc_douintvec_minmax", "proc_dointvec_jiffies",
                     "proc_dointvec_userhz_jiffies", "proc_dointvec_ms_jiffies",
                     "proc_doulongvec_minmax", "proc_doulongvec_ms_jiffies_minmax")


class SysctlTable:
    """The registered sysctl files: (set, full path) -> header.  The set is
    0 for the global root, a namespace's address for its own (`net->sysctls`,
    register_net_sysctl): the same path may be in each."""

    def __init__(self, kernel: Any) -> None:
        self.files: dict[tuple[int, str], int] = {}


def _entries(ctx: Any, table: int):
    mem = ctx.mem
    for i in range(MAX_ENTRIES):
        entry = table + i * ENTRY_SIZE
        procname = mem.read_u64(entry + PROCNAME)
        if not procname:
            return
        yield entry, mem.read_cstr(procname, 256).decode("utf-8", "replace")


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _check(ctx: Any, path: str, table: int, nested: bool) -> list[str]:
    """sysctl_check_table(): the faults of `table`'s files, as logged.  In
    a nested table an entry with a `child` is a directory, not checked."""
    mem, symbols = ctx.mem, ctx.kernel.symbols
    standard = {s.address for name in STANDARD_HANDLERS if (s := symbols.get(name)) is not None}
    errors = []
    for entry, name in _entries(ctx, table):
        handler = mem.read_u64(entry + PROC_HANDLER)
        mode = int.from_bytes(mem.read(entry + MODE, 2), "little")
        if mem.read_u64(entry + CHILD):
            if nested:
                continue
            errors.append((name, "Not a file"))
        if handler in standard:
            if not mem.read_u64(entry + DATA):
                errors.append((name, "No data"))
            if not mem.read_u32(entry + MAXLEN):
                errors.append((name, "No maxlen"))
        if not handler:
            errors.append((name, "No proc_handler"))
        if mode & 0o666 != mode:
            errors.append((name, f"bogus .mode 0{mode:o}"))
    return [f"sysctl table check failed: {_join(path, name)} {why}" for name, why in errors]


def _collect(ctx: Any, path: str, table: int, depth: int, files: list[str],
             errors: list[str]) -> None:
    """register_sysctl_table()'s walk: files, and directories' `child` tables."""
    if depth > MAX_DEPTH:
        errors.append(f"sysctl table check failed: {path} nested too deep")
        return
    errors.extend(_check(ctx, path, table, nested=True))
    for entry, name in _entries(ctx, table):
        child = ctx.mem.read_u64(entry + CHILD)
        if child:
            _collect(ctx, _join(path, name), child, depth + 1, files, errors)
        else:
            files.append(_join(path, name))


def register(ctx: Any, path: str, table: int, nested: bool, sysctl_set: int = 0) -> int:
    """__register_sysctl_table() into the root (0) or a namespace's set: the
    header, or 0 with the reason logged."""
    files: list[str] = []
    if nested:
        errors: list[str] = []
        _collect(ctx, path, table, 0, files, errors)
    else:
        errors = _check(ctx, path, table, nested=False)
        files = [_join(path, name) for _, name in _entries(ctx, table)]
    log = ctx.kernel.log
    for line in errors:
        log.emit(KERN_ERR, line)
    if errors:
        return 0
    state = ctx.kernel.subsystem(SysctlTable)
    for name in files:
        if (sysctl_set, name) in state.files or files.count(name) > 1:
            log.emit(KERN_ERR, f"sysctl duplicate entry: /{name}")
            return 0
    header = ctx.kernel.slab.alloc(HEADER_SIZE, None, zero=True)
    if not header:
        return 0
    # init_header(): the table, and ctl_table_arg, which callers read back to
    # free a table they kmemdup'ed (nf_conntrack's per-namespace copy)
    ctx.mem.write_u64(header + HEADER_CTL_TABLE, table)
    ctx.mem.write_u64(header + HEADER_CTL_TABLE_ARG, table)
    for name in files:
        state.files[sysctl_set, name] = header
    shown = ", ".join(f"/proc/sys/{name}" for name in files[:4]) + (" ..." if len(files) > 4 else "")
    ctx.kernel.registrations.registry("sysctl").add(
        header, f"sysctl table {shown}", owner=ctx.module, address=header,
        data=(state, [(sysctl_set, name) for name in files], ctx.kernel.slab), on_leftover=_drop)
    return header


def _drop(entry: Any) -> None:
    state, files, slab = entry.data
    for name in files:
        state.files.pop(name, None)
    slab.free(entry.address, None)


@export("register_sysctl", "struct ctl_table_header *register_sysctl(const char *path, "
        "struct ctl_table *table)", nargs=2)
def register_sysctl(ctx: Any, path: int, table: int) -> int:
    name = ctx.mem.read_cstr(path, 256).decode("utf-8", "replace").strip("/")
    return register(ctx, name, table, nested=False)


@export("register_sysctl_table", "struct ctl_table_header *register_sysctl_table("
        "struct ctl_table *table)", nargs=1)
def register_sysctl_table(ctx: Any, table: int) -> int:
    return register(ctx, "", table, nested=True)


@export("unregister_sysctl_table", "void unregister_sysctl_table(struct ctl_table_header *header)",
        nargs=1)
def unregister_sysctl_table(ctx: Any, header: int) -> None:
    if not header:
        return
    entry = ctx.kernel.registrations.registry("sysctl").remove(header)
    if entry is None:
        warn(ctx, "", "fs/proc/proc_sysctl.c:1673", "unregister_sysctl_table")
        return
    _drop(entry)
