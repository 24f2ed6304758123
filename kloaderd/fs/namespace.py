"""Mounts (Linux's fs/namespace.c and the mount path of fs/fs_context.c):
`vfs_kern_mount`, `kern_mount`/`kern_unmount`, `mntget`/`mntput`, and the
`mount`/`umount` a client asks for.

A mount is a `struct vfsmount` in kernel memory (`mnt_root`, `mnt_sb`) with
a count of users (`mnt_count`, kept in Python) and, for a client's mount,
its target path in the kernel's one mount table.  Making one runs the type's
code as Linux 6.1 does: `->init_fs_context` then the context's
`->parse_monolithic` and `->get_tree`, or, for a legacy type, `->mount`
(usually `mount_nodev`/`mount_single` and the type's fill_super).  While it
runs, the `fs_context` holds a `get_filesystem` reference; the superblock
it makes holds its own until `->kill_sb` (kloaderd/fs/super.py).

`mount(fstype, target)` is mount(2): `get_fs_type` (ENODEV for a type nobody
registered or whose module is going), ENOTBLK for a type that needs a block
device (kloader has none to give), EBUSY for the same superblock mounted on
the same target twice.  `umount(target)` is umount(2) without MNT_DETACH:
EINVAL if nothing is mounted there, EBUSY while something is mounted below it
or the mount has other users (`mntget`), else the mount goes and, with the
last mount of its superblock, `->kill_sb` runs and the module is unpinned.

Where kloader differs: targets are absolute paths in a flat table, not
directories (nothing is looked up, and no file on a mounted filesystem can
be opened yet); mount flags are not taken; a `->init_fs_context` type gets
its options only through `->parse_monolithic` (data for a type without it is
EINVAL: `generic_parse_monolithic`'s `->parse_param` is not emulated).  Each
mount is a registration (`module_info` lists it); a module forced out with a
mount of its type is reported, and the mount dropped without calling into it.
"""

from __future__ import annotations

import errno
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import KernelError
from ..kernel.api import export
from ..kernel.layouts import struct
from ..kernel.module import OwnerKind, RefOwner
from ..kernel.printk import KERN_WARNING
from .filesystems import (FS_REQUIRES_DEV, FST, FileSystemType, filesystems, get_filesystem,
                          get_fs_type, put_filesystem)
from .super import (DENTRY, FC, FCOPS, SB_KERNMOUNT, STRUCTS as SUPER_STRUCTS, Call, SuperBlock,
                    caller_call, err_ptr, ptr_err, supers)

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel

MNT = struct("struct vfsmount", "linux/mount.h", "mnt_root", "mnt_sb", "mnt_flags")
STRUCTS = (*SUPER_STRUCTS, MNT)  # what these functions read at the kernel's offsets
MNT_INTERNAL = 0x4000
PATH_MAX = 4096
DATA_MAX = 4096               # mount(2) copies at most a page of options


@dataclass(eq=False)
class Mount:
    address: int                     # struct vfsmount
    sb: SuperBlock
    target: str | None               # None: an internal (kern_mount) mount
    source: str
    count: int = 1                   # mnt_count: the table's (or kern_mount's caller's) reference

    def describe(self) -> str:
        where = f"on {self.target}" if self.target else "(kern_mount)"
        return f"mount of {self.sb.fstype.name} {where}"


class Mounts:
    """Every mount of this kernel: the mount table's and the internal ones."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.registry = kernel.registrations.registry("mount")
        self.mounts: dict[int, Mount] = {}

    def of(self, address: int) -> Mount | None:
        return self.mounts.get(address)

    def table(self) -> list[Mount]:
        return [m for m in self.mounts.values() if m.target is not None]

    def top(self, target: str) -> Mount | None:
        on = [m for m in self.table() if m.target == target]
        return on[-1] if on else None

    def add(self, sb: SuperBlock, root: int, target: str | None, source: str, internal: bool) -> Mount | int:
        mem, off = self.kernel.mem, self.kernel.layouts[MNT]
        address = self.kernel.slab.alloc(off.size, None, zero=True)
        if not address:
            return -errno.ENOMEM
        mem.write_u64(address + off.mnt_root, root)
        mem.write_u64(address + off.mnt_sb, sb.address)
        mem.write_u32(address + off.mnt_flags, MNT_INTERNAL if internal else 0)
        mnt = Mount(address, sb, target, source)
        self.mounts[address] = mnt
        self.registry.add(address, mnt.describe(), owner=sb.fstype.module, address=address,
                          points_to=(sb.fstype.address,), data=mnt, on_leftover=self._left)
        return mnt

    async def put(self, mnt: Mount, call: Call) -> None:
        """mntput: the last user gone, the mount goes and its superblock is deactivated."""
        mnt.count -= 1
        if mnt.count > 0:
            return
        self._drop(mnt)
        await supers(self.kernel).deactivate(mnt.sb, call)

    def _drop(self, mnt: Mount) -> None:
        self.mounts.pop(mnt.address, None)
        self.registry.remove(mnt.address)
        self.kernel.slab.free(mnt.address, None)

    def _left(self, entry: Any) -> None:
        """A mount whose type's module was freed (forced out): dropped, and
        its superblock with it, without calling the freed ->kill_sb."""
        mnt = entry.data
        self.mounts.pop(mnt.address, None)
        self.kernel.slab.free(mnt.address, None)
        mnt.sb.active -= 1
        if mnt.sb.active <= 0:
            supers(self.kernel).forget(mnt.sb)


def mounts(kernel: "Kernel") -> Mounts:
    return kernel.subsystem(Mounts)


def _kstrdup(kernel: "Kernel", text: str) -> int:
    data = text.encode() + b"\0"
    address = kernel.slab.alloc(len(data), None)
    if address:
        kernel.mem.write(address, data)
    return address


def _check(value: int) -> int:
    """An int return of module code, sign-extended from 32 bits."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


async def vfs_get_tree(kernel: "Kernel", fst: FileSystemType, flags: int, source: str, data: str,
                       call: Call) -> tuple[SuperBlock, int]:
    """fs_context_for_mount + parse + vfs_get_tree (or legacy_get_tree):
    the superblock and root dentry, one active reference held; KernelError else."""
    mem, slab = kernel.mem, kernel.slab
    fst_off, fc_off, ops_off = kernel.layouts[FST], kernel.layouts[FC], kernel.layouts[FCOPS]
    fc_ref = RefOwner(OwnerKind.FILE, f"fs_context {fst.name}")
    get_filesystem(kernel, fst, fc_ref)
    source_ptr = _kstrdup(kernel, source)
    data_ptr = _kstrdup(kernel, data) if data else 0
    strings = [p for p in (source_ptr, data_ptr) if p]       # ours to free
    fc = 0
    try:
        if not source_ptr or (data and not data_ptr):
            raise KernelError(errno.ENOMEM, f"mount {fst.name}: out of memory")
        init_fs_context = mem.read_u64(fst.address + fst_off.init_fs_context)
        if init_fs_context:
            fc = slab.alloc(fc_off.size, None, zero=True)
            if not fc:
                raise KernelError(errno.ENOMEM, f"mount {fst.name}: out of memory")
            mem.write_u64(fc + fc_off.fs_type, fst.address)
            mem.write_u32(fc + fc_off.sb_flags, flags)
            _fail(fst, "init_fs_context", _check(await call(init_fs_context, fc)))
            mem.write_u64(fc + fc_off.source, source_ptr)
            strings.remove(source_ptr)                 # the context owns it now
            ops = mem.read_u64(fc + fc_off.ops)
            if data:
                parse = mem.read_u64(ops + ops_off.parse_monolithic) if ops else 0
                if not parse:
                    raise KernelError(errno.EINVAL, f"mount {fst.name}: options need the type's "
                                      "->parse_monolithic; kloader does not emulate ->parse_param")
                _fail(fst, "parse_monolithic", _check(await call(parse, fc, data_ptr)))
            get_tree = mem.read_u64(ops + ops_off.get_tree) if ops else 0
            if not get_tree:
                raise KernelError(errno.EINVAL, f"mount {fst.name}: its fs_context has no ->get_tree")
            _fail(fst, "get_tree", _check(await call(get_tree, fc)))
            root = mem.read_u64(fc + fc_off.root)
        else:
            mount = mem.read_u64(fst.address + fst_off.mount) if fst_off.mount is not None else 0
            if not mount:
                raise KernelError(errno.ENODEV, f"mount {fst.name}: the type has neither "
                                  "->init_fs_context nor ->mount")
            root = await call(mount, fst.address, flags, source_ptr, data_ptr)
            err = ptr_err(root)
            if err is not None:
                _fail(fst, "mount", err)
        sb = supers(kernel).of(mem.read_u64(root + kernel.layouts[DENTRY].d_sb)) if root else None
        if sb is None:
            raise KernelError(errno.EINVAL, f"mount {fst.name}: the type returned no root dentry "
                              "of one of its superblocks")
        return sb, root
    finally:
        if fc:
            await _put_fs_context(kernel, fc, call)
        for s in strings:
            slab.free(s, None)
        put_filesystem(kernel, fst, fc_ref)


async def _put_fs_context(kernel: "Kernel", fc: int, call: Call) -> None:
    mem, fc_off = kernel.mem, kernel.layouts[FC]
    ops = mem.read_u64(fc + fc_off.ops)
    free = mem.read_u64(ops + kernel.layouts[FCOPS].free) if ops else 0
    try:
        if free:
            await call(free, fc)
    finally:
        source = mem.read_u64(fc + fc_off.source)
        if source:
            kernel.slab.free(source, None)
        kernel.slab.free(fc, None)


def _fail(fst: FileSystemType, step: str, err: int) -> None:
    if err < 0:
        code = -err
        raise KernelError(code, f"mount {fst.name}: ->{step} failed: "
                                f"{errno.errorcode.get(code, code)}")


async def vfs_kern_mount(kernel: "Kernel", fst: FileSystemType, flags: int, source: str, data: str,
                         call: Call, target: str | None = None) -> Mount:
    sb, root = await vfs_get_tree(kernel, fst, flags, source, data, call)
    mnt = mounts(kernel).add(sb, root, target, source, internal=target is None)
    if isinstance(mnt, int):
        await supers(kernel).deactivate(sb, call)
        raise KernelError(-mnt, f"mount {fst.name}: out of memory")
    return mnt


# -- what module code calls -----------------------------------------------------------

def _mount(ctx: Any, address: int, who: str) -> Mount:
    mnt = mounts(ctx.kernel).of(address)
    if mnt is None:
        raise KernelError(errno.EINVAL, f"{who}: {address:#x} is not a vfsmount")
    return mnt


async def kern_mount_type(ctx: Any, fs_type: int) -> Mount | int:
    """vfs_kern_mount(type, SB_KERNMOUNT, type->name, NULL): a Mount or a negative errno."""
    fst = filesystems(ctx.kernel).by_address(fs_type)
    if fst is None:
        return -errno.EINVAL
    try:
        return await vfs_kern_mount(ctx.kernel, fst, SB_KERNMOUNT, fst.name, "", caller_call(ctx))
    except KernelError as exc:
        ctx.kernel.log.emit(KERN_WARNING, exc.message, getattr(ctx.module, "name", None))
        return -exc.errno


@export("kern_mount", "struct vfsmount *kern_mount(struct file_system_type *)", nargs=1)
async def kern_mount(ctx: Any, fs_type: int) -> int:
    mnt = await kern_mount_type(ctx, fs_type)
    return err_ptr(mnt) if isinstance(mnt, int) else mnt.address


@export("kern_unmount", "void kern_unmount(struct vfsmount *mnt)", nargs=1)
async def kern_unmount(ctx: Any, address: int) -> None:
    if address and ptr_err(address) is None:
        await mounts(ctx.kernel).put(_mount(ctx, address, "kern_unmount"), caller_call(ctx))


@export("mntget", "struct vfsmount *mntget(struct vfsmount *mnt)", nargs=1)
def mntget(ctx: Any, address: int) -> int:
    if address:
        _mount(ctx, address, "mntget").count += 1
    return address


@export("mntput", "void mntput(struct vfsmount *mnt)", nargs=1)
async def mntput(ctx: Any, address: int) -> None:
    if address:
        await mounts(ctx.kernel).put(_mount(ctx, address, "mntput"), caller_call(ctx))


# -- what a client asks for: mount(2) and umount(2) --------------------------------------

def _target(kernel: "Kernel", target: str, op: str) -> str:
    if not target.startswith("/") or len(target) >= PATH_MAX or "\0" in target:
        raise KernelError(errno.EINVAL, f"{op} {target!r}: the target must be an absolute path "
                                        f"shorter than {PATH_MAX} bytes")
    return posixpath.normpath(target).replace("//", "/")


async def do_mount(kernel: "Kernel", fstype: str, target: str, source: str, data: str,
                   comm: str) -> dict[str, Any]:
    path = _target(kernel, target, "mount")
    if len(data.encode()) >= DATA_MAX:
        raise KernelError(errno.EINVAL, f"mount {fstype} on {path}: options are longer than "
                                        f"{DATA_MAX - 1} bytes")
    lookup = RefOwner(OwnerKind.FILE, f"mount {fstype} on {path}")
    fst = await get_fs_type(kernel, fstype, lookup)
    if fst is None:
        raise KernelError(errno.ENODEV, f"mount {path}: unknown filesystem type '{fstype}' "
                                        "(no such type is registered, or its module is going)")
    try:
        if fst.flags & FS_REQUIRES_DEV:
            raise KernelError(errno.ENOTBLK, f"mount {fstype} on {path}: {source} is not a block "
                                             "device (kloader emulates no block devices)")

        def call(fn: int, *args: int) -> Any:
            return kernel.sanitizer.call_pointer(fn, *args, via="path_mount", comm=comm)
        mnt = await vfs_kern_mount(kernel, fst, 0, source, data, call, target=path)
    finally:
        put_filesystem(kernel, fst, lookup)
    table = mounts(kernel)
    under = [m for m in table.table() if m.target == path and m is not mnt]
    if under and under[-1].sb is mnt.sb:           # do_add_mount: the same fs on the same place
        await table.put(mnt, call)
        raise KernelError(errno.EBUSY, f"mount {fstype} on {path}: already mounted there")
    return {"fstype": fstype, "target": path, "source": source, "dev": f"0:{mnt.sb.dev}"}


async def do_umount(kernel: "Kernel", target: str, comm: str) -> None:
    path = _target(kernel, target, "umount")
    table = mounts(kernel)
    mnt = table.top(path)
    if mnt is None:
        raise KernelError(errno.EINVAL, f"umount {path}: not mounted")
    below = [m.target for m in table.table() if m.target and m.target.startswith(path.rstrip("/") + "/")]
    if below or mnt.count > 1:
        raise KernelError(errno.EBUSY, f"umount {path}: target is busy "
                          + (f"({below[0]} is mounted below it)" if below else
                             f"({mnt.count - 1} other user(s) of the mount)"))

    def call(fn: int, *args: int) -> Any:
        return kernel.sanitizer.call_pointer(fn, *args, via="deactivate_locked_super", comm=comm)
    await table.put(mnt, call)


def mount_table(kernel: "Kernel") -> list[dict[str, Any]]:
    """/proc/mounts' fields for the client's mounts, in mount order."""
    return [{"source": m.source, "target": m.target, "fstype": m.sb.fstype.name,
             "dev": f"0:{m.sb.dev}"} for m in mounts(kernel).table()]
