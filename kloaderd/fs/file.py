"""Open files: `struct file`, `struct inode`, device nodes and the system
calls a client makes on them (open, read, write, ioctl, lseek, close).

What Linux's fs/open.c, fs/read_write.c, fs/ioctl.c and fs/file_table.c do,
in their order, for any file of the kernel's tree (kloaderd/fs/tree.py):
`open` walks the path, checks the mode (may_open), allocates a `struct
file`, and runs the node's `FileOps.open` — for a character device
`chrdev_open` (fs/char_dev.py), which takes the references on the driver's
module(s) and calls the driver's `.open`; `read`/`write`/`ioctl`/`lseek`
call the node's `FileOps` (for a driver, through `file->f_op`: `Fops`),
each under an active reference on the node so that a removal waits for
them; the last close (`__fput`) calls `.release` and only then drops the
references.  A client connection is the process: its descriptors are
closed, `.release` run, when it disconnects or dies.

Differences from Linux, on purpose:
* device nodes live only under /dev (what devtmpfs makes for misc devices
  plus what `mknod` creates, parents made as needed); `mknod` needs no
  privilege beyond the daemon's;
* one `struct inode` per node, allocated when a file of it is first opened;
* `read`/`write` pass `&file->f_pos` as the position pointer (Linux passes a
  copy and writes it back), so a driver sees the same value either way;
* a system call moves at most `max_io` bytes and a client holds at most
  `max_open_files` descriptors (KernelOptions; docs/reliability.md).
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any

import trio

from ..errors import KernelError
from ..kernel.layouts import struct
from ..kernel.memory import GuestFault
from ..kernel.module import OwnerKind, RefOwner
from ..mm.usercopy import MAX_RW_COUNT, user_space
from .tree import Directory, FileOps, Node, file_tree

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel

# What the VFS reads of the structures a driver sees (kloaderd/kernel/layouts.py:
# each kernel's own offsets).  kloader's header declares them in Linux 6.6's order.
# f_count is 6.1's to 6.12's atomic_long_t (6.13 made it a file_ref_t f_ref).
FILE = struct("struct file", "linux/fs.h", "f_mode", "f_pos", "f_flags", "f_inode", "f_op",
              "private_data", optional=("f_count",))
INODE = struct("struct inode", "linux/fs.h", "i_mode", "i_op", "i_sb", "i_ino", "i_nlink", "i_rdev",
               "i_size", "i_fop", "i_cdev", "i_private", "i_blkbits", "i_count", "i_mapping", "i_data",
               # The timestamps: 6.1's timespec64s, 6.6's __i_ctime, 6.11's split seconds and nanoseconds.
               optional=("i_atime", "i_mtime", "i_ctime", "__i_ctime", "i_atime_sec", "i_atime_nsec",
                         "i_mtime_sec", "i_mtime_nsec", "i_ctime_sec", "i_ctime_nsec"))
FOPS = struct("struct file_operations", "linux/fs.h", "owner", "llseek", "read", "write",
              "unlocked_ioctl", "open", "flush", "release")
STRUCTS = (FILE, INODE, FOPS)

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
READ_CHUNK = 1 << 16          # what read_file asks for at a time, as cat's buffer
FIRST_FD = 3                  # 0-2 are a process's standard streams
_MASK64 = (1 << 64) - 1


def file_field(kernel: "Kernel", file: int, member: str) -> int:
    """The address of `file->member` in the struct file at `file`."""
    return file + getattr(kernel.layouts[FILE], member)


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


class OpenFile:
    """One `struct file` and the references it holds until its last close."""

    def __init__(self, node: Node, address: int, owner: RefOwner, table: "FileTable") -> None:
        self.node = node
        self.address = address         # the struct file in kernel memory
        self.owner = owner             # who the module references of this file belong to
        self.table = table
        self.pinned: list[Any] = []    # modules it holds a reference on
        self.state: Any = None         # the node's FileOps keep theirs here
        self.released = False          # .release has run (at a draining removal)

    @property
    def kernel(self) -> "Kernel":
        return self.table.kernel

    @property
    def comm(self) -> str:
        return self.table.comm

    @property
    def path(self) -> str:
        return self.node.path

    def field(self, member: str) -> int:
        """The address of `file->member`, at this kernel's offset."""
        return file_field(self.kernel, self.address, member)

    @property
    def pos(self) -> int:
        return self.kernel.mem.read_s64(self.field("f_pos"))

    @pos.setter
    def pos(self, value: int) -> None:
        self.kernel.mem.write_u64(self.field("f_pos"), value & _MASK64)

    @property
    def mode(self) -> int:
        return self.kernel.mem.read_u32(self.field("f_mode"))

    @mode.setter
    def mode(self, value: int) -> None:
        self.kernel.mem.write_u32(self.field("f_mode"), value)

    async def call(self, fn: int, *args: int, via: str, check: bool = True) -> int:
        """Module code through a function pointer, on behalf of this file;
        `check=False` for a call the node's removal waits for (procfs,
        kernfs): no reference is needed, so it is no Golden Rule entry."""
        return await self.kernel.sanitizer.call_pointer(fn, *args, via=via, comm=self.comm, check=check)

    def fop(self, member: str, where: str) -> int:
        """file->f_op->member.  The operations live in the driver's module: if
        it was freed under the open file, this read is the oops."""
        mem = self.kernel.mem
        fops = mem.read_u64(self.field("f_op"))
        if not fops:
            return 0
        try:
            return mem.read_u64(fops + getattr(self.kernel.layouts[FOPS], member))
        except GuestFault as fault:
            raise self.kernel.sanitizer.kernel_fault(fault, where, self.comm) from None

    async def release_at_removal(self) -> None:
        """The node was removed under this open file: its .release runs now
        (proc_entry_rundown's close_pdeo, kernfs_drain_open_files)."""
        if not self.released:
            self.released = True
            try:
                await self.node.ops.release(self)
            except KernelError:
                pass


class FileTable:
    """A client's descriptors: what a process's files_struct is.  A
    privileged client is the files' owner (uid 0), others are "other"."""

    def __init__(self, kernel: "Kernel", label: str, comm: str, privileged: bool = True) -> None:
        self.kernel = kernel
        self.label = label
        self.comm = comm
        self.privileged = privileged
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
        fd = self._free_fd()
        file = await self.open_file(path, flags)
        self.files[fd] = file
        return fd

    async def open_file(self, path: str, flags: int) -> OpenFile:
        """do_filp_open: a `struct file` for `path`, not yet in the table
        (`read_file`/`write_file` use one for a single call)."""
        kernel = self.kernel
        tree = file_tree(kernel)
        node = tree.lookup(path)
        accmode = flags & os.O_ACCMODE
        mode = {os.O_RDONLY: FMODE_READ, os.O_WRONLY: FMODE_WRITE,
                os.O_RDWR: FMODE_READ | FMODE_WRITE}.get(accmode, 0)
        tree.may_open(node, bool(mode & FMODE_READ), bool(mode & FMODE_WRITE), self.privileged, path)
        inode = tree.ensure_inode(node)
        layout = kernel.layouts[FILE]
        address = kernel.slab.alloc(layout.size, None, zero=True)
        if not address:
            raise KernelError(errno.ENOMEM, f"open: {path}: Cannot allocate memory")
        mem = kernel.mem
        owner = RefOwner(OwnerKind.FILE, f"open file {node.path} ({self.label})")
        file = OpenFile(node, address, owner, self)
        # "normally all 3 are set; ->open() can clear them if needed"
        file.mode = mode | FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE
        mem.write_u32(address + layout.f_flags, (flags | O_LARGEFILE) & 0xFFFFFFFF)
        mem.write_u64(address + layout.f_inode, inode)
        node.files.add(file)          # before the driver runs: a removal meanwhile sees it
        try:
            await self._op(file, "open", node.ops.open(file))
        except BaseException:
            file.released = True
            self._drop(file)
            raise
        # do_dentry_open: what the final file operations can do
        mode = file.mode
        if mode & FMODE_READ and node.ops.can_read(file):
            mode |= FMODE_CAN_READ
        if mode & FMODE_WRITE and node.ops.can_write(file):
            mode |= FMODE_CAN_WRITE
        file.mode = mode
        return file

    async def _op(self, file: OpenFile, verb: str, call: Any) -> Any:
        """Run one file operation under an active reference on its node (so a
        removal waits for it), a fault in the kernel's own reads made an oops."""
        node = file.node
        try:
            if file.released and node.removal.drains:
                raise KernelError(node.removal.gone, f"{verb} {file.path}: removed "
                                                     f"({os.strerror(node.removal.gone)})")
            node.get_active()
        except BaseException:
            call.close()
            raise
        try:
            return await call
        except GuestFault as fault:        # a registration pointing into freed memory
            raise self.kernel.sanitizer.kernel_fault(fault, verb, self.comm) from None
        finally:
            node.put_active()

    def _opened_for(self, fd: int, wanted: int, able: int, verb: str, doing: str, done: str) -> OpenFile:
        """vfs_read's and vfs_write's first checks: EBADF when the file was not
        opened for it, EINVAL when its driver has no method for it."""
        file = self.get(fd)
        return self._check_mode(file, fd, wanted, able, verb, doing, done)

    def _check_mode(self, file: OpenFile, fd: int | str, wanted: int, able: int, verb: str, doing: str,
                    done: str) -> OpenFile:
        mode = file.mode
        if not mode & wanted:
            raise KernelError(errno.EBADF, f"{verb}: fd {fd} is not open for {doing}")
        if isinstance(file.node, Directory):
            raise KernelError(errno.EISDIR, f"{verb} {file.path}: Is a directory")
        if not mode & able:
            raise KernelError(errno.EINVAL, f"{verb}: {file.path} cannot be {done} (its driver has no .{verb})")
        return file

    async def read(self, fd: int, size: int) -> bytes:
        file = self._opened_for(fd, FMODE_READ, FMODE_CAN_READ, "read", "reading", "read")
        return await self.read_from(file, size)

    async def read_from(self, file: OpenFile, size: int) -> bytes:
        size = _io_size(self.kernel, size, "read")
        return await self._op(file, "read", file.node.ops.read(file, size))

    async def write(self, fd: int, data: bytes) -> int:
        file = self._opened_for(fd, FMODE_WRITE, FMODE_CAN_WRITE, "write", "writing", "written")
        return await self.write_to(file, data)

    async def write_to(self, file: OpenFile, data: bytes) -> int:
        _io_size(self.kernel, len(data), "write")
        return await self._op(file, "write", file.node.ops.write(file, data))

    async def ioctl(self, fd: int, request: int, arg: int | bytes) -> tuple[int, bytes | None]:
        """`arg` is passed as is, or (bytes) as a pointer to a user buffer holding
        them, whose contents after the call are returned."""
        file = self.get(fd)
        if isinstance(arg, bytes):
            _io_size(self.kernel, len(arg), "ioctl")
        return await self._op(file, "ioctl", file.node.ops.ioctl(file, request & 0xFFFFFFFF, arg))

    async def lseek(self, fd: int, offset: int, whence: int) -> int:
        file = self.get(fd)
        if whence not in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END):
            raise KernelError(errno.EINVAL, f"lseek: whence {whence} is not SEEK_SET, SEEK_CUR or SEEK_END")
        return await self._op(file, "lseek", file.node.ops.llseek(file, offset, whence))

    async def read_file(self, path: str, limit: int) -> bytes:
        """open, read to the end, close: the whole file as `cat` sees it, at
        most `limit` bytes (EFBIG beyond)."""
        file = await self.open_file(path, os.O_RDONLY)
        try:
            self._check_mode(file, path, FMODE_READ, FMODE_CAN_READ, "read", "reading", "read")
            chunks, total = [], 0
            while chunk := await self.read_from(file, min(READ_CHUNK, self.kernel.options.max_io)):
                total += len(chunk)
                if total > limit:
                    raise KernelError(errno.EFBIG, f"read_file {path}: more than {limit} bytes "
                                                   "(read it with open and read instead)")
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            with trio.CancelScope(shield=True):
                await self.fput(file)

    async def write_file(self, path: str, data: bytes) -> int:
        """open for writing, write until all is taken (as a shell's `echo >`
        does), close: the bytes written."""
        file = await self.open_file(path, os.O_WRONLY)
        try:
            self._check_mode(file, path, FMODE_WRITE, FMODE_CAN_WRITE, "write", "writing", "written")
            done = 0
            while True:
                n = await self.write_to(file, data[done:])
                done += n
                if done >= len(data) or n <= 0:
                    return done
        finally:
            with trio.CancelScope(shield=True):
                await self.fput(file)

    async def close(self, fd: int) -> None:
        file = self.get(fd)
        del self.files[fd]
        await self.fput(file)

    async def close_all(self) -> None:
        """The process exits: every descriptor is closed, newest last."""
        while self.files:
            fd = min(self.files)
            await self.fput(self.files.pop(fd))

    async def fput(self, file: OpenFile) -> None:
        """__fput: .release, then the references go (cdev_put, fops_put)."""
        async def release() -> None:
            file.released = True       # under the node's active reference: a removal now waits
            await file.node.ops.release(file)
        try:
            if not file.released:
                await self._op(file, "close", release())
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
        file_tree(kernel).closed(file.node, file)


def module_of_owner(kernel: "Kernel", owner: int) -> Any:
    """The Module a `struct module *` names; None for NULL (the kernel)."""
    if not owner:
        return None
    mod = kernel.module_by_struct(owner)
    if mod is None:
        raise KernelError(errno.ENXIO, f"owner {owner:#x} is no module")
    return mod


def get_owner(kernel: "Kernel", file: OpenFile, owner: int, what: str, err: int) -> None:
    """try_module_get(owner) on behalf of an open file, or fail with `err`."""
    try:
        mod = module_of_owner(kernel, owner)
    except KernelError:
        raise KernelError(err, f"open {file.node.path}: {what} names no module") from None
    if mod is None:
        return
    if not kernel.module_get(mod, file.owner):
        raise KernelError(err, f"open {file.node.path}: module {mod.name} is {mod.state.value}, "
                               f"so try_module_get refused ({what})")
    file.pinned.append(mod)


async def call_open(kernel: "Kernel", file: OpenFile, fops: int, comm: str) -> None:
    """replace_fops(file, fops), then the driver's .open(inode, file)."""
    mem = kernel.mem
    mem.write_u64(file.field("f_op"), fops)
    open_fn = mem.read_u64(fops + kernel.layouts[FOPS].open)
    if open_fn:
        ret = await kernel.sanitizer.call_pointer(open_fn, file.node.inode, file.address,
                                                  via="chrdev_open", comm=comm)
        check_return(signed32(ret), f"open {file.node.path}")


class Fops(FileOps):
    """A module's `struct file_operations`, called through `file->f_op` as the
    VFS calls it (debugfs and char devices): `fops` is installed at open,
    after a reference on `fops->owner` (fops_get)."""

    def __init__(self, fops: int = 0) -> None:
        self.fops = fops

    async def open(self, file: OpenFile) -> None:
        kernel = file.kernel
        get_owner(kernel, file, kernel.mem.read_u64(self.fops + kernel.layouts[FOPS].owner), "fops_get",
                  errno.ENODEV)
        await call_open(kernel, file, self.fops, file.comm)

    def can_read(self, file: OpenFile) -> bool:
        return bool(file.fop("read", "do_dentry_open"))

    def can_write(self, file: OpenFile) -> bool:
        return bool(file.fop("write", "do_dentry_open"))

    async def read(self, file: OpenFile, size: int) -> bytes:
        kernel = file.kernel
        with user_space(kernel).buffer(size) as buf:
            got = check_return(await file.call(file.fop("read", "vfs_read"), file.address, buf.address,
                                               size, file.field("f_pos"), via="vfs_read"),
                               f"read {file.path}")
            return bytes(buf.data[:min(got, size)])

    async def write(self, file: OpenFile, data: bytes) -> int:
        with user_space(file.kernel).buffer(data) as buf:
            return check_return(await file.call(file.fop("write", "vfs_write"), file.address, buf.address,
                                                len(data), file.field("f_pos"), via="vfs_write"),
                                f"write {file.path}")

    async def ioctl(self, file: OpenFile, request: int, arg: int | bytes) -> tuple[int, bytes | None]:
        fn = file.fop("unlocked_ioctl", "do_vfs_ioctl")
        if not fn:
            raise KernelError(errno.ENOTTY, f"ioctl {file.path}: Inappropriate ioctl for device")
        if isinstance(arg, bytes):
            with user_space(file.kernel).buffer(arg) as buf:
                ret = await file.call(fn, file.address, request, buf.address, via="do_vfs_ioctl")
                return check_return(ret, f"ioctl {file.path}"), bytes(buf.data)
        ret = await file.call(fn, file.address, request, arg & _MASK64, via="do_vfs_ioctl")
        return check_return(ret, f"ioctl {file.path}"), None

    async def llseek(self, file: OpenFile, offset: int, whence: int) -> int:
        llseek = file.fop("llseek", "vfs_llseek")
        if not llseek or not file.mode & FMODE_LSEEK:
            raise KernelError(errno.ESPIPE, f"lseek {file.path}: Illegal seek")
        ret = await file.call(llseek, file.address, offset & _MASK64, whence, via="vfs_llseek")
        return check_return(ret, f"lseek {file.path}")

    async def release(self, file: OpenFile) -> None:
        release = file.fop("release", "__fput")
        if release:
            await file.call(release, file.node.inode, file.address, via="__fput")


def _io_size(kernel: "Kernel", size: int, what: str) -> int:
    limit = kernel.options.max_io
    if size < 0:
        raise KernelError(errno.EINVAL, f"{what}: negative size {size}")
    if size > limit:
        raise KernelError(errno.EINVAL, f"{what}: {size} bytes is more than kloader's "
                                        f"limit of {limit} bytes per call (max_io)")
    return min(size, MAX_RW_COUNT)
