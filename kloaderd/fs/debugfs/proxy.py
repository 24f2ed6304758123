"""debugfs files of a module's own `struct file_operations` (Linux's
`debugfs_create_file` and its `full_proxy_fops`).

Open is `full_proxy_open`: the file must still be there, then `fops_get` —
a reference on `fops->owner` for as long as the file is open, refused with
ENXIO once that module is going — then the module's `.open`.  Every later
call holds the node active (`debugfs_file_get`), so `debugfs_remove` waits
for it, and fails with EIO once the file is removed: the module may be
gone, its code is not called.  `debugfs_create_file_unsafe` files have the
same protection here (Linux leaves it to the module's own
`debugfs_file_get`).

The operations are read at the running kernel's offsets of `struct
file_operations` (kloaderd/kernel/layouts.py).
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ..file import FILE, FOPS, INODE, Fops, OpenFile, call_open, get_owner
from ..tree import FileOps
from .inode import create_file

STRUCTS = (FILE, FOPS, INODE)


class ProxyFops(Fops):
    async def open(self, file: OpenFile) -> None:
        kernel = file.kernel
        get_owner(kernel, file, kernel.mem.read_u64(self.fops + kernel.layouts[FOPS].owner), "fops_get", errno.ENXIO)
        await call_open(kernel, file, self.fops, file.comm)


@export("debugfs_create_file", "struct dentry *debugfs_create_file(const char *name, umode_t mode, "
        "struct dentry *parent, void *data, const struct file_operations *fops)", nargs=5, gpl=True)
def debugfs_create_file(ctx: Any, name: int, mode: int, parent: int, data: int, fops: int) -> int:
    return create_file(ctx, name, mode, parent, _ops(fops), data, (fops,))


def _ops(fops: int) -> FileOps:
    """NULL fops is debugfs_noop_file_operations: a file nothing can be done with."""
    return ProxyFops(fops) if fops else FileOps()


@export("debugfs_create_file_unsafe", "struct dentry *debugfs_create_file_unsafe(const char *name, "
        "umode_t mode, struct dentry *parent, void *data, const struct file_operations *fops)", nargs=5,
        gpl=True)
def debugfs_create_file_unsafe(ctx: Any, name: int, mode: int, parent: int, data: int, fops: int) -> int:
    return create_file(ctx, name, mode, parent, _ops(fops), data, (fops,))
