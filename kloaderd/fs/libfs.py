"""A pseudo filesystem's building blocks (Linux's fs/libfs.c, with
`new_inode` from fs/inode.c and `d_make_root` from fs/dcache.c):
`simple_fill_super`, `simple_pin_fs`/`simple_release_fs`, `new_inode`,
`get_next_ino`, `d_make_root`, `simple_inode_init_ts`.

Inodes and dentries are kernel memory of the running kernel's sizes, recorded with
their superblock and freed when it is killed (kloaderd/fs/super.py).
`simple_pin_fs` is Al Viro's answer in the seed thread made a library: the
first user mounts the filesystem internally, the last one's
`simple_release_fs` drops that mount, so the module is pinned exactly while
somebody uses it — where a `kern_mount` in init pins it for ever.

Where kloader differs: `simple_fill_super`'s files get an inode and a dentry
each, as in Linux, but nothing can open them yet (no path lookup); the root
directory's `i_op`/`i_fop` are NULL (Linux points them at
`simple_dir_inode_operations`/`simple_dir_operations`).  A files table is
read for at most `MAX_FILES` entries.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import KernelError
from ..kernel.api import export
from ..kernel.layouts import struct
from ..kernel.printk import KERN_WARNING
from .dcache import STRUCTS as DCACHE_STRUCTS, d_alloc, dcache, positive_children, put
from ..time.timekeeping import return_timespec64
from .file import INODE
from .inode import drop_nlink, now, set_time
from .namespace import STRUCTS as MOUNT_STRUCTS, kern_mount_type, mounts
from .super import DENTRY, SB, SuperBlock, caller_call, supers

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel

TREE_DESCR = struct("struct tree_descr", "linux/fs.h", "name", "ops", "mode")
MAPPING = struct("struct address_space", "linux/fs.h", "host", "a_ops")
AOPS = struct("struct address_space_operations", "linux/fs.h")
STRUCTS = (*MOUNT_STRUCTS, *DCACHE_STRUCTS, INODE, TREE_DESCR, MAPPING, AOPS)   # read at the kernel's offsets

S_IFDIR = 0o040000
S_IFREG = 0o100000
PAGE_SHIFT = 12
MAX_FILES = 1 << 12
_NAME_MAX = 255


class Inodes:
    """get_next_ino's counter (Linux starts it at 1 per CPU batch), and
    `empty_aops`, the address space operations of a new inode's mapping."""

    def __init__(self, kernel: "Kernel") -> None:
        self.last_ino = 0
        self.empty_aops = kernel.slab.alloc(kernel.layouts[AOPS].size, None, zero=True)

    def next_ino(self) -> int:
        self.last_ino = (self.last_ino + 1) & 0xFFFFFFFF or 1
        return self.last_ino


def _sb(ctx: Any, address: int, who: str) -> SuperBlock:
    sb = supers(ctx.kernel).of(address)
    if sb is None:
        raise KernelError(errno.EINVAL, f"{who}: {address:#x} is not a superblock")
    return sb


def alloc_inode(kernel: "Kernel", sb: SuperBlock) -> int:
    """new_inode: zeroed, then what inode_init_always sets that modules
    read: the superblock, a count of 1, one link, the block size's bits,
    and `i_mapping` pointing at the inode's own `i_data` (its host the
    inode, its operations `empty_aops`), which page-cache users such as
    configfs set their operations in."""
    off, mapping = kernel.layouts[INODE], kernel.layouts[MAPPING]
    address = kernel.slab.alloc(off.size, None, zero=True)
    if address:
        mem, inodes = kernel.mem, kernel.subsystem(Inodes)
        mem.write_u64(address + off.i_sb, sb.address)
        mem.write_u8(address + off.i_blkbits, mem.read_u8(sb.address + kernel.layouts[SB].s_blocksize_bits))
        mem.write_u32(address + off.i_count, 1)
        mem.write_u64(address + off.i_ino, inodes.next_ino())
        mem.write_u32(address + off.i_nlink, 1)
        data = address + off.i_data
        mem.write_u64(data + mapping.a_ops, inodes.empty_aops)
        mem.write_u64(data + mapping.host, address)
        mem.write_u64(address + off.i_mapping, data)
        sb.objects.append(address)
    return address


@export("get_next_ino", "unsigned int get_next_ino(void)", nargs=0)
def get_next_ino(ctx: Any) -> int:
    return ctx.kernel.subsystem(Inodes).next_ino()


@export("new_inode", "struct inode *new_inode(struct super_block *sb)", nargs=1)
def new_inode(ctx: Any, sb: int) -> int:
    return alloc_inode(ctx.kernel, _sb(ctx, sb, "new_inode"))


@export("d_make_root", "struct dentry *d_make_root(struct inode *root_inode)", nargs=1)
def d_make_root(ctx: Any, inode: int) -> int:
    if not inode:
        return 0
    sb = _sb(ctx, ctx.mem.read_u64(inode + ctx.kernel.layouts[INODE].i_sb), "d_make_root")
    return d_alloc(ctx.kernel, sb, 0, b"/", inode)


@export("simple_fill_super", "int simple_fill_super(struct super_block *s, unsigned long magic, "
        "const struct tree_descr *files)", nargs=3)
def simple_fill_super(ctx: Any, s: int, magic: int, files: int) -> int:
    kernel, mem = ctx.kernel, ctx.mem
    sb_off, i_off, td_off = kernel.layouts[SB], kernel.layouts[INODE], kernel.layouts[TREE_DESCR]
    sb = _sb(ctx, s, "simple_fill_super")
    mem.write_u64(s + sb_off.s_blocksize, 1 << PAGE_SHIFT)
    mem.write_u8(s + sb_off.s_blocksize_bits, PAGE_SHIFT)
    mem.write_u64(s + sb_off.s_magic, magic)
    mem.write_u32(s + sb_off.s_time_gran, 1)
    inode = alloc_inode(kernel, sb)
    if not inode:
        return -errno.ENOMEM
    mem.write_u64(inode + i_off.i_ino, 1)
    mem.write_u16(inode + i_off.i_mode, S_IFDIR | 0o755)
    mem.write_u32(inode + i_off.i_nlink, 2)
    root = d_alloc(kernel, sb, 0, b"/", inode)
    if not root:
        return -errno.ENOMEM
    for i in range(MAX_FILES):
        entry = files + i * td_off.size
        name = mem.read_u64(entry + td_off.name)
        text = mem.read_cstr(name, _NAME_MAX) if name else None
        if text == b"":
            break
        if text is None:
            continue
        if i == 1:
            kernel.log.emit(KERN_WARNING, f"simple_fill_super: {sb.fstype.name} passed in a files "
                                          "array with an index of 1!", getattr(ctx.module, "name", None))
        inode = alloc_inode(kernel, sb)
        if not inode:
            return -errno.ENOMEM
        mem.write_u16(inode + i_off.i_mode, S_IFREG | (mem.read_u32(entry + td_off.mode) & 0o7777))
        mem.write_u64(inode + i_off.i_fop, mem.read_u64(entry + td_off.ops))
        mem.write_u64(inode + i_off.i_ino, i)
        dentry = d_alloc(kernel, sb, root, text, inode)
        if not dentry:
            return -errno.ENOMEM
        dcache(kernel).set_hashed(dentry, True)                    # d_add
    else:
        raise KernelError(errno.E2BIG, f"simple_fill_super: {sb.fstype.name}'s files table has no "
                                       f'terminating {{""}} entry in its first {MAX_FILES}')
    mem.write_u64(s + sb_off.s_root, root)
    return 0


@export("simple_pin_fs", "int simple_pin_fs(struct file_system_type *type, struct vfsmount **mount, "
        "int *count)", nargs=3)
async def simple_pin_fs(ctx: Any, fs_type: int, mount: int, count: int) -> int:
    mem, table = ctx.mem, mounts(ctx.kernel)
    made = None
    if not mem.read_u64(mount):
        made = await kern_mount_type(ctx, fs_type)
        if isinstance(made, int):
            return made
        if not mem.read_u64(mount):
            mem.write_u64(mount, made.address)
    pinned = table.of(mem.read_u64(mount))
    if pinned is None:
        raise KernelError(errno.EINVAL, f"simple_pin_fs: *mount {mem.read_u64(mount):#x} is not a vfsmount")
    pinned.count += 1                                                  # mntget(*mount)
    mem.write_u32(count, (mem.read_u32(count) + 1) & 0xFFFFFFFF)
    if made is not None:
        await table.put(made, caller_call(ctx))                        # mntput(mnt)
    return 0


@export("simple_release_fs", "void simple_release_fs(struct vfsmount **mount, int *count)", nargs=2)
async def simple_release_fs(ctx: Any, mount: int, count: int) -> None:
    mem, table = ctx.mem, mounts(ctx.kernel)
    address = mem.read_u64(mount)
    left = (mem.read_u32(count) - 1) & 0xFFFFFFFF
    mem.write_u32(count, left)
    if not left:
        mem.write_u64(mount, 0)
    mnt = table.of(address)
    if mnt is None:
        raise KernelError(errno.EINVAL, f"simple_release_fs: *mount {address:#x} is not a vfsmount")
    await table.put(mnt, caller_call(ctx))


@export("simple_empty", "int simple_empty(struct dentry *dentry)", nargs=1)
def simple_empty(ctx: Any, dentry: int) -> int:
    """No child that is hashed and has an inode."""
    return 0 if positive_children(ctx.kernel, dentry) else 1


@export("simple_unlink", "int simple_unlink(struct inode *dir, struct dentry *dentry)", nargs=2)
async def simple_unlink(ctx: Any, dir: int, dentry: int) -> int:
    """The inode's ctime and the directory's ctime and mtime are now, one
    link less, and the reference "create" took put: that does the rest."""
    inode = ctx.mem.read_u64(dentry + ctx.kernel.layouts[DENTRY].d_inode)
    stamp = now(ctx, inode)
    for where, which in ((inode, "ctime"), (dir, "ctime"), (dir, "mtime")):
        set_time(ctx, where, which, *stamp)
    drop_nlink(ctx, inode)
    await put(ctx, dentry, caller_call(ctx))
    return 0


@export("simple_rmdir", "int simple_rmdir(struct inode *dir, struct dentry *dentry)", nargs=2)
async def simple_rmdir(ctx: Any, dir: int, dentry: int) -> int:
    if positive_children(ctx.kernel, dentry):
        return -errno.ENOTEMPTY
    drop_nlink(ctx, ctx.mem.read_u64(dentry + ctx.kernel.layouts[DENTRY].d_inode))
    await simple_unlink(ctx, dir, dentry)
    drop_nlink(ctx, dir)
    return 0


@export("simple_inode_init_ts", "struct timespec64 simple_inode_init_ts(struct inode *inode)", nargs=1)
def simple_inode_init_ts(ctx: Any, inode: int) -> int:
    """Linux 6.7+: a new inode's atime, mtime and ctime are all now."""
    stamp = now(ctx, inode)
    for which in ("ctime", "atime", "mtime"):
        set_time(ctx, inode, which, *stamp)
    return return_timespec64(ctx, *stamp)
