"""Files the kernel opens for a module (fs/open.c): `filp_open` and `filp_close`.

A module opens a file by path from kernel code: target_core_mod's init
checks that its database root `/etc/target` is a directory, a backing-file
driver opens what its configuration names.  Linux resolves the path from
the root of the caller's mount namespace and returns a `struct file *`, or
ERR_PTR(-errno) as `open(2)` would fail.  kloader walks the same tree its
clients open (kloaderd/fs/tree.py: /proc, /sys, /sys/kernel/debug, /dev)
through the same `FileTable.open_file` (fs/file.py), so a file opened here
runs its node's open (a driver's `.open` for a device node) and holds the
same references as one a client opens; `filp_close` calls `f_op->flush`,
drops the reference and, for the last one, runs `__fput` (`.release`).

What differs from Linux, on purpose (docs/kernel-api.md):
* the root filesystem is kloader's tree and nothing else: a path outside
  its pseudo filesystems (`/etc/target`, `/lib/firmware/x`) does not exist,
  so the answer is -ENOENT, as on a machine whose root has no such file;
* a relative path is resolved from `/` (a kernel thread's working
  directory; the loading process's own is not modelled);
* nothing can be created: O_CREAT of a name that does not exist is -EACCES
  in a directory of the tree (procfs and kernfs have no `->create`; for
  devtmpfs's `/dev`, where Linux would create a file, this is a boundary),
  -ENOENT where the directory itself does not exist; O_TMPFILE is
  -EOPNOTSUPP (none of these filesystems has `->tmpfile`);
* O_PATH is not emulated: -EOPNOTSUPP with a kernel-log line saying so;
* the opener is root whose DAC override is not emulated (fs/tree.py): the
  mode bits decide, as for a privileged client;
* `fput`, `get_file`'s reference and `kernel_read`/`kernel_write` on such a
  file are not emulated: a file is closed by `filp_close` alone (one whose
  count a module raised stays open and is reported at its unload).

A file a module leaves open when it is freed is reported (``tgt: leaked
registration: open file /dev/x (filp_close)``) and dropped without calling
its `.release`.
"""

from __future__ import annotations

import errno
import posixpath
from typing import TYPE_CHECKING, Any

from ..errors import KernelError
from ..kernel.api import export
from ..kernel.printk import KERN_ERR, KERN_WARNING
from .file import FILE, FOPS, INODE, FileTable, OpenFile, signed32
from .super import err_ptr
from .tree import PATH_MAX, Directory, Symlink, file_tree

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel
    from ..kernel.registry import Registration

STRUCTS = (FILE, INODE, FOPS)    # read at the running kernel's offsets

# x86-64's open flags (include/uapi/asm-generic/fcntl.h), the kernel ABI.
O_ACCMODE = 0o3
O_WRONLY = 0o1
O_CREAT = 0o100
O_EXCL = 0o200
O_NOCTTY = 0o400
O_TRUNC = 0o1000
O_APPEND = 0o2000
O_NONBLOCK = 0o4000
O_DSYNC = 0o10000
FASYNC = 0o20000
O_DIRECT = 0o40000
O_LARGEFILE = 0o100000
O_DIRECTORY = 0o200000
O_NOFOLLOW = 0o400000
O_NOATIME = 0o1000000
O_CLOEXEC = 0o2000000
O_SYNC = 0o4000000 | O_DSYNC
O_PATH = 0o10000000
__O_TMPFILE = 0o20000000
O_TMPFILE = __O_TMPFILE | O_DIRECTORY
VALID_OPEN_FLAGS = (O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK | O_DSYNC
                    | FASYNC | O_DIRECT | O_LARGEFILE | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC
                    | O_SYNC | O_PATH | O_TMPFILE)
O_PATH_FLAGS = O_DIRECTORY | O_NOFOLLOW | O_PATH | O_CLOEXEC


class KernelFiles:
    """The files modules opened with filp_open, by their `struct file`."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.registry = kernel.registrations.registry("file")
        self.files: dict[int, OpenFile] = {}

    def add(self, file: OpenFile, opener: Any) -> None:
        self.files[file.address] = file
        self.registry.add(file.address, f"open file {file.path} (filp_close)", owner=opener,
                          data=file, on_leftover=self._left)

    def forget(self, file: OpenFile) -> None:
        self.files.pop(file.address, None)
        self.registry.remove(file.address)

    def _left(self, entry: "Registration") -> None:
        """Its opener was freed with it open: the references go, its
        `.release` does not run (the module that would close it is gone)."""
        file: OpenFile = entry.data
        self.files.pop(file.address, None)
        file.released = True
        file.table._drop(file)


def kernel_files(kernel: "Kernel") -> KernelFiles:
    return kernel.subsystem(KernelFiles)


def _resolve(name: str) -> str:
    """The absolute path a kernel-side name means (relative: from `/`)."""
    return posixpath.join("/", name)


def _check_flags(kernel: "Kernel", flags: int) -> int:
    """build_open_flags' refusals: 0, or the negative errno."""
    if flags & __O_TMPFILE:
        if flags & (__O_TMPFILE | O_DIRECTORY | O_CREAT) != O_TMPFILE or not flags & O_ACCMODE:
            return -errno.EINVAL  # O_DIRECTORY without O_CREAT, and opened for writing
    elif flags & (O_DIRECTORY | O_CREAT) == O_DIRECTORY | O_CREAT:
        profile = kernel.profile
        if profile is None or profile.version >= (6, 4):
            return -errno.EINVAL  # refused since Linux 6.4 (6.1 opens the directory, or -ENOTDIR)
    if flags & O_PATH and flags & ~O_PATH_FLAGS:
        return -errno.EINVAL
    return 0


def _lookup(kernel: "Kernel", path: str, flags: int) -> Any:
    """do_filp_open's walk and do_open's checks on what it found: the node,
    or the negative errno Linux answers."""
    tree = file_tree(kernel)
    creating = bool(flags & O_CREAT)
    follow = not flags & O_NOFOLLOW and not (creating and flags & O_EXCL)
    try:
        node = tree.lookup(path, follow=follow)
    except KernelError as exc:
        if exc.errno != errno.ENOENT or not creating:
            return -exc.errno
        try:                      # the last name is missing: may it be made?
            parent = tree.lookup(posixpath.dirname(path.rstrip("/")) or "/")
        except KernelError as inner:
            return -inner.errno
        return -errno.EACCES if isinstance(parent, Directory) else -errno.ENOTDIR
    if creating and flags & O_EXCL:
        return -errno.EEXIST
    if isinstance(node, Symlink):
        return -errno.ELOOP       # O_NOFOLLOW on a symlink
    is_dir = isinstance(node, Directory)
    if flags & O_TMPFILE == O_TMPFILE:
        return -errno.EOPNOTSUPP if is_dir else -errno.ENOTDIR
    if creating and is_dir:
        return -errno.EISDIR
    if flags & O_DIRECTORY and not is_dir:
        return -errno.ENOTDIR
    if is_dir and flags & O_TRUNC:
        return -errno.EISDIR
    accmode = flags & O_ACCMODE
    # ACC_MODE: 3 (no FMODE_READ or FMODE_WRITE) still asks for both; O_TRUNC asks for MAY_WRITE.
    if accmode == O_ACCMODE or flags & O_TRUNC and not accmode:
        try:
            tree.may_open(node, accmode == O_ACCMODE, True, True, path)
        except KernelError as exc:
            return -exc.errno
    return node


async def _filp_open(ctx: Any, path: str, flags: int) -> int:
    kernel = ctx.kernel
    node = _lookup(kernel, path, flags)
    if isinstance(node, int):
        return err_ptr(node)
    opener = ctx.module
    label = f"filp_open by {getattr(opener, 'name', 'the kernel')}"
    table = FileTable(kernel, label, ctx.task.comm, privileged=True)
    try:
        file = await table.open_file(node.path, flags)
    except KernelError as exc:
        return err_ptr(-exc.errno)
    count = kernel.layouts[FILE].f_count
    if count is not None:
        kernel.mem.write_u64(file.address + count, 1)
    kernel_files(kernel).add(file, opener)
    return file.address


@export("filp_open", "struct file *filp_open(const char *filename, int flags, umode_t mode)", nargs=3)
def filp_open(ctx: Any, filename: int, flags: int, mode: int) -> Any:
    """A `struct file *` for `filename`, or ERR_PTR(-errno) as open(2) fails."""
    raw = ctx.mem.read_cstr(filename, PATH_MAX)
    if len(raw) >= PATH_MAX:
        return err_ptr(-errno.ENAMETOOLONG)           # getname_kernel
    if not raw:
        return err_ptr(-errno.ENOENT)
    flags = signed32(flags) & VALID_OPEN_FLAGS
    refused = _check_flags(ctx.kernel, flags)
    if refused:
        return err_ptr(refused)
    if flags & O_PATH:
        kernel = ctx.kernel
        kernel.log.emit(KERN_WARNING, f"kloader: filp_open({raw.decode(errors='replace')!r}, O_PATH) "
                                      "is not emulated", getattr(ctx.module, "name", None))
        return err_ptr(-errno.EOPNOTSUPP)
    return _filp_open(ctx, _resolve(raw.decode(errors="surrogateescape")), flags)


async def _close(ctx: Any, file: OpenFile, owner: int) -> int:
    """filp_flush, then fput: the last reference runs __fput."""
    kernel = ctx.kernel
    retval = 0
    flush = file.fop("flush", "filp_close")
    if flush:
        retval = signed32(await file.call(flush, file.address, owner, via="filp_close"))
    count = kernel.layouts[FILE].f_count
    if count is not None:
        left = kernel.mem.read_s64(file.address + count) - 1
        kernel.mem.write_u64(file.address + count, left & ((1 << 64) - 1))
        if left > 0:
            return retval         # a get_file() reference keeps it open
    kernel_files(kernel).forget(file)
    await file.table.fput(file)
    return retval & 0xFFFFFFFF


@export("filp_close", "int filp_close(struct file *filp, fl_owner_t id)", nargs=2)
def filp_close(ctx: Any, filp: int, owner: int) -> Any:
    """Close what filp_open returned; f_op->flush's result (0 without one)."""
    kernel = ctx.kernel
    file = kernel_files(kernel).files.get(filp)
    if file is None:
        raise KernelError(errno.EBADF, f"filp_close: {filp:#x} is not a file filp_open returned "
                                       "(or it was closed already)")
    count = kernel.layouts[FILE].f_count
    if count is not None and kernel.mem.read_s64(filp + count) <= 0:
        kernel.log.emit(KERN_ERR, "VFS: Close: file count is 0", getattr(ctx.module, "name", None))
        return 0
    return _close(ctx, file, owner)
