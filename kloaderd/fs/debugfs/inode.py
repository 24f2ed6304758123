"""debugfs directories and files (Linux's fs/debugfs/inode.c).

A dentry is a handle in kernel memory (`struct dentry` sized, zeroed) that
stands for a node of the file tree under /sys/kernel/debug; NULL as parent
is the debugfs root.  Creating a name that exists is Linux's "debugfs:
Directory 'X' with parent 'P' already present!" (or "File 'X' in directory
'P' already present!") and ERR_PTR(-EEXIST); a parent that is an error
pointer is handed back.  `debugfs_remove` (6.1's `debugfs_remove_recursive`
too) removes a directory with everything in it, waiting for operations
running in its files, after which operations on files still open fail with
EIO (`debugfs_file_get`).  A node a module made and did not remove when it
is freed is a leaked registration: reported and removed.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ...errors import KernelError
from ...kernel.api import export
from ...kernel.callback import waiting
from ...kernel.printk import KERN_ERR
from ..tree import Directory, FileOps, Node, Removal, file_tree

if TYPE_CHECKING:
    from ...kernel.kernel import Kernel

DEBUGFS = Removal(True, errno.EIO)       # debugfs_file_get() after removal: -EIO
DENTRY_SIZE = 192
ROOT = "/sys/kernel/debug"
MAX_ERRNO = 4095
_MASK64 = (1 << 64) - 1
_NAME_MAX = 256


def is_err_or_null(value: int) -> bool:
    return not value or value >= (-MAX_ERRNO) & _MASK64


def err_ptr(code: int) -> int:
    return (-code) & _MASK64


class DebugFS:
    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.nodes: dict[int, Node] = {}          # dentry handle -> node
        self.handles: dict[Node, int] = {}
        self.registry = kernel.registrations.registry("debugfs")

    def parent(self, handle: int) -> Directory | None:
        node = file_tree(self.kernel).lookup(ROOT) if not handle else self.nodes.get(handle)
        return node if isinstance(node, Directory) and not node.removed else None

    def create(self, ctx: Any, name_ptr: int, parent: int, make: Any) -> int:
        """start_creating + end_creating: `make(directory, name)` puts the node in."""
        kernel = ctx.kernel
        if parent and is_err_or_null(parent):
            return parent
        name = ctx.mem.read_cstr(name_ptr, _NAME_MAX).decode("utf-8", "replace") if name_ptr else ""
        where = self.parent(parent)
        if where is None:
            return err_ptr(errno.ENOENT)
        who = getattr(ctx.module, "name", None)
        old = where.child(name)
        if old is not None:
            parent_name = where.name if parent else "/"
            if isinstance(old, Directory):
                kernel.log.emit(KERN_ERR, f"debugfs: Directory '{name}' with parent '{parent_name}' "
                                          "already present!", who)
            else:
                kernel.log.emit(KERN_ERR, f"debugfs: File '{name}' in directory '{parent_name}' "
                                          "already present!", who)
            return err_ptr(errno.EEXIST)
        try:
            node = make(where, name)
        except KernelError as exc:
            return err_ptr(exc.errno)
        handle = kernel.slab.alloc(DENTRY_SIZE, None, zero=True)
        if not handle:
            file_tree(kernel).remove_now(node)
            return err_ptr(errno.ENOMEM)
        self.nodes[handle], self.handles[node] = node, handle
        self.registry.add(node, f"debugfs {'directory' if isinstance(node, Directory) else 'file'} "
                                f"{node.path}", owner=ctx.module, address=handle,
                          points_to=node.data or (), data=node, on_leftover=self._leftover)
        return handle

    def forget(self, nodes: list[Node]) -> None:
        """The dentries of removed nodes go (after any drain: a running
        operation's debugfs_file_put still names its dentry)."""
        for n in nodes:
            handle = self.handles.pop(n, 0)
            if handle:
                self.nodes.pop(handle, None)
                self.kernel.slab.free(handle, None)

    def remove(self, handle: int) -> Any:
        node = self.nodes.get(handle)
        if node is None or node.removed:
            return None
        tree = file_tree(self.kernel)
        nodes = list(tree.walk(node))
        for n in nodes:
            self.registry.remove(n)
        if not any(n.active for n in nodes):
            tree.remove_now(node)
            self.forget(nodes)
            return None

        async def removing() -> None:
            await tree.remove(node)
            self.forget(nodes)
        return removing()

    def _leftover(self, entry: Any) -> None:
        node: Node = entry.data
        nodes = list(file_tree(self.kernel).walk(node))
        if not node.removed:
            file_tree(self.kernel).remove_now(node)
        for n in nodes:
            self.registry.remove(n)
        self.forget(nodes)


def debugfs(kernel: "Kernel") -> DebugFS:
    return kernel.subsystem(DebugFS)


def create_file(ctx: Any, name: int, mode: int, parent: int, ops: FileOps, data: int,
                points_to: tuple[int, ...] = ()) -> int:
    """A debugfs file of `ops`, its inode's i_private `data`."""
    def make(where: Directory, text: str) -> Node:
        node = file_tree(ctx.kernel).add(where, text, ops, mode=mode & 0o7777, owner=ctx.module,
                                         removal=DEBUGFS, data=points_to)
        node.i_private = data
        return node
    return debugfs(ctx.kernel).create(ctx, name, parent, make)


@export("debugfs_create_dir", "struct dentry *debugfs_create_dir(const char *name, struct dentry *parent)",
        nargs=2, gpl=True)
def debugfs_create_dir(ctx: Any, name: int, parent: int) -> int:
    return debugfs(ctx.kernel).create(
        ctx, name, parent,
        lambda where, text: file_tree(ctx.kernel).mkdir(where, text, mode=0o755, owner=ctx.module,
                                                        removal=DEBUGFS))


@export("debugfs_remove", "void debugfs_remove(struct dentry *dentry)", nargs=1, gpl=True)
def debugfs_remove(ctx: Any, dentry: int) -> Any:
    if is_err_or_null(dentry):
        return 0
    return waiting(debugfs(ctx.kernel).remove(dentry))


@export("debugfs_lookup", "struct dentry *debugfs_lookup(const char *name, struct dentry *parent)",
        nargs=2, gpl=True)
def debugfs_lookup(ctx: Any, name: int, parent: int) -> int:
    fs = debugfs(ctx.kernel)
    where = fs.parent(0 if is_err_or_null(parent) else parent)
    if where is None or not name:
        return 0
    node = where.child(ctx.mem.read_cstr(name, _NAME_MAX).decode("utf-8", "replace"))
    return fs.handles.get(node, 0) if node is not None else 0


@export("debugfs_lookup_and_remove", "void debugfs_lookup_and_remove(const char *name, struct dentry "
        "*parent)", nargs=2, gpl=True)
def debugfs_lookup_and_remove(ctx: Any, name: int, parent: int) -> Any:
    dentry = debugfs_lookup(ctx, name, parent)
    return debugfs_remove(ctx, dentry) if dentry else 0


@export("debugfs_file_get", "int debugfs_file_get(struct dentry *dentry)", nargs=1, gpl=True)
def debugfs_file_get(ctx: Any, dentry: int) -> int:
    node = debugfs(ctx.kernel).nodes.get(dentry)
    if node is None or node.removed:
        return -errno.EIO
    node.get_active()
    return 0


@export("debugfs_file_put", "void debugfs_file_put(struct dentry *dentry)", nargs=1, gpl=True)
def debugfs_file_put(ctx: Any, dentry: int) -> None:
    node = debugfs(ctx.kernel).nodes.get(dentry)
    if node is not None and node.active:
        node.put_active()
