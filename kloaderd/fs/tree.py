"""The kernel's file tree: `/proc`, `/sys`, `/sys/kernel/debug` and `/dev`.

Linux serves these from four filesystems (procfs, sysfs over kernfs,
debugfs, devtmpfs), each with a dentry cache, inodes and superblocks.
kloader serves them from one tree of nodes in the daemon, because all a
client can do with them is walk a path, list a directory, stat a name and
open a file; what must be Linux's is what each node *does*:

* a **directory** (`Directory`) holds named children, or makes them on each
  lookup (`generate`: `/sys/module/` follows the module list);
* a **file** (`Node` with `ops`) behaves as its `FileOps` say: kernel
  content made in Python (`Content`: `/proc/modules`, a sysfs attribute
  whose show/store the device model calls), or a module's own
  `struct file_operations` / `struct proc_ops` called on the emulated CPU;
* a **symlink** (`Symlink`): `/sys/module/NAME/holders/*`;
* a **character device** node in `/dev` (`kloaderd/fs/char_dev.py`,
  `DeviceNodes`): what `mknod` and devtmpfs make, opened through
  `chrdev_open`.

Every client file operation (`FileTable` in file.py: open, read, write,
lseek, ioctl, close, and the `read_file`/`write_file`/`listdir`/`stat` ops)
walks this tree, so a file anywhere behaves the same through every surface.

API for subsystems (procfs, sysfs, debugfs, the device model)::

    tree = file_tree(kernel)                       # the one tree of a kernel
    d = tree.mkdir("/sys/kernel/foo", mode=0o755, owner=module)
    f = tree.add(d, "bar", Content(show, store), mode=0o644, owner=module,
                 size=4096, removal=KERNFS)        # a file (mode: permission bits)
    tree.symlink(d, "link", "/sys/module/other")
    await tree.remove(f)                          # waits for its operations to end
    tree.remove_now(f)                            # a leftover: no waiting, no module
    tree.lookup("/sys/kernel/foo/bar")             # the node, or KernelError
    # a FileOps subclass for a file of your own: see FileOps below

`Content(show, store)`: `show(file)` returns the whole file (bytes or str;
a coroutine function may call module code), read by position from a buffer
made at the first read and remade when the file is read again from 0, as
`seq_file` does; `store(file, data)` gets one write's bytes and returns the
number it took (None: all) or raises `KernelError` (EINVAL for a bad value).
Populate the tree at boot with `@populate def fn(tree): ...` in the
subsystem's own file (its module listed in kernel/api's SUBSYSTEMS).

Removal (`Removal`) is how Linux's filesystems differ, and the node says
which it follows: a kernfs (sysfs) or procfs node *drains* — `remove()`
waits until no operation is running in the node's `FileOps` (kernfs's
active references, procfs's `proc_entry_rundown`), then calls `release`
for every file still open on it; any later operation on those files fails
with the removal's errno (ENODEV for kernfs, EIO for procfs).  A device
node does not drain (an open char device keeps its driver by module
references instead).

Where kloader differs from Linux, on purpose (docs/semantics.md):
* permissions: a session with privilege (the daemon's uid or root) is the
  file's owner (uid 0), others are "other"; the mode bits are obeyed by
  everyone, as kernfs obeys them for sysfs files — root's DAC override is
  not emulated;
* no inode numbers, times or link counts beyond what `stat` reports;
* a name's children are listed in name order.
"""

from __future__ import annotations

import errno
import inspect
import itertools
import stat as st
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator

import trio

from ..errors import KernelError

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel
    from ..kernel.module import Module
    from .file import OpenFile

PATH_MAX = 4096
NAME_MAX = 255
MAX_SYMLINKS = 40                 # Linux's MAXSYMLINKS: more is ELOOP
PAGE_SIZE = 4096


@dataclass(frozen=True)
class Removal:
    """How a node's removal treats its users: the filesystem it belongs to."""
    drains: bool                  # remove() waits for running operations, then releases open files
    gone: int                     # the errno of any operation after removal


KERNFS = Removal(True, errno.ENODEV)    # sysfs (and debugfs: its proxy answers EIO — see debugfs)
PROCFS = Removal(True, errno.EIO)       # proc_reg_*: use_pde() failed
DEVTMPFS = Removal(False, errno.ENXIO)  # the node goes; open files keep their driver


class FileOps:
    """What a node's files do: Linux's `struct file_operations`, in Python.

    Each method gets the `OpenFile` (file.py): `file.kernel`, `file.node`,
    `file.comm` (the client's name, as `current->comm`), `file.address`
    (the `struct file` in kernel memory, whose f_pos/f_mode/private_data
    module code reads), `file.pos` (f_pos) and `file.state` (yours, per
    open file).  The defaults answer as the VFS does for a missing method.
    The tree holds an active reference on the node for the call, so a
    removal waits for it to return.
    """

    async def open(self, file: "OpenFile") -> None:
        return None

    def can_read(self, file: "OpenFile") -> bool:
        return False

    def can_write(self, file: "OpenFile") -> bool:
        return False

    async def read(self, file: "OpenFile", size: int) -> bytes:
        raise KernelError(errno.EINVAL, f"read {file.path}: Invalid argument")

    async def write(self, file: "OpenFile", data: bytes) -> int:
        raise KernelError(errno.EINVAL, f"write {file.path}: Invalid argument")

    async def llseek(self, file: "OpenFile", offset: int, whence: int) -> int:
        raise KernelError(errno.ESPIPE, f"lseek {file.path}: Illegal seek")

    async def ioctl(self, file: "OpenFile", request: int, arg: int | bytes) -> tuple[int, bytes | None]:
        raise KernelError(errno.ENOTTY, f"ioctl {file.path}: Inappropriate ioctl for device")

    async def release(self, file: "OpenFile") -> None:
        return None


Show = Callable[["OpenFile"], "bytes | str | Awaitable[bytes | str]"]
Store = Callable[["OpenFile", bytes], "int | None | Awaitable[int | None]"]


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Content(FileOps):
    """A file whose content the kernel makes: `show(file)` for reads,
    `store(file, data)` for writes (either may be a coroutine function that
    calls module code; `file.table.privileged` says whether the reader is
    the owner, for what Linux shows only to the privileged).

    Reads are seq_file's: the content is made at the first read from
    position 0 and served from that buffer until the file is read from 0
    again, so a reader sees one consistent snapshot however small its reads.
    """

    def __init__(self, show: Show | None = None, store: Store | None = None) -> None:
        self.show = show
        self.store = store

    def can_read(self, file: "OpenFile") -> bool:
        return self.show is not None

    def can_write(self, file: "OpenFile") -> bool:
        return self.store is not None

    async def read(self, file: "OpenFile", size: int) -> bytes:
        assert self.show is not None
        pos = file.pos
        if pos == 0 or file.state is None:
            data = await _maybe_await(self.show(file))
            file.state = data.encode() if isinstance(data, str) else bytes(data)
        chunk = file.state[pos:pos + size]
        file.pos = pos + len(chunk)
        return chunk

    async def write(self, file: "OpenFile", data: bytes) -> int:
        assert self.store is not None
        taken = await _maybe_await(self.store(file, data))
        return len(data) if taken is None else taken

    async def llseek(self, file: "OpenFile", offset: int, whence: int) -> int:
        """seq_lseek: SEEK_SET and SEEK_CUR within the content; SEEK_END is EINVAL."""
        if whence == 1:
            offset += file.pos
        elif whence != 0 or offset < 0:
            raise KernelError(errno.EINVAL, f"lseek {file.path}: Invalid argument")
        file.pos = offset
        return offset


class Node:
    """One name in the tree: a file (with `ops`), or a `Directory`/`Symlink`."""

    kind = st.S_IFREG

    def __init__(self, name: str, ops: FileOps | None = None, *, mode: int = 0o444,
                 owner: "Module | None" = None, removal: Removal = KERNFS, size: int = 0,
                 uid: int = 0, gid: int = 0, data: Any = None, rdev: int = 0) -> None:
        self.name = name
        self.ops = ops if ops is not None else FileOps()
        self.mode = mode & 0o7777
        self.owner = owner              # the module that made it (None: the kernel)
        self.removal = removal
        self.size = size
        self.uid, self.gid = uid, gid
        self.data = data                # the subsystem's own (a pde, a kobject, ...)
        self.rdev = rdev
        self.parent: Directory | None = None
        self.ino = 0
        self.inode = 0                  # its struct inode in kernel memory, once a file needs one
        self.i_private = 0              # what inode->i_private holds (pde_data, debugfs data)
        self.removed = False
        self.active = 0                 # operations running in its ops
        self.files: set["OpenFile"] = set()
        self._drained: trio.Event | None = None

    @property
    def path(self) -> str:
        parts = []
        node: Node | None = self
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return "/" + "/".join(reversed(parts))

    @property
    def dev(self) -> int:
        return self.rdev

    @property
    def st_mode(self) -> int:
        return self.kind | self.mode

    def stat(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.st_mode, "type": _TYPE_NAMES[self.kind],
                "size": self.size, "uid": self.uid, "gid": self.gid, "ino": self.ino,
                "nlink": 1, "rdev": self.rdev}

    # -- active references (kernfs_get_active / use_pde) ----------------------------

    def get_active(self) -> None:
        if self.removed and self.removal.drains:
            raise KernelError(self.removal.gone, f"{self.path}: removed ({_strerror(self.removal.gone)})")
        self.active += 1

    def put_active(self) -> None:
        self.active -= 1
        if not self.active and self._drained is not None:
            self._drained.set()

    async def drain(self) -> None:
        while self.active:
            self._drained = trio.Event()
            await self._drained.wait()
        self._drained = None


class Directory(Node):
    """A directory: named children, or children made on lookup (`generate`)."""

    kind = st.S_IFDIR

    def __init__(self, name: str, *, mode: int = 0o555,
                 generate: Callable[[], dict[str, Node]] | None = None, **kw: Any) -> None:
        super().__init__(name, mode=mode, **kw)
        self.children: dict[str, Node] = {}
        self.generate = generate

    def entries(self) -> dict[str, Node]:
        if self.generate is None:
            return self.children
        made = self.generate()
        for node in made.values():
            node.parent = self
        return {**self.children, **made}

    def child(self, name: str) -> Node | None:
        node = self.children.get(name)
        if node is None and self.generate is not None:
            node = self.entries().get(name)
        return node

    def stat(self) -> dict[str, Any]:
        return {**super().stat(), "nlink": 2 + sum(isinstance(c, Directory) for c in self.entries().values())}


class Symlink(Node):
    kind = st.S_IFLNK

    def __init__(self, name: str, target: str, **kw: Any) -> None:
        super().__init__(name, mode=0o777, **kw)
        self.target = target

    def stat(self) -> dict[str, Any]:
        return {**super().stat(), "size": len(self.target), "target": self.target}


_TYPE_NAMES = {st.S_IFREG: "file", st.S_IFDIR: "dir", st.S_IFLNK: "link", st.S_IFCHR: "chr", st.S_IFBLK: "blk"}


def _strerror(code: int) -> str:
    import os
    return os.strerror(code)


class FileTree:
    """The tree of one kernel: kernel.subsystem(FileTree), or `file_tree(kernel)`."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self._ino = itertools.count(1)
        self.root = Directory("", mode=0o755)
        self.root.ino = next(self._ino)
        for path, mode in (("/proc", 0o555), ("/sys", 0o555), ("/sys/kernel", 0o755),
                           ("/sys/kernel/debug", 0o700), ("/dev", 0o755)):
            self.mkdir(path, mode=mode)
        for fn in POPULATE:
            fn(self)

    # -- making and removing ---------------------------------------------------------

    def add(self, parent: Directory | str, name: str, ops: FileOps | None = None, **kw: Any) -> Node:
        """A file `name` in `parent` (a directory or its path); EEXIST if taken."""
        return self.attach(parent, Node(name, ops, **kw))

    def attach(self, parent: Directory | str, node: Node) -> Node:
        """Put a made node into `parent`: what every add/mkdir/symlink ends in."""
        if isinstance(parent, str):
            found = self.lookup(parent)
            if not isinstance(found, Directory):
                raise KernelError(errno.ENOTDIR, f"{parent}: Not a directory")
            parent = found
        name = node.name
        if not name or "/" in name or "\0" in name or name in (".", "..") or len(name) > NAME_MAX:
            raise KernelError(errno.EINVAL, f"{parent.path}: {name!r} is not a file name")
        if parent.removed:
            raise KernelError(errno.ENOENT, f"{parent.path}: No such file or directory (removed)")
        if parent.child(name) is not None:
            raise KernelError(errno.EEXIST, f"{parent.path.rstrip('/')}/{name}: File exists")
        node.parent = parent
        node.ino = next(self._ino)
        parent.children[name] = node
        return node

    def mkdir(self, path_or_parent: Directory | str, name: str | None = None, *, mode: int = 0o755,
              **kw: Any) -> Directory:
        """`mkdir(parent, name)` or `mkdir("/a/b")` (the parent must exist)."""
        if name is None:
            assert isinstance(path_or_parent, str)
            parent_path, _, name = path_or_parent.rstrip("/").rpartition("/")
            path_or_parent = parent_path or "/"
        node = self.attach(path_or_parent, Directory(name, mode=mode, **kw))
        assert isinstance(node, Directory)
        return node

    def symlink(self, parent: Directory | str, name: str, target: str, **kw: Any) -> Symlink:
        node = self.attach(parent, Symlink(name, target, **kw))
        assert isinstance(node, Symlink)
        return node

    def _unlink(self, node: Node) -> list[Node]:
        """Take `node` and everything under it out of the tree: the removed nodes."""
        gone = list(self.walk(node))
        for n in gone:
            n.removed = True
        parent = node.parent
        if parent is not None and parent.children.get(node.name) is node:
            del parent.children[node.name]
        return gone

    async def remove(self, node: Node) -> None:
        """Remove `node` (recursively): as remove_proc_entry / kernfs_remove,
        wait until no operation runs in a draining node's ops, then release
        the files still open on it."""
        for n in self._unlink(node):
            if n.removal.drains:
                await n.drain()
                for file in list(n.files):
                    await file.release_at_removal()
            self._free_inode_if_unused(n)

    def remove_now(self, node: Node) -> None:
        """Remove without waiting or releasing: a leftover of a module that is
        gone already (its code must not run), made inert."""
        for n in self._unlink(node):
            for file in n.files:
                file.released = True
            self._free_inode_if_unused(n)

    def walk(self, node: Node) -> Iterator[Node]:
        """`node` and its static descendants, deepest first."""
        if isinstance(node, Directory):
            for child in list(node.children.values()):
                yield from self.walk(child)
        yield node

    # -- lookup ----------------------------------------------------------------------

    def lookup(self, path: str, *, follow: bool = True) -> Node:
        """The node at an absolute `path` (symlinks followed, the last one only
        if `follow`): ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG as path_lookup."""
        if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
            raise KernelError(errno.EINVAL if not isinstance(path, str) or "\0" in path else errno.ENOENT,
                              f"{path!r}: not an absolute path")
        if len(path.encode()) >= PATH_MAX:
            raise KernelError(errno.ENAMETOOLONG, f"{path[:64]}...: File name too long")
        return self._walk(path, follow, [0])

    def _walk(self, path: str, follow: bool, links: list[int]) -> Node:
        node: Node = self.root
        parts = [p for p in path.split("/") if p and p != "."]
        for i, part in enumerate(parts):
            if len(part.encode()) > NAME_MAX:
                raise KernelError(errno.ENAMETOOLONG, f"{path}: File name too long")
            if not isinstance(node, Directory):
                raise KernelError(errno.ENOTDIR, f"{path}: Not a directory")
            if part == "..":
                node = node.parent or node
                continue
            child = node.child(part)
            if child is None:
                raise KernelError(errno.ENOENT, f"{path}: No such file or directory")
            last = i == len(parts) - 1
            if isinstance(child, Symlink) and (follow or not last):
                links[0] += 1
                if links[0] > MAX_SYMLINKS:
                    raise KernelError(errno.ELOOP, f"{path}: Too many levels of symbolic links")
                target = child.target if child.target.startswith("/") else \
                    f"{node.path.rstrip('/')}/{child.target}"
                child = self._walk(target, True, links)
            node = child
        if path.endswith("/") and not isinstance(node, Directory):
            raise KernelError(errno.ENOTDIR, f"{path}: Not a directory")
        return node

    def listdir(self, path: str) -> list[str]:
        node = self.lookup(path)
        if not isinstance(node, Directory):
            raise KernelError(errno.ENOTDIR, f"{path}: Not a directory")
        return sorted(node.entries())

    def stat(self, path: str, *, follow: bool = True) -> dict[str, Any]:
        return self.lookup(path, follow=follow).stat()

    # -- permission (may_open) -------------------------------------------------------

    @staticmethod
    def may_open(node: Node, read: bool, write: bool, privileged: bool, path: str) -> None:
        """EISDIR for writing a directory; EACCES when the mode bits (owner's
        for a privileged session, others' otherwise) do not allow it."""
        if isinstance(node, Directory) and write:
            raise KernelError(errno.EISDIR, f"open {path}: Is a directory")
        shift = 6 if privileged else 0
        bits = (node.mode >> shift) & 0o7
        if read and not bits & 0o4 or write and not bits & 0o2:
            raise KernelError(errno.EACCES, f"open {path}: Permission denied (mode {node.mode:04o}, "
                                            f"{'owner' if privileged else 'others'} may not "
                                            f"{'write' if write and not bits & 0o2 else 'read'})")

    # -- inodes in kernel memory -----------------------------------------------------

    def ensure_inode(self, node: Node) -> int:
        """The node's `struct inode` (i_mode, i_ino, i_rdev, i_size,
        i_private), made the first time a file of it is opened."""
        if node.inode:
            return node.inode
        from .file import INODE
        kernel = self.kernel
        i = kernel.layouts[INODE]
        inode = kernel.slab.alloc(i.size, None, zero=True)
        if not inode:
            raise KernelError(errno.ENOMEM, f"{node.path}: Cannot allocate memory")
        mem = kernel.mem
        mem.write_u16(inode + i.i_mode, node.st_mode & 0xFFFF)
        mem.write_u64(inode + i.i_ino, node.ino)
        mem.write_u32(inode + i.i_rdev, node.rdev)
        mem.write_u64(inode + i.i_size, node.size)
        mem.write_u64(inode + i.i_private, node.i_private)
        node.inode = inode
        return inode

    def _free_inode_if_unused(self, node: Node) -> None:
        if node.removed and not node.files and node.inode:
            self.kernel.slab.free(node.inode, None)
            node.inode = 0

    def closed(self, node: Node, file: "OpenFile") -> None:
        node.files.discard(file)
        self._free_inode_if_unused(node)


# What the kernel puts in the tree as it boots (/proc/modules, /sys/module,
# ...): `fn(tree)`, registered with @populate by the subsystem that owns
# the files, run in registration order when a kernel's tree is made.
POPULATE: list[Callable[[FileTree], None]] = []


def populate(fn: Callable[[FileTree], None]) -> Callable[[FileTree], None]:
    if fn not in POPULATE:
        POPULATE.append(fn)
    return fn


def file_tree(kernel: "Kernel") -> FileTree:
    return kernel.subsystem(FileTree)
