"""Superblocks and the ways a filesystem type makes one (Linux's fs/super.c
and fs/fs_context.c): `mount_nodev`, `mount_single`, `get_tree_nodev`,
`get_tree_single`, `kill_anon_super`, `kill_litter_super`,
`deactivate_super`.

A superblock is kernel memory (`struct super_block`, at the running kernel's
offsets: kloaderd/kernel/layouts.py)
with an anonymous device number (`0:N`, N from 1 up as `get_anon_bdev`
hands them out) and, as in Linux, a reference on its type's module
(`get_filesystem`, kloaderd/fs/filesystems.py) held until the type's
`->kill_sb` has run: so a mounted filesystem pins its module.  Each mount of
it holds one active reference (`s_active`); the last `deactivate_super`
calls `->kill_sb`, which for a pseudo filesystem is `kill_litter_super` or
`kill_anon_super`, or the module's own function calling one of them
(`generic_shutdown_super`: `s_op->put_super`, then the superblock's inodes and
dentries are freed).

The type's functions are module code, called as Linux calls them: from the
VFS (a client's `mount`/`umount`) through the sanitizer's `call_pointer`, so
the Golden Rule is checked; from a kernel function the module called
(`kern_mount` in its init, `mount_nodev` in its `->mount`) on the caller's
behalf (`call_module_code`).

Where kloader differs: there is no dentry cache or page cache, so the only
inodes and dentries are those the filesystem makes (`new_inode`,
`d_make_root`, `simple_fill_super`'s files); a superblock's `s_op` is left
NULL by `simple_fill_super` (Linux's `simple_super_operations` only has
`statfs` and `drop_inode`, which nothing here calls).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ..errors import KernelError
from ..kernel.api import export
from ..kernel.callback import call_module_code
from ..kernel.layouts import struct
from ..kernel.module import OwnerKind, RefOwner
from .filesystems import FST, FileSystemType, filesystems, get_filesystem, put_filesystem

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel

# What the VFS reads and writes of these structures, at each kernel's offsets.
SB = struct("struct super_block", "linux/fs.h", "s_list", "s_dev", "s_blocksize_bits", "s_blocksize",
            "s_maxbytes", "s_type", "s_op", "s_flags", "s_magic", "s_root", "s_count", "s_active",
            "s_fs_info", "s_time_gran", "s_id", "s_d_op")
SOPS = struct("struct super_operations", "linux/fs.h", "alloc_inode", "destroy_inode", "free_inode",
              "drop_inode", "evict_inode", "put_super")
# The short name is inline in `d_iname` (Linux 6.1 to 6.13) or `d_shortname` (6.14 on).
DENTRY = struct("struct dentry", "linux/dcache.h", "d_flags", "d_hash", "d_parent", "d_name", "d_inode",
                "d_lockref", "d_op", "d_sb", optional=("d_iname", "d_shortname"))
FC = struct("struct fs_context", "linux/fs_context.h", "ops", "fs_type", "root", "source",
            "s_fs_info", "sb_flags")
FCOPS = struct("struct fs_context_operations", "linux/fs_context.h", "free", "parse_monolithic",
               "get_tree")
STRUCTS = (FST, SB, SOPS, DENTRY, FC, FCOPS)   # what these functions read at the kernel's offsets
S_ID_LEN = 32                   # char s_id[32]

SB_SILENT = 1 << 15
SB_KERNMOUNT = 1 << 22
SB_ACTIVE = 1 << 30
MAX_NON_LFS = (1 << 31) - 1
_MASK64 = (1 << 64) - 1

# How module code is entered: `call(fn, *args) -> %rax`.
Call = Callable[..., Awaitable[int]]


def err_ptr(err: int) -> int:
    return err & _MASK64


def ptr_err(value: int) -> int | None:
    """The errno an ERR_PTR carries, else None."""
    return value - (1 << 64) if value >= (1 << 64) - 4095 else None


@dataclass(eq=False)
class SuperBlock:
    address: int
    fstype: FileSystemType
    dev: int                                  # MKDEV(0, anon)
    ref: RefOwner                             # its get_filesystem reference
    active: int = 1
    objects: list[int] = field(default_factory=list)   # its inodes and dentries

    @property
    def label(self) -> str:
        return f"{self.fstype.name} 0:{self.dev & 0xFFFFF}"


class SuperBlocks:
    """`super_blocks`, and the anonymous device numbers they use."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.supers: dict[int, SuperBlock] = {}
        self._anon: set[int] = set()

    def of(self, address: int) -> SuperBlock | None:
        return self.supers.get(address)

    def of_type(self, fst: FileSystemType) -> list[SuperBlock]:
        return [sb for sb in self.supers.values() if sb.fstype is fst]

    def alloc(self, fst: FileSystemType, flags: int, fs_info: int = 0) -> SuperBlock | int:
        """alloc_super + set_anon_super: a superblock pinning fst's module, or -ENOMEM."""
        kernel, mem, off = self.kernel, self.kernel.mem, self.kernel.layouts[SB]
        address = kernel.slab.alloc(off.size, None, zero=True)
        if not address:
            return -errno.ENOMEM
        anon = next(n for n in range(1, 1 << 20) if n not in self._anon)
        self._anon.add(anon)
        sb = SuperBlock(address, fst, anon, RefOwner(OwnerKind.FILE, f"superblock {fst.name} 0:{anon}"))
        mem.write_u64(address + off.s_list, address + off.s_list)
        mem.write_u64(address + off.s_list + 8, address + off.s_list)
        mem.write_u32(address + off.s_dev, anon)
        mem.write_u64(address + off.s_maxbytes, MAX_NON_LFS)
        mem.write_u64(address + off.s_type, fst.address)
        mem.write_u64(address + off.s_flags, flags & _MASK64)
        mem.write_u32(address + off.s_count, 1)
        mem.write_u32(address + off.s_active, 1)
        mem.write_u64(address + off.s_fs_info, fs_info)
        mem.write_u32(address + off.s_time_gran, 1_000_000_000)
        mem.write(address + off.s_id, fst.name.encode()[:S_ID_LEN - 1] + b"\0")
        get_filesystem(kernel, fst, sb.ref)
        self.supers[address] = sb
        return sb

    def root(self, sb: SuperBlock) -> int:
        return self.kernel.mem.read_u64(sb.address + self.kernel.layouts[SB].s_root)

    def activate(self, sb: SuperBlock) -> int:
        """s_flags |= SB_ACTIVE; the root dentry the mount will hold."""
        mem, flags = self.kernel.mem, sb.address + self.kernel.layouts[SB].s_flags
        mem.write_u64(flags, mem.read_u64(flags) | SB_ACTIVE)
        return self.root(sb)

    def grab(self, sb: SuperBlock) -> None:
        sb.active += 1
        self.kernel.mem.write_u32(sb.address + self.kernel.layouts[SB].s_active, sb.active)

    async def deactivate(self, sb: SuperBlock, call: Call) -> None:
        """deactivate_super: the last active reference runs ->kill_sb, then
        drops the module reference and frees the superblock."""
        sb.active -= 1
        if sb.active > 0:
            self.kernel.mem.write_u32(sb.address + self.kernel.layouts[SB].s_active, sb.active)
            return
        kill_sb = self.kernel.mem.read_u64(sb.fstype.address + self.kernel.layouts[FST].kill_sb)
        try:
            if kill_sb:
                await call(kill_sb, sb.address)
        finally:
            self.forget(sb)

    def release(self, sb: SuperBlock, address: int) -> None:
        """One of the superblock's inodes or dentries freed before the superblock."""
        sb.objects.remove(address)
        self.kernel.slab.free(address, None)

    def forget(self, sb: SuperBlock) -> None:
        """The superblock is gone: its memory freed, its module reference dropped."""
        if self.supers.pop(sb.address, None) is None:
            return
        slab = self.kernel.slab
        for obj in sb.objects:
            slab.free(obj, None)
        sb.objects.clear()
        slab.free(sb.address, None)
        self._anon.discard(sb.dev)
        put_filesystem(self.kernel, sb.fstype, sb.ref)

    async def generic_shutdown_super(self, sb: SuperBlock, call: Call) -> None:
        """->put_super, then the inodes and dentries go (in forget())."""
        mem, off = self.kernel.mem, self.kernel.layouts[SB]
        s_op = mem.read_u64(sb.address + off.s_op)
        put_super = mem.read_u64(s_op + self.kernel.layouts[SOPS].put_super) if s_op else 0
        if self.root(sb) and put_super:
            await call(put_super, sb.address)
        mem.write_u64(sb.address + off.s_root, 0)


def supers(kernel: "Kernel") -> SuperBlocks:
    return kernel.subsystem(SuperBlocks)


def caller_call(ctx: Any) -> Call:
    """Module code called on behalf of the module code that called us."""
    return lambda fn, *args: call_module_code(ctx, fn, *args)


def _type(ctx: Any, fs_type: int) -> FileSystemType:
    fst = filesystems(ctx.kernel).by_address(fs_type)
    if fst is None:
        raise KernelError(errno.EINVAL, f"{fs_type:#x} is not a registered file_system_type")
    return fst


def _super(ctx: Any, address: int, who: str) -> SuperBlock:
    sb = supers(ctx.kernel).of(address)
    if sb is None:
        raise KernelError(errno.EINVAL, f"{who}: {address:#x} is not a superblock")
    return sb


async def fill(ctx: Any, sb: SuperBlock, fill_super: int, *args: int) -> int:
    """Run the module's fill_super; on failure the superblock is killed
    (deactivate_locked_super), as Linux does."""
    err = await call_module_code(ctx, fill_super, sb.address, *args)
    err = err - (1 << 32) if err & 0x80000000 else err & 0xFFFFFFFF
    if err < 0:
        await supers(ctx.kernel).deactivate(sb, caller_call(ctx))
    return err


async def _mount_legacy(ctx: Any, fs_type: int, flags: int, data: int, fill_super: int,
                        single: bool) -> int:
    fst, all_supers = _type(ctx, fs_type), supers(ctx.kernel)
    if single:
        existing = next((sb for sb in all_supers.of_type(fst) if all_supers.root(sb)), None)
        if existing is not None:
            all_supers.grab(existing)
            return all_supers.root(existing)
    sb = all_supers.alloc(fst, flags & 0xFFFFFFFF)
    if isinstance(sb, int):
        return err_ptr(sb)
    err = await fill(ctx, sb, fill_super, data, 1 if flags & SB_SILENT else 0)
    return err_ptr(err) if err < 0 else all_supers.activate(sb)


@export("mount_nodev", "struct dentry *mount_nodev(struct file_system_type *fs_type, int flags, "
        "void *data, int (*fill_super)(struct super_block *, void *, int))", nargs=4)
async def mount_nodev(ctx: Any, fs_type: int, flags: int, data: int, fill_super: int) -> int:
    return await _mount_legacy(ctx, fs_type, flags, data, fill_super, single=False)


@export("mount_single", "struct dentry *mount_single(struct file_system_type *fs_type, int flags, "
        "void *data, int (*fill_super)(struct super_block *, void *, int))", nargs=4)
async def mount_single(ctx: Any, fs_type: int, flags: int, data: int, fill_super: int) -> int:
    return await _mount_legacy(ctx, fs_type, flags, data, fill_super, single=True)


async def _get_tree(ctx: Any, fc: int, fill_super: int, single: bool) -> int:
    mem, all_supers, off = ctx.mem, supers(ctx.kernel), ctx.kernel.layouts[FC]
    fst = _type(ctx, mem.read_u64(fc + off.fs_type))
    if single:
        existing = next((sb for sb in all_supers.of_type(fst) if all_supers.root(sb)), None)
        if existing is not None:
            all_supers.grab(existing)
            mem.write_u64(fc + off.root, all_supers.root(existing))
            return 0
    sb = all_supers.alloc(fst, mem.read_u32(fc + off.sb_flags), mem.read_u64(fc + off.s_fs_info))
    if isinstance(sb, int):
        return sb
    mem.write_u64(fc + off.s_fs_info, 0)                # sget_fc: the superblock owns it now
    err = await fill(ctx, sb, fill_super, fc)
    if err < 0:
        return err
    mem.write_u64(fc + off.root, all_supers.activate(sb))
    return 0


@export("get_tree_nodev", "int get_tree_nodev(struct fs_context *fc, "
        "int (*fill_super)(struct super_block *sb, struct fs_context *fc))", nargs=2)
async def get_tree_nodev(ctx: Any, fc: int, fill_super: int) -> int:
    return await _get_tree(ctx, fc, fill_super, single=False)


@export("get_tree_single", "int get_tree_single(struct fs_context *fc, "
        "int (*fill_super)(struct super_block *sb, struct fs_context *fc))", nargs=2)
async def get_tree_single(ctx: Any, fc: int, fill_super: int) -> int:
    return await _get_tree(ctx, fc, fill_super, single=True)


@export("kill_anon_super", "void kill_anon_super(struct super_block *sb)", nargs=1)
async def kill_anon_super(ctx: Any, sb: int) -> None:
    await supers(ctx.kernel).generic_shutdown_super(_super(ctx, sb, "kill_anon_super"), caller_call(ctx))


@export("kill_litter_super", "void kill_litter_super(struct super_block *sb)", nargs=1)
async def kill_litter_super(ctx: Any, sb: int) -> None:
    # d_genocide: the pinned dentries of the litter go with the superblock's objects
    await supers(ctx.kernel).generic_shutdown_super(_super(ctx, sb, "kill_litter_super"), caller_call(ctx))


@export("deactivate_super", "void deactivate_super(struct super_block *s)", nargs=1)
async def deactivate_super(ctx: Any, sb: int) -> None:
    await supers(ctx.kernel).deactivate(_super(ctx, sb, "deactivate_super"), caller_call(ctx))
