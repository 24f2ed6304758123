"""Dentries of a pseudo filesystem (Linux's fs/dcache.c): `d_alloc_name`,
`d_instantiate`, `d_add`, `dput`, `d_delete`, `d_drop`, and the reference
counts they keep (and `sysctl_vfs_cache_pressure`, 100 as at boot, which
shrinkers scale their counts by), for filesystems such as configfs that build their tree
themselves.

A dentry is kernel memory of the running kernel's layout (kloaderd/fs/
super.py declares what is read of it) recorded with its superblock.  Its
count is `d_lockref.count` in that memory, where modules' inline `dget`
(`lockref_get`) and `dget_dlock` change it; its parent holds a reference
from it, as in Linux.  `dput` of the last reference kills a dentry that is
unhashed or whose `d_op->d_delete` says so (`always_delete_dentry`): the
inode goes through `d_op->d_iput` or `iput`, `d_op->d_release` runs, the
memory is freed and the parent put.  A hashed dentry is kept at count 0,
as Linux keeps it on the LRU, until its superblock goes.

Where kloader differs: there is no hash table to look names up in (nothing
walks paths through these dentries yet), so "hashed" is only the state
`d_unhashed()` reads: `d_hash.pprev` non-NULL; a dentry's children are
kept on the Python side, not on `d_subdirs`/`d_children`.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import KernelError
from ..kernel.api import export, export_object
from ..kernel.layouts import struct
from ..lib.lockref import LOCKREF
from .file import INODE
from .super import DENTRY, SB, STRUCTS as SUPER_STRUCTS, Call, SuperBlock, caller_call, supers

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel

DOPS = struct("struct dentry_operations", "linux/dcache.h", "d_delete", "d_release", "d_iput")
STRUCTS = (*SUPER_STRUCTS, DOPS, LOCKREF)   # what these functions read at the kernel's offsets
_SHORT_NAME = 32                # DNAME_INLINE_LEN of Linux 6.1: 6.12's is 40
_NAME_MAX = 255

export_object("sysctl_vfs_cache_pressure", "extern int sysctl_vfs_cache_pressure", 4, (100).to_bytes(4, "little"),
              writable=True)
# d_flags' entry type (bits 20-22; the same in 6.1 and 6.12): what d_is_negative() reads
DCACHE_ENTRY_TYPE = 7 << 20
DCACHE_DIRECTORY_TYPE, DCACHE_REGULAR_TYPE = 2 << 20, 4 << 20
DCACHE_SPECIAL_TYPE, DCACHE_SYMLINK_TYPE = 5 << 20, 6 << 20
S_IFMT, S_IFDIR, S_IFREG, S_IFLNK = 0o170000, 0o040000, 0o100000, 0o120000


class Dcache:
    """Each dentry's children, and the address `d_hash.pprev` points at
    while a dentry is hashed."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.children: dict[int, list[int]] = {}
        self.bucket = kernel.slab.alloc(8, None, zero=True)

    def count_at(self, dentry: int) -> int:
        layouts = self.kernel.layouts
        return dentry + layouts[DENTRY].d_lockref + layouts[LOCKREF].count

    def hashed(self, dentry: int) -> bool:
        return bool(self.kernel.mem.read_u64(dentry + self.kernel.layouts[DENTRY].d_hash + 8))

    def set_hashed(self, dentry: int, hashed: bool) -> None:
        self.kernel.mem.write_u64(dentry + self.kernel.layouts[DENTRY].d_hash + 8,
                                  self.bucket if hashed else 0)


def dcache(kernel: "Kernel") -> Dcache:
    return kernel.subsystem(Dcache)


def d_alloc(kernel: "Kernel", sb: SuperBlock, parent: int, name: bytes, inode: int = 0) -> int:
    """__d_alloc + d_alloc: one reference, the superblock's `s_d_op`, and
    (with a parent) a reference on the parent and a place among its
    children.  The name (at most 31 bytes: every release's inline length)
    is inline; after the dentry where a release names it otherwise."""
    off, mem, cache = kernel.layouts[DENTRY], kernel.mem, dcache(kernel)
    inline = off.d_iname if off.d_iname is not None else off.d_shortname
    address = kernel.slab.alloc(off.size + (_SHORT_NAME if inline is None else 0), None, zero=True)
    if not address:
        return 0
    name_at = address + (off.size if inline is None else inline)
    name = name[:_SHORT_NAME - 1]
    mem.write(name_at, name + b"\0")
    mem.write_u64(address + off.d_name, len(name) << 32)          # hash_len: hash unused
    mem.write_u64(address + off.d_name + 8, name_at)
    set_inode(kernel, address, inode)
    mem.write_u64(address + off.d_sb, sb.address)
    mem.write_u64(address + off.d_op, mem.read_u64(sb.address + kernel.layouts[SB].s_d_op))
    mem.write_u32(cache.count_at(address), 1)
    mem.write_u64(address + off.d_parent, parent or address)
    if parent:
        _get(kernel, parent)
        cache.children.setdefault(parent, []).append(address)
    sb.objects.append(address)
    return address


def set_inode(kernel: "Kernel", dentry: int, inode: int) -> None:
    """__d_set_inode_and_type: d_inode, and the entry type in d_flags
    (d_flags_for_inode: a directory, a symlink, a regular file, or special;
    none for a negative dentry)."""
    mem, off = kernel.mem, kernel.layouts[DENTRY]
    kind = 0
    if inode:
        mode = mem.read_u16(inode + kernel.layouts[INODE].i_mode) & S_IFMT
        kind = {S_IFDIR: DCACHE_DIRECTORY_TYPE, S_IFLNK: DCACHE_SYMLINK_TYPE,
                S_IFREG: DCACHE_REGULAR_TYPE}.get(mode, DCACHE_SPECIAL_TYPE)
    flags = mem.read_u32(dentry + off.d_flags) & ~DCACHE_ENTRY_TYPE
    mem.write_u32(dentry + off.d_flags, flags | kind)
    mem.write_u64(dentry + off.d_inode, inode)


def _get(kernel: "Kernel", dentry: int) -> None:
    at = dcache(kernel).count_at(dentry)
    kernel.mem.write_u32(at, kernel.mem.read_u32(at) + 1)


def _sb_of(ctx: Any, dentry: int, who: str) -> SuperBlock:
    sb = supers(ctx.kernel).of(ctx.mem.read_u64(dentry + ctx.kernel.layouts[DENTRY].d_sb))
    if sb is None:
        raise KernelError(errno.EINVAL, f"{who}: {dentry:#x} is not a dentry of a superblock kloader made")
    return sb


def _op(kernel: "Kernel", dentry: int, member: str) -> int:
    """d_op->member, 0 where the dentry has no operations or not that one."""
    ops = kernel.mem.read_u64(dentry + kernel.layouts[DENTRY].d_op)
    return kernel.mem.read_u64(ops + getattr(kernel.layouts[DOPS], member)) if ops else 0


async def unlink_inode(ctx: Any, dentry: int, call: Call) -> None:
    """dentry_unlink_inode: the dentry negative, its inode put through
    `d_op->d_iput` or iput."""
    from .inode import iput_inode
    inode = ctx.mem.read_u64(dentry + ctx.kernel.layouts[DENTRY].d_inode)
    if not inode:
        return
    set_inode(ctx.kernel, dentry, 0)
    d_iput = _op(ctx.kernel, dentry, "d_iput")
    if d_iput:
        await call(d_iput, dentry, inode)
    else:
        await iput_inode(ctx, inode, call)


async def put(ctx: Any, dentry: int, call: Call) -> None:
    """dput: drop a reference; the last one kills the dentry unless it is
    hashed and `d_op->d_delete` does not ask for that, then its parent's."""
    kernel, mem, cache = ctx.kernel, ctx.mem, dcache(ctx.kernel)
    while dentry:
        at = cache.count_at(dentry)
        count = mem.read_u32(at)
        if count == 0:
            raise KernelError(errno.EINVAL, f"dput: {dentry:#x} has no reference to put")
        if count > 1:
            mem.write_u32(at, count - 1)
            return
        d_delete = _op(kernel, dentry, "d_delete")
        if cache.hashed(dentry) and not (d_delete and (await call(d_delete, dentry)) & 0xFFFFFFFF):
            mem.write_u32(at, 0)                        # retained, as on the LRU
            return
        sb = _sb_of(ctx, dentry, "dput")
        mem.write_u32(at, 0)
        cache.set_hashed(dentry, False)
        parent = mem.read_u64(dentry + kernel.layouts[DENTRY].d_parent)
        await unlink_inode(ctx, dentry, call)
        d_release = _op(kernel, dentry, "d_release")
        if d_release:
            await call(d_release, dentry)
        cache.children.pop(dentry, None)
        if parent != dentry:
            cache.children.get(parent, []).remove(dentry)
        supers(kernel).release(sb, dentry)
        dentry = parent if parent != dentry else 0


def positive_children(kernel: "Kernel", dentry: int) -> list[int]:
    """The hashed children with an inode: what simple_empty() counts."""
    cache, d_inode = dcache(kernel), kernel.layouts[DENTRY].d_inode
    return [c for c in cache.children.get(dentry, [])
            if cache.hashed(c) and kernel.mem.read_u64(c + d_inode)]


# -- what module code calls -----------------------------------------------------------

@export("d_alloc_name", "struct dentry *d_alloc_name(struct dentry *parent, const char *name)", nargs=2)
def d_alloc_name(ctx: Any, parent: int, name: int) -> int:
    sb = _sb_of(ctx, parent, "d_alloc_name")
    return d_alloc(ctx.kernel, sb, parent, ctx.mem.read_cstr(name, _NAME_MAX))


@export("d_instantiate", "void d_instantiate(struct dentry *entry, struct inode *inode)", nargs=2)
def d_instantiate(ctx: Any, dentry: int, inode: int) -> None:
    set_inode(ctx.kernel, dentry, inode)


@export("d_add", "void d_add(struct dentry *entry, struct inode *inode)", nargs=2)
def d_add(ctx: Any, dentry: int, inode: int) -> None:
    d_instantiate(ctx, dentry, inode)
    dcache(ctx.kernel).set_hashed(dentry, True)


@export("dput", "void dput(struct dentry *dentry)", nargs=1)
async def dput(ctx: Any, dentry: int) -> None:
    if dentry:
        await put(ctx, dentry, caller_call(ctx))


@export("d_delete", "void d_delete(struct dentry *dentry)", nargs=1)
async def d_delete(ctx: Any, dentry: int) -> None:
    """The only user: the dentry turns negative; else it is only unhashed."""
    if ctx.mem.read_u32(dcache(ctx.kernel).count_at(dentry)) == 1:
        await unlink_inode(ctx, dentry, caller_call(ctx))
    else:
        dcache(ctx.kernel).set_hashed(dentry, False)


@export("d_drop", "void d_drop(struct dentry *dentry)", nargs=1)
def d_drop(ctx: Any, dentry: int) -> None:
    dcache(ctx.kernel).set_hashed(dentry, False)


@export("__d_drop", "void __d_drop(struct dentry *dentry)", nargs=1)
def __d_drop(ctx: Any, dentry: int) -> None:
    dcache(ctx.kernel).set_hashed(dentry, False)


@export("always_delete_dentry", "int always_delete_dentry(const struct dentry *dentry)", nargs=1)
def always_delete_dentry(ctx: Any, dentry: int) -> int:
    return 1
