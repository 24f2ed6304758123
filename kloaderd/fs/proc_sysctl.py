"""fs/proc/proc_sysctl.c for module code: `register_sysctl`,
`register_sysctl_sz`, `register_sysctl_table`, `unregister_sysctl_table`.

A module's `struct ctl_table` array (read at the running kernel's offsets:
Linux 6.1's entries have a `child`, 6.12's do not) is ended by a NULL
procname (Linux 6.1's `register_sysctl`) or has `table_size` entries (6.12's
`register_sysctl_sz`, which `register_sysctl()` is there: the entries stop
at a NULL procname too, so a table that still has its sentinel registers
what it did under 6.1).  It is checked as sysctl_check_table() checks it, each fault
logged "sysctl table check failed: PATH/NAME REASON" and the registration
refused (NULL): a file with a `child`, no proc_handler, a standard handler
(proc_dointvec, ...) without data or maxlen, a mode beyond 0666.  A name
already registered is "sysctl duplicate entry: PATH/NAME" and NULL.
`register_sysctl_table` (Linux 6.1; gone in 6.6 with `child`) takes the
older form whose directories are entries with a `child` table.  The files are recorded in the kernel's sysctl
table (the "sysctl" registry: module_info shows them, and one a module
leaves registered is reported when it goes) until unregister.

Where kloader differs: the files do not appear under /proc/sys, so no
proc_handler ever runs.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.layouts import struct
from ..kernel.panic import warn
from ..kernel.printk import KERN_ERR

CTL_TABLE = struct("struct ctl_table", "linux/sysctl.h", "procname", "data", "maxlen", "mode",
                   "proc_handler", optional=("child",))
# What modules read of the header register_sysctl returns.
CTL_HEADER = struct("struct ctl_table_header", "linux/sysctl.h", "ctl_table", "ctl_table_arg")
STRUCTS = (CTL_TABLE, CTL_HEADER)   # what these functions read at the kernel's offsets
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


def _entries(ctx: Any, table: int, count: int = MAX_ENTRIES):
    mem, off = ctx.mem, ctx.kernel.layouts[CTL_TABLE]
    for i in range(min(count, MAX_ENTRIES)):
        entry = table + i * off.size
        procname = mem.read_u64(entry + off.procname)
        if not procname:
            return
        yield entry, mem.read_cstr(procname, 256).decode("utf-8", "replace")


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _child(ctx: Any, entry: int) -> int:
    """entry->child: 0 in a release whose ctl_table has none."""
    child = ctx.kernel.layouts[CTL_TABLE].child
    return ctx.mem.read_u64(entry + child) if child is not None else 0


def _check(ctx: Any, path: str, table: int, nested: bool, count: int = MAX_ENTRIES) -> list[str]:
    """sysctl_check_table(): the faults of `table`'s files, as logged.  In
    a nested table an entry with a `child` is a directory, not checked."""
    mem, symbols, off = ctx.mem, ctx.kernel.symbols, ctx.kernel.layouts[CTL_TABLE]
    standard = {s.address for name in STANDARD_HANDLERS if (s := symbols.get(name)) is not None}
    errors = []
    for entry, name in _entries(ctx, table, count):
        handler = mem.read_u64(entry + off.proc_handler)
        mode = int.from_bytes(mem.read(entry + off.mode, 2), "little")
        if _child(ctx, entry):
            if nested:
                continue
            errors.append((name, "Not a file"))
        if handler in standard:
            if not mem.read_u64(entry + off.data):
                errors.append((name, "No data"))
            if not mem.read_u32(entry + off.maxlen):
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
        child = _child(ctx, entry)
        if child:
            _collect(ctx, _join(path, name), child, depth + 1, files, errors)
        else:
            files.append(_join(path, name))


def register(ctx: Any, path: str, table: int, nested: bool, sysctl_set: int = 0,
             count: int = MAX_ENTRIES) -> int:
    """__register_sysctl_table() into the root (0) or a namespace's set of
    `table`'s first `count` entries (up to a NULL procname): the header, or
    0 with the reason logged."""
    files: list[str] = []
    if nested:
        errors: list[str] = []
        _collect(ctx, path, table, 0, files, errors)
    else:
        errors = _check(ctx, path, table, nested=False, count=count)
        files = [_join(path, name) for _, name in _entries(ctx, table, count)]
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
    off = ctx.kernel.layouts[CTL_HEADER]
    header = ctx.kernel.slab.alloc(off.size, None, zero=True)
    if not header:
        return 0
    # init_header(): the table, and ctl_table_arg, which callers read back to
    # free a table they kmemdup'ed (nf_conntrack's per-namespace copy)
    ctx.mem.write_u64(header + off.ctl_table, table)
    ctx.mem.write_u64(header + off.ctl_table_arg, table)
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
    return register(ctx, sysctl_path(ctx, path), table, nested=False)


@export("register_sysctl_sz", "struct ctl_table_header *register_sysctl_sz(const char *path, "
        "struct ctl_table *table, size_t table_size)", nargs=3)
def register_sysctl_sz(ctx: Any, path: int, table: int, table_size: int) -> int:
    return register(ctx, sysctl_path(ctx, path), table, nested=False, count=table_size)


def sysctl_path(ctx: Any, path: int) -> str:
    """A registration's directory, "net/ipv4" for "/net/ipv4/"."""
    return ctx.mem.read_cstr(path, 256).decode("utf-8", "replace").strip("/")


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
