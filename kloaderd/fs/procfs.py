"""procfs entries modules make: Linux's fs/proc/generic.c and fs/proc/inode.c.

`proc_create`, `proc_create_data`, `proc_create_single_data`,
`proc_create_seq_private`, `proc_mkdir*`, `proc_symlink` make a
`proc_dir_entry` (an opaque object in kernel memory: modules only hold the
pointer) and a node under /proc in the kernel's file tree
(kloaderd/fs/tree.py); `remove_proc_entry`, `remove_proc_subtree` and
`proc_remove` take them away.

procfs took the other road from owner counting: `struct proc_ops` has no
`.owner`, an open /proc file holds no reference on the module that made it.
Every call into the entry's operations is made under a "use" of the entry
(`use_pde`), and removal — which a module does in its exit — first marks
the entry going, waits until no call is inside its operations
(`proc_entry_rundown`), then runs `.proc_release` for every file still
open on it; after that those files answer EIO.  So kloader's removal waits
the same way, and such calls are not Golden Rule violations (the sanitizer
leaves them alone: the removal, not a reference, keeps the module there).

An entry its module leaves behind is a leaked registration: reported when
the module is freed (`NAME: leaked registration: proc entry /proc/foo`) and
made inert, so nothing later calls into the freed module.

Where kloader differs: a `remove_proc_entry` of a non-empty directory warns
as Linux does, and its children become unreachable as in Linux, but they
stay registered to their module (reported at its end) instead of leaking
silently; `proc_set_user`'s ids are shown by `stat` but permission is
decided as for every kernel file (docs/kernel-files.md).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import KernelError
from ..kernel.api import export
from ..kernel.panic import warn
from ..mm.usercopy import user_space
from .file import FILE, FMODE_LSEEK, OpenFile, check_return, signed32, signed64
from .seq_file import (M_PRIVATE, open_seq, release_seq, seq_of_file, seq_read_file, single_open_file,
                       single_release_file)
from .tree import PROCFS, Directory, FileOps, FileTree, Node, Symlink, file_tree, populate

STRUCTS = (FILE,)            # what these functions read at the kernel's offsets

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel
    from ..kernel.module import Module

# struct proc_ops (include/linux/proc_fs.h, Linux 6.6, CONFIG_COMPAT)
PROC_OPS_SIZE = 96
PO_FLAGS, PO_OPEN, PO_READ, PO_READ_ITER, PO_WRITE, PO_LSEEK, PO_RELEASE = 0, 8, 16, 24, 32, 40, 48
PO_POLL, PO_IOCTL, PO_COMPAT_IOCTL, PO_MMAP = 56, 64, 72, 80
PDE_SIZE = 192                    # struct proc_dir_entry: opaque to modules
NAME_MAX = 255
S_IFMT, S_IFREG, S_IFDIR = 0o170000, 0o100000, 0o040000
S_IRUGO, S_IXUGO = 0o444, 0o111


@dataclass(eq=False)
class ProcEntry:
    """A proc_dir_entry: its address (what the module holds) and its node."""
    address: int
    node: Node
    module: "Module | None"
    data: int = 0
    proc_ops: int = 0             # a module's struct proc_ops (0: the kernel's own kinds)
    show: int = 0                 # proc_create_single: the module's show()
    seq_ops: int = 0              # proc_create_seq: the module's seq_operations
    state_size: int = 0
    net: int = 0                  # proc_create_net_*: the namespace its opens see (proc_net.py)


class ProcEntries:
    """Every proc_dir_entry of a kernel, by address; /proc is its root."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.tree: FileTree = file_tree(kernel)
        self.root = self.tree.lookup("/proc")
        self.entries: dict[int, ProcEntry] = {}
        self.registry = kernel.registrations.registry("procfs")

    def dir_of(self, parent: int) -> Directory | None:
        if not parent:
            return self.root            # type: ignore[return-value]
        entry = self.entries.get(parent)
        return entry.node if entry is not None and isinstance(entry.node, Directory) else None

    def register(self, ctx: Any, parent: int, name: str, node: Node, **fields: Any) -> int:
        """__proc_create + proc_register: the entry's address, or 0 (NULL) with
        Linux's WARN for a bad or taken name."""
        directory = self.dir_of(parent)
        if directory is None:
            warn(ctx, f"name '{name}'", "fs/proc/generic.c:175", "proc_register")
            return 0
        *path, last = name.split("/")
        for part in path:                       # xlate_proc_name: "driver/foo"
            found = directory.child(part)
            if not isinstance(found, Directory):
                warn(ctx, f"name '{name}'", "fs/proc/generic.c:175", "proc_register")
                return 0
            directory = found
        if not last or len(last) > NAME_MAX or last in (".", ".."):
            message = f"name len {len(last)}" if not last or len(last) > NAME_MAX else f"name '{last}'"
            warn(ctx, message, "fs/proc/generic.c:407", "__proc_create")
            return 0
        if directory is self.root and last.isdigit():
            warn(ctx, f"create '/proc/{last}' by hand", "fs/proc/generic.c:420", "__proc_create")
            return 0
        if directory.child(last) is not None:
            warn(ctx, f"proc_dir_entry '{self.pde_name(directory)}/{last}' already registered",
                 "fs/proc/generic.c:381", "proc_register")
            return 0
        address = self.kernel.slab.alloc(PDE_SIZE, None, zero=True)
        if not address:
            return 0
        node.name = last
        node.uid, node.gid = directory.uid, directory.gid
        self.tree.attach(directory, node)
        entry = ProcEntry(address, node, ctx.module, **fields)
        node.data = entry
        node.i_private = entry.data
        self.entries[address] = entry
        self.registry.add(address, f"proc entry {node.path}", owner=ctx.module, address=address,
                          points_to=(entry.proc_ops, entry.show, entry.seq_ops),
                          on_leftover=lambda reg: self._leftover(entry))
        return address

    def pde_name(self, directory: Node | None) -> str:
        """A directory's de->name: proc_root's is "/proc"."""
        return "/proc" if directory is self.root or directory is None else directory.name

    def _leftover(self, entry: ProcEntry) -> None:
        """Made inert: its module is gone, none of its code may run again."""
        for node in self.tree.walk(entry.node):
            child = node.data
            if isinstance(child, ProcEntry) and child is not entry:
                self.registry.remove(child.address)
                self._forget(child)
        self.tree.remove_now(entry.node)
        self._forget(entry)

    def _forget(self, entry: ProcEntry) -> None:
        if self.entries.pop(entry.address, None) is not None:
            self.kernel.slab.free(entry.address, None)

    def find(self, ctx: Any, name: str, parent: int) -> ProcEntry | None:
        directory = self.dir_of(parent)
        node: Node | None = directory
        for part in name.split("/"):
            node = node.child(part) if isinstance(node, Directory) else None
        entry = node.data if node is not None else None
        return entry if isinstance(entry, ProcEntry) and entry.node is node else None

    async def remove(self, entry: ProcEntry, subtree: bool) -> None:
        """proc_entry_rundown for the entry (and, for a subtree, everything
        under it, deepest first): wait for the calls inside, release the
        open files, free."""
        children = [n.data for n in self.tree.walk(entry.node)
                    if n is not entry.node and isinstance(n.data, ProcEntry)]
        self.registry.remove(entry.address)
        if subtree:
            for child in children:
                self.registry.remove(child.address)
        await self.tree.remove(entry.node)
        self._forget(entry)
        if subtree:
            for child in children:
                self._forget(child)


def procfs(kernel: "Kernel") -> ProcEntries:
    return kernel.subsystem(ProcEntries)


# The directories proc_root_init() and its callers make at boot, where
# modules put their entries ("driver/nvram", "fs/fscache", "tty/driver/x").
BOOT_DIRS = ("fs", "driver", "bus", "tty", "tty/driver", "tty/ldisc")


@populate
def _proc_root(tree: FileTree) -> None:
    for path in BOOT_DIRS:
        tree.mkdir(f"/proc/{path}", mode=0o555)


# -- the file operations: proc_reg_* -------------------------------------------------

def _seq_caller(file: OpenFile) -> Any:
    async def call(fn: int, *args: int) -> int:
        return await file.call(fn, *args, via="seq_read", check=False)
    return call


def _kernel_fn(kernel: "Kernel", name: str) -> int:
    return kernel.machine.kernel_symbols().get(name, -1)


class ProcRegOps(FileOps):
    """proc_reg_file_ops: each call through the entry's `struct proc_ops`,
    under a use of the entry (the tree's active reference)."""

    def _op(self, file: OpenFile, offset: int) -> int:
        entry: ProcEntry = file.node.data
        return file.kernel.mem.read_u64(entry.proc_ops + offset)

    def can_read(self, file: OpenFile) -> bool:
        return True                    # proc_reg_read answers EIO without a .proc_read

    def can_write(self, file: OpenFile) -> bool:
        return True

    async def open(self, file: OpenFile) -> None:
        fn = self._op(file, PO_OPEN)
        if fn:
            ret = await file.call(fn, file.node.inode, file.address, via="proc_reg_open", check=False)
            check_return(signed32(ret), f"open {file.path}")

    async def read(self, file: OpenFile, size: int) -> bytes:
        kernel = file.kernel
        fn = self._op(file, PO_READ)
        seq = fn == _kernel_fn(kernel, "seq_read") or \
            not fn and self._op(file, PO_READ_ITER) == _kernel_fn(kernel, "seq_read_iter")
        if seq:                         # seq_read from Python: no round trip through the CPU
            data, err = await seq_read_file(kernel, file.address, size, _seq_caller(file))
            if err:
                check_return(err, f"read {file.path}")
            return data
        if not fn:
            raise KernelError(errno.EIO, f"read {file.path}: Input/output error (no .proc_read)")
        with user_space(kernel).buffer(size) as buf:
            got = check_return(await file.call(fn, file.address, buf.address, size, file.field("f_pos"),
                                               via="proc_reg_read", check=False), f"read {file.path}")
            return bytes(buf.data[:min(got, size)])

    async def write(self, file: OpenFile, data: bytes) -> int:
        fn = self._op(file, PO_WRITE)
        if not fn:
            raise KernelError(errno.EIO, f"write {file.path}: Input/output error (no .proc_write)")
        with user_space(file.kernel).buffer(data) as buf:
            return check_return(await file.call(fn, file.address, buf.address, len(data),
                                                file.field("f_pos"), via="proc_reg_write", check=False),
                                f"write {file.path}")

    async def llseek(self, file: OpenFile, offset: int, whence: int) -> int:
        kernel = file.kernel
        if not file.mode & FMODE_LSEEK:
            raise KernelError(errno.ESPIPE, f"lseek {file.path}: Illegal seek")
        fn = self._op(file, PO_LSEEK)
        if fn == _kernel_fn(kernel, "seq_lseek"):
            ret = await seq_of_file(kernel, file.address, _seq_caller(file)).lseek(file.address, offset, whence)
        elif fn:
            ret = await file.call(fn, file.address, offset & ((1 << 64) - 1), whence, via="proc_reg_llseek",
                                  check=False)
        else:
            ret = default_llseek(file, offset, whence)
        return check_return(ret, f"lseek {file.path}")

    async def ioctl(self, file: OpenFile, request: int, arg: int | bytes) -> tuple[int, bytes | None]:
        fn = self._op(file, PO_IOCTL)
        if not fn:
            raise KernelError(errno.ENOTTY, f"ioctl {file.path}: Inappropriate ioctl for device")
        if isinstance(arg, bytes):
            with user_space(file.kernel).buffer(arg) as buf:
                ret = await file.call(fn, file.address, request, buf.address, via="proc_reg_unlocked_ioctl",
                                      check=False)
                return check_return(ret, f"ioctl {file.path}"), bytes(buf.data)
        ret = await file.call(fn, file.address, request, arg & ((1 << 64) - 1), via="proc_reg_unlocked_ioctl",
                              check=False)
        return check_return(ret, f"ioctl {file.path}"), None

    async def release(self, file: OpenFile) -> None:
        fn = self._op(file, PO_RELEASE)
        if fn:
            await file.call(fn, file.node.inode, file.address, via="proc_reg_release", check=False)


def default_llseek(file: OpenFile, offset: int, whence: int) -> int:
    """fs/read_write.c's default_llseek: the position, bounded below by 0."""
    pos = file.pos
    offset = signed64(offset)
    if whence == os.SEEK_END:
        offset += file.node.size
    elif whence == os.SEEK_CUR:
        if offset == 0:
            return pos
        offset += pos
    if offset < 0:
        return -errno.EINVAL
    file.pos = offset
    return offset


class SeqOps(FileOps):
    """proc_single_ops and proc_seq_ops: the kernel's own proc_ops around a
    module's show() or seq_operations."""

    def can_read(self, file: OpenFile) -> bool:
        return True

    async def open(self, file: OpenFile) -> None:
        kernel, entry = file.kernel, file.node.data
        if entry.show:        # single_open_net() hands show() the namespace instead of the data
            ret = single_open_file(kernel, file.address, entry.show, entry.net or entry.data)
        else:
            ret = open_seq(kernel, file.address, entry.seq_ops)
            if not ret and entry.state_size:
                private = kernel.slab.alloc(entry.state_size, None, zero=True)
                if not private:
                    release_seq(kernel, file.address)
                    ret = -errno.ENOMEM
                else:
                    m = kernel.mem.read_u64(file.field("private_data"))
                    kernel.mem.write_u64(m + M_PRIVATE, private)
                    if entry.net:     # seq_open_net(): struct seq_net_private { struct net *net; }
                        kernel.mem.write_u64(private, entry.net)
                    file.state = private
        check_return(ret, f"open {file.path}")

    async def read(self, file: OpenFile, size: int) -> bytes:
        data, err = await seq_read_file(file.kernel, file.address, size, _seq_caller(file))
        if err:
            check_return(err, f"read {file.path}")
        return data

    async def llseek(self, file: OpenFile, offset: int, whence: int) -> int:
        seq = seq_of_file(file.kernel, file.address, _seq_caller(file))
        return check_return(await seq.lseek(file.address, offset, whence), f"lseek {file.path}")

    async def release(self, file: OpenFile) -> None:
        kernel, entry = file.kernel, file.node.data
        if entry.show:
            single_release_file(kernel, file.address)
        else:
            release_seq(kernel, file.address)
            if file.state:
                kernel.slab.free(file.state, None)


PROC_REG_OPS = ProcRegOps()
SEQ_OPS = SeqOps()


# -- the exported functions -----------------------------------------------------------

def _name(ctx: Any, name: int) -> str:
    return ctx.mem.read_cstr(name, 4096).decode(errors="replace") if name else ""


def _reg_mode(ctx: Any, mode: int) -> int | None:
    """proc_create_reg: a regular file, readable by all unless told otherwise."""
    mode &= 0xFFFF
    if not mode & S_IFMT:
        mode |= S_IFREG
    if not mode & 0o7777:
        mode |= S_IRUGO
    if mode & S_IFMT != S_IFREG:
        warn(ctx, "", "fs/proc/generic.c:558", "proc_create_reg")
        return None
    return mode & 0o7777


def _create(ctx: Any, name: int, mode: int, parent: int, ops: FileOps, **fields: Any) -> int:
    perm = _reg_mode(ctx, mode)
    if perm is None:
        return 0
    node = Node("", ops, mode=perm, owner=ctx.module, removal=PROCFS)
    return procfs(ctx.kernel).register(ctx, parent, _name(ctx, name), node, **fields)


@export("proc_create_data", "struct proc_dir_entry *proc_create_data(const char *name, umode_t mode, "
                            "struct proc_dir_entry *parent, const struct proc_ops *proc_ops, void *data)",
        nargs=5)
def proc_create_data(ctx: Any, name: int, mode: int, parent: int, proc_ops: int, data: int) -> int:
    return _create(ctx, name, mode, parent, PROC_REG_OPS, proc_ops=proc_ops, data=data)


@export("proc_create", "struct proc_dir_entry *proc_create(const char *name, umode_t mode, "
                       "struct proc_dir_entry *parent, const struct proc_ops *proc_ops)", nargs=4)
def proc_create(ctx: Any, name: int, mode: int, parent: int, proc_ops: int) -> int:
    return proc_create_data(ctx, name, mode, parent, proc_ops, 0)


@export("proc_create_single_data", "struct proc_dir_entry *proc_create_single_data(const char *name, "
                                   "umode_t mode, struct proc_dir_entry *parent, "
                                   "int (*show)(struct seq_file *, void *), void *data)", nargs=5)
def proc_create_single_data(ctx: Any, name: int, mode: int, parent: int, show: int, data: int) -> int:
    return _create(ctx, name, mode, parent, SEQ_OPS, show=show, data=data)


@export("proc_create_seq_private", "struct proc_dir_entry *proc_create_seq_private(const char *name, "
                                   "umode_t mode, struct proc_dir_entry *parent, "
                                   "const struct seq_operations *ops, unsigned int state_size, void *data)",
        nargs=6)
def proc_create_seq_private(ctx: Any, name: int, mode: int, parent: int, ops: int, state_size: int,
                            data: int) -> int:
    return _create(ctx, name, mode, parent, SEQ_OPS, seq_ops=ops, state_size=state_size & 0xFFFFFFFF,
                   data=data)


@export("_proc_mkdir", "struct proc_dir_entry *_proc_mkdir(const char *name, umode_t mode, "
                       "struct proc_dir_entry *parent, void *data, bool force_lookup)", nargs=5, gpl=True)
def _proc_mkdir(ctx: Any, name: int, mode: int, parent: int, data: int, force_lookup: int) -> int:
    mode &= 0o7777
    node = Directory("", mode=mode or (S_IRUGO | S_IXUGO), owner=ctx.module, removal=PROCFS)
    return procfs(ctx.kernel).register(ctx, parent, _name(ctx, name), node, data=data)


@export("proc_mkdir_data", "struct proc_dir_entry *proc_mkdir_data(const char *name, umode_t mode, "
                           "struct proc_dir_entry *parent, void *data)", nargs=4, gpl=True)
def proc_mkdir_data(ctx: Any, name: int, mode: int, parent: int, data: int) -> int:
    return _proc_mkdir(ctx, name, mode, parent, data, 0)


@export("proc_mkdir_mode", "struct proc_dir_entry *proc_mkdir_mode(const char *name, umode_t mode, "
                           "struct proc_dir_entry *parent)", nargs=3)
def proc_mkdir_mode(ctx: Any, name: int, mode: int, parent: int) -> int:
    return _proc_mkdir(ctx, name, mode, parent, 0, 0)


@export("proc_mkdir", "struct proc_dir_entry *proc_mkdir(const char *name, struct proc_dir_entry *parent)",
        nargs=2)
def proc_mkdir(ctx: Any, name: int, parent: int) -> int:
    return _proc_mkdir(ctx, name, 0, parent, 0, 0)


@export("proc_symlink", "struct proc_dir_entry *proc_symlink(const char *name, struct proc_dir_entry *parent, "
                        "const char *dest)", nargs=3)
def proc_symlink(ctx: Any, name: int, parent: int, dest: int) -> int:
    node = Symlink("", _name(ctx, dest), owner=ctx.module, removal=PROCFS)
    return procfs(ctx.kernel).register(ctx, parent, _name(ctx, name), node)


@export("proc_set_size", "void proc_set_size(struct proc_dir_entry *de, loff_t size)", nargs=2)
def proc_set_size(ctx: Any, de: int, size: int) -> None:
    entry = procfs(ctx.kernel).entries.get(de)
    if entry is not None:
        entry.node.size = signed64(size)


@export("proc_set_user", "void proc_set_user(struct proc_dir_entry *de, kuid_t uid, kgid_t gid)", nargs=3)
def proc_set_user(ctx: Any, de: int, uid: int, gid: int) -> None:
    entry = procfs(ctx.kernel).entries.get(de)
    if entry is not None:
        entry.node.uid, entry.node.gid = uid & 0xFFFFFFFF, gid & 0xFFFFFFFF


async def _remove(ctx: Any, name: int, parent: int, subtree: bool) -> int:
    entries = procfs(ctx.kernel)
    text = _name(ctx, name)
    entry = entries.find(ctx, text, parent)
    if entry is None:
        warn(ctx, f"name '{text}'", "fs/proc/generic.c:711", "remove_proc_entry")
        return -errno.ENOENT
    node = entry.node
    if not subtree and isinstance(node, Directory) and node.children:
        first = sorted(node.children)[0]
        parent_name = entries.pde_name(node.parent)
        warn(ctx, f"remove_proc_entry: removing non-empty directory '{parent_name}/{node.name}', "
                  f"leaking at least '{first}'", "fs/proc/generic.c:717", "remove_proc_entry")
    await entries.remove(entry, subtree)
    return 0


@export("remove_proc_entry", "void remove_proc_entry(const char *name, struct proc_dir_entry *parent)",
        nargs=2)
async def remove_proc_entry(ctx: Any, name: int, parent: int) -> None:
    await _remove(ctx, name, parent, False)


@export("remove_proc_subtree", "int remove_proc_subtree(const char *name, struct proc_dir_entry *parent)",
        nargs=2)
async def remove_proc_subtree(ctx: Any, name: int, parent: int) -> int:
    return await _remove(ctx, name, parent, True)


@export("proc_remove", "void proc_remove(struct proc_dir_entry *de)", nargs=1)
async def proc_remove(ctx: Any, de: int) -> None:
    if not de:
        return
    entries = procfs(ctx.kernel)
    entry = entries.entries.get(de)
    if entry is not None:
        await entries.remove(entry, True)


@export("proc_get_parent_data", "void *proc_get_parent_data(const struct inode *inode)", nargs=1)
def proc_get_parent_data(ctx: Any, inode: int) -> int:
    for entry in procfs(ctx.kernel).entries.values():
        if entry.node.inode == inode:
            parent = entry.node.parent
            data = parent.data if parent is not None else None
            return data.data if isinstance(data, ProcEntry) else 0
    return 0
