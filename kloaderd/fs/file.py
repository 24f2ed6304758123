"""Open files: `struct file`, `struct inode`, device nodes and the system
calls a client makes on them (open, read, write, ioctl, lseek, close).

What Linux's fs/open.c, fs/read_write.c, fs/ioctl.c and fs/file_table.c do
for a character device, in their order: `open` finds the node, allocates a
`struct file`, and runs the inode's default file operations (`chrdev_open`,
fs/char_dev.py), which take the references on the driver's module(s) and
call the driver's `.open`; `read`/`write`/`ioctl`/`lseek` call through
`file->f_op`; the last close (`__fput`) calls `.release` and only then drops
the references.  A client connection is the process: its descriptors are
closed, `.release` run, when it disconnects or dies.

Differences from Linux, on purpose:
* device nodes are a flat table of paths (devtmpfs for misc devices plus
  what `mknod` creates), not a directory tree; `mknod` needs no privilege
  beyond the daemon's;
* one `struct inode` per node, allocated when the node is made;
* `read`/`write` pass `&file->f_pos` as the position pointer (Linux passes a
  copy and writes it back), so a driver sees the same value either way;
* a system call moves at most `max_io` bytes and a client holds at most
  `max_open_files` descriptors (KernelOptions; docs/reliability.md).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import KernelError
from ..kernel.memory import GuestFault
from ..kernel.module import OwnerKind, RefOwner
from ..mm.usercopy import MAX_RW_COUNT, user_space

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel

# struct file (include/linux/fs.h, Linux 6.6 order; kloader's header asserts these)
FILE_SIZE = 232
F_MODE = 20
F_POS = 64
F_FLAGS = 72
F_INODE = 168
F_OP = 176
F_PRIVATE_DATA = 200
# struct inode: the fields modules read (i_rdev for iminor/imajor, i_private)
INODE_SIZE = 600
I_MODE = 0
I_SB = 40
I_INO = 64
I_RDEV = 76
I_CDEV = 576
I_PRIVATE = 584
# struct file_operations (Linux 6.6)
FOP_OWNER = 0
FOP_LLSEEK = 8
FOP_READ = 16
FOP_WRITE = 24
FOP_UNLOCKED_IOCTL = 72
FOP_OPEN = 104
FOP_RELEASE = 120

FMODE_READ = 0x1
FMODE_WRITE = 0x2
FMODE_LSEEK = 0x4
FMODE_PREAD = 0x8
FMODE_PWRITE = 0x10
FMODE_CAN_READ = 1 << 17
FMODE_CAN_WRITE = 1 << 18
O_LARGEFILE = 0o100000
S_IFCHR = 0o020000

MINORBITS = 20
MINORMASK = (1 << MINORBITS) - 1
FIRST_FD = 3                  # 0-2 are a process's standard streams
_MASK64 = (1 << 64) - 1


def MKDEV(major: int, minor: int) -> int:
    return (major << MINORBITS) | minor


def MAJOR(dev: int) -> int:
    return dev >> MINORBITS


def MINOR(dev: int) -> int:
    return dev & MINORMASK


def signed64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


def signed32(value: int) -> int:
    """An `int` a driver returned in %eax, sign-extended."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def check_return(value: int, what: str) -> int:
    """A `long` a driver returned: negative is an errno for the caller."""
    value = signed64(value)
    if -4095 <= value < 0:
        raise KernelError(-value, f"{what}: {os.strerror(-value)}")
    return value


@dataclass(eq=False)
class DeviceNode:
    """A character device node: what devtmpfs or mknod made at `path`."""
    path: str
    dev: int
    inode: int                     # its struct inode in kernel memory
    made_by: str                   # "misc" (removed by misc_deregister) or "mknod"
    opens: int = 0
    removed: bool = False


@dataclass(eq=False)
class OpenFile:
    """One `struct file` and the references it holds until its last close."""
    node: DeviceNode
    address: int                   # the struct file in kernel memory
    owner: RefOwner                # who the module references of this file belong to
    pinned: list[Any] = field(default_factory=list)   # modules it holds a reference on


class DeviceNodes:
    """/dev: path → device number, with a struct inode per node."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.nodes: dict[str, DeviceNode] = {}
        self._ino = 1000

    def mknod(self, path: str, dev: int, made_by: str = "mknod") -> DeviceNode:
        if not path.startswith("/") or "\0" in path or len(path) > 4095:
            raise KernelError(errno.EINVAL, f"mknod: {path!r} is not an absolute path")
        if path in self.nodes:
            raise KernelError(errno.EEXIST, f"mknod: {path}: File exists")
        kernel = self.kernel
        inode = kernel.slab.alloc(INODE_SIZE, None, zero=True)
        if not inode:
            raise KernelError(errno.ENOMEM, f"mknod: {path}: Cannot allocate memory")
        self._ino += 1
        kernel.mem.write_u16(inode + I_MODE, S_IFCHR | 0o600)
        kernel.mem.write_u64(inode + I_INO, self._ino)
        kernel.mem.write_u32(inode + I_RDEV, dev)
        node = DeviceNode(path, dev, inode, made_by)
        self.nodes[path] = node
        return node

    def remove(self, path: str) -> None:
        node = self.nodes.pop(path, None)
        if node is not None:
            node.removed = True
            self._free_if_unused(node)

    def _free_if_unused(self, node: DeviceNode) -> None:
        if node.removed and not node.opens:
            self.kernel.slab.free(node.inode, None)

    def lookup(self, path: str) -> DeviceNode:
        node = self.nodes.get(path)
        if node is None:
            raise KernelError(errno.ENOENT, f"open: {path}: No such file or directory")
        return node

    def list(self) -> list[dict[str, Any]]:
        return [{"path": n.path, "major": MAJOR(n.dev), "minor": MINOR(n.dev), "made_by": n.made_by}
                for n in sorted(self.nodes.values(), key=lambda n: n.path)]


class FileTable:
    """A client's descriptors: what a process's files_struct is."""

    def __init__(self, kernel: "Kernel", label: str, comm: str) -> None:
        self.kernel = kernel
        self.label = label
        self.comm = comm
        self.files: dict[int, OpenFile] = {}

    def get(self, fd: int) -> OpenFile:
        file = self.files.get(fd)
        if file is None:
            raise KernelError(errno.EBADF, f"fd {fd}: Bad file descriptor")
        return file

    def _free_fd(self) -> int:
        limit = self.kernel.options.max_open_files
        if len(self.files) >= limit:
            raise KernelError(errno.EMFILE, f"open: this client already has {limit} files open "
                                            "(Too many open files; max_open_files)")
        fd = FIRST_FD
        while fd in self.files:
            fd += 1
        return fd

    # -- the system calls ----------------------------------------------------------

    async def open(self, path: str, flags: int) -> int:
        kernel = self.kernel
        node = kernel.subsystem(DeviceNodes).lookup(path)
        fd = self._free_fd()
        address = kernel.slab.alloc(FILE_SIZE, None, zero=True)
        if not address:
            raise KernelError(errno.ENOMEM, f"open: {path}: Cannot allocate memory")
        accmode = flags & os.O_ACCMODE
        mode = {os.O_RDONLY: FMODE_READ, os.O_WRONLY: FMODE_WRITE,
                os.O_RDWR: FMODE_READ | FMODE_WRITE}.get(accmode, 0)
        mem = kernel.mem
        # "normally all 3 are set; ->open() can clear them if needed"
        mem.write_u32(address + F_MODE, mode | FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE)
        mem.write_u32(address + F_FLAGS, (flags | O_LARGEFILE) & 0xFFFFFFFF)
        mem.write_u64(address + F_INODE, node.inode)
        owner = RefOwner(OwnerKind.FILE, f"open file {path} ({self.label})")
        file = OpenFile(node, address, owner)
        node.opens += 1
        self.files[fd] = file           # reserved before the driver runs: no fd is handed out twice
        from .char_dev import chrdev_open
        try:
            try:
                await chrdev_open(kernel, file, self.comm)
            except GuestFault as fault:        # a registration pointing into freed memory
                raise kernel.sanitizer.kernel_fault(fault, "chrdev_open", self.comm) from None
        except BaseException:
            del self.files[fd]
            self._drop(file)
            raise
        # do_dentry_open: what the final file operations can do
        mode = mem.read_u32(address + F_MODE)
        if mode & FMODE_READ and self._fop(file, FOP_READ, "do_dentry_open"):
            mode |= FMODE_CAN_READ
        if mode & FMODE_WRITE and self._fop(file, FOP_WRITE, "do_dentry_open"):
            mode |= FMODE_CAN_WRITE
        mem.write_u32(address + F_MODE, mode)
        return fd

    def _fop(self, file: OpenFile, offset: int, where: str) -> int:
        """file->f_op->X.  The operations live in the driver's module: if it
        was freed under the open file, this read is the oops."""
        fops = self.kernel.mem.read_u64(file.address + F_OP)
        if not fops:
            return 0
        try:
            return self.kernel.mem.read_u64(fops + offset)
        except GuestFault as fault:
            raise self.kernel.sanitizer.kernel_fault(fault, where, self.comm) from None

    async def _call(self, fn: int, *args: int, via: str) -> int:
        return await self.kernel.sanitizer.call_pointer(fn, *args, via=via, comm=self.comm)

    def _opened_for(self, fd: int, wanted: int, able: int, verb: str, doing: str, done: str) -> OpenFile:
        """vfs_read's and vfs_write's first checks: EBADF when the file was not
        opened for it, EINVAL when its driver has no method for it."""
        file = self.get(fd)
        mode = self.kernel.mem.read_u32(file.address + F_MODE)
        if not mode & wanted:
            raise KernelError(errno.EBADF, f"{verb}: fd {fd} is not open for {doing}")
        if not mode & able:
            raise KernelError(errno.EINVAL, f"{verb}: {file.node.path} cannot be {done} (its driver has no .{verb})")
        return file

    async def read(self, fd: int, size: int) -> bytes:
        file = self._opened_for(fd, FMODE_READ, FMODE_CAN_READ, "read", "reading", "read")
        size = _io_size(self.kernel, size, "read")
        with user_space(self.kernel).buffer(size) as buf:
            got = check_return(await self._call(self._fop(file, FOP_READ, "vfs_read"), file.address, buf.address,
                                                size, file.address + F_POS, via="vfs_read"),
                               f"read {file.node.path}")
            return bytes(buf.data[:min(got, size)])

    async def write(self, fd: int, data: bytes) -> int:
        file = self._opened_for(fd, FMODE_WRITE, FMODE_CAN_WRITE, "write", "writing", "written")
        _io_size(self.kernel, len(data), "write")
        with user_space(self.kernel).buffer(data) as buf:
            return check_return(await self._call(self._fop(file, FOP_WRITE, "vfs_write"), file.address, buf.address,
                                                 len(data), file.address + F_POS, via="vfs_write"),
                                f"write {file.node.path}")

    async def ioctl(self, fd: int, request: int, arg: int | bytes) -> tuple[int, bytes | None]:
        """`arg` is passed as is, or (bytes) as a pointer to a user buffer holding
        them, whose contents after the call are returned."""
        file = self.get(fd)
        fn = self._fop(file, FOP_UNLOCKED_IOCTL, "do_vfs_ioctl")
        if not fn:
            raise KernelError(errno.ENOTTY, f"ioctl {file.node.path}: Inappropriate ioctl for device")
        request &= 0xFFFFFFFF
        if isinstance(arg, bytes):
            _io_size(self.kernel, len(arg), "ioctl")
            with user_space(self.kernel).buffer(arg) as buf:
                ret = await self._call(fn, file.address, request, buf.address, via="do_vfs_ioctl")
                return check_return(ret, f"ioctl {file.node.path}"), bytes(buf.data)
        ret = await self._call(fn, file.address, request, arg & _MASK64, via="do_vfs_ioctl")
        return check_return(ret, f"ioctl {file.node.path}"), None

    async def lseek(self, fd: int, offset: int, whence: int) -> int:
        file = self.get(fd)
        if whence not in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END):
            raise KernelError(errno.EINVAL, f"lseek: whence {whence} is not SEEK_SET, SEEK_CUR or SEEK_END")
        llseek = self._fop(file, FOP_LLSEEK, "vfs_llseek")
        if not llseek or not self.kernel.mem.read_u32(file.address + F_MODE) & FMODE_LSEEK:
            raise KernelError(errno.ESPIPE, f"lseek {file.node.path}: Illegal seek")
        ret = await self._call(llseek, file.address, offset & _MASK64, whence, via="vfs_llseek")
        return check_return(ret, f"lseek {file.node.path}")

    async def close(self, fd: int) -> None:
        file = self.get(fd)
        del self.files[fd]
        await self._fput(file)

    async def close_all(self) -> None:
        """The process exits: every descriptor is closed, newest last."""
        while self.files:
            fd = min(self.files)
            await self._fput(self.files.pop(fd))

    async def _fput(self, file: OpenFile) -> None:
        """__fput: .release, then the references go (cdev_put, fops_put)."""
        try:
            release = self._fop(file, FOP_RELEASE, "__fput")
            if release:
                await self._call(release, file.node.inode, file.address, via="__fput")
        except KernelError:
            pass                       # an oopsing .release was logged; the file goes anyway
        finally:
            self._drop(file)

    def _drop(self, file: OpenFile) -> None:
        kernel = self.kernel
        for mod in file.pinned:
            if mod.put(file.owner):
                kernel.notify()         # a removal waiting with --wait reads the count again
        file.pinned.clear()
        kernel.slab.free(file.address, None)
        file.node.opens -= 1
        kernel.subsystem(DeviceNodes)._free_if_unused(file.node)


def _io_size(kernel: "Kernel", size: int, what: str) -> int:
    limit = kernel.options.max_io
    if size < 0:
        raise KernelError(errno.EINVAL, f"{what}: negative size {size}")
    if size > limit:
        raise KernelError(errno.EINVAL, f"{what}: {size} bytes is more than kloader's "
                                        f"limit of {limit} bytes per call (max_io)")
    return min(size, MAX_RW_COUNT)
