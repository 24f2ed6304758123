"""Helpers drivers use in their file operations (fs/read_write.c, fs/libfs.c,
fs/open.c): the llseek variants, nonseekable_open and the simple buffer copies.
"""

from __future__ import annotations

import errno
from typing import Any, Callable

from ..kernel.api import export
from ..mm.usercopy import _copy_from_user, _copy_to_user
from .file import FILE, FMODE_LSEEK, FMODE_PREAD, FMODE_PWRITE, file_field, signed64

STRUCTS = (FILE,)            # what these functions read at the kernel's offsets

FMODE_STREAM = 1 << 21
MAX_LFS_FILESIZE = (1 << 63) - 1
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2


@export("no_llseek", "loff_t no_llseek(struct file *file, loff_t offset, int whence)", nargs=3)
def no_llseek(ctx: Any, file: int, offset: int, whence: int) -> int:
    return -errno.ESPIPE


@export("noop_llseek", "loff_t noop_llseek(struct file *file, loff_t offset, int whence)", nargs=3)
def noop_llseek(ctx: Any, file: int, offset: int, whence: int) -> int:
    return ctx.mem.read_s64(file_field(ctx.kernel, file, "f_pos"))


@export("fixed_size_llseek",
        "loff_t fixed_size_llseek(struct file *file, loff_t offset, int whence, loff_t size)", nargs=4)
def fixed_size_llseek(ctx: Any, file: int, offset: int, whence: int, size: int) -> int:
    offset, size = signed64(offset), signed64(size)
    whence &= 0xFFFFFFFF
    if whence == SEEK_SET:
        new = offset
    elif whence == SEEK_CUR:
        new = ctx.mem.read_s64(file_field(ctx.kernel, file, "f_pos")) + offset
    elif whence == SEEK_END:
        new = size + offset
    else:
        return -errno.EINVAL
    if new < 0 or new > size:
        return -errno.EINVAL
    ctx.mem.write_u64(file_field(ctx.kernel, file, "f_pos"), new)
    return new


@export("nonseekable_open", "int nonseekable_open(struct inode *inode, struct file *filp)", nargs=2)
def nonseekable_open(ctx: Any, inode: int, filp: int) -> int:
    f_mode = file_field(ctx.kernel, filp, "f_mode")
    ctx.mem.write_u32(f_mode, ctx.mem.read_u32(f_mode) & ~(FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE))
    return 0


@export("stream_open", "int stream_open(struct inode *inode, struct file *filp)", nargs=2)
def stream_open(ctx: Any, inode: int, filp: int) -> int:
    f_mode = file_field(ctx.kernel, filp, "f_mode")
    mode = ctx.mem.read_u32(f_mode)
    ctx.mem.write_u32(f_mode, (mode & ~(FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE)) | FMODE_STREAM)
    return 0


def _simple_transfer(ctx: Any, ppos: int, available: int, count: int,
                     copy: Callable[[int, int], int]) -> int:
    """What libfs's two simple_*_buffer helpers share: a window of `available`
    bytes, a position at *ppos, a copy that may stop short (`copy(pos, n)`
    returns the bytes it could not move), -EFAULT only when nothing moved."""
    pos = ctx.mem.read_s64(ppos)
    if pos < 0:
        return -errno.EINVAL
    if pos >= available or not count:
        return 0
    count = min(count, available - pos)
    left = copy(pos, count)
    if left == count:
        return -errno.EFAULT
    count -= left
    ctx.mem.write_u64(ppos, pos + count)
    return count


@export("simple_read_from_buffer",
        "ssize_t simple_read_from_buffer(void *to, size_t count, loff_t *ppos, const void *from, "
        "size_t available)", nargs=5)
def simple_read_from_buffer(ctx: Any, to: int, count: int, ppos: int, frm: int, available: int) -> int:
    return _simple_transfer(ctx, ppos, available, count,
                            lambda pos, n: _copy_to_user(ctx, to, frm + pos, n))


@export("simple_write_to_buffer",
        "ssize_t simple_write_to_buffer(void *to, size_t available, loff_t *ppos, const void *from, "
        "size_t count)", nargs=5)
def simple_write_to_buffer(ctx: Any, to: int, available: int, ppos: int, frm: int, count: int) -> int:
    return _simple_transfer(ctx, ppos, available, count,
                            lambda pos, n: _copy_from_user(ctx, to + pos, frm, n))
