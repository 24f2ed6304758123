"""Inodes' lives (Linux's fs/inode.c): `iput`, link counts
(`inc_nlink`, `drop_nlink`, `clear_nlink`), `generic_delete_inode`,
`free_inode_nonrcu`, and the clock: `current_time`, `inode_set_ctime_current`
(6.6+; `simple_inode_init_ts` is libfs's).  `new_inode` is in libfs.py, with
the pseudo filesystems that call it.

`iput` of the last reference asks `s_op->drop_inode` (Linux's
generic_drop_inode otherwise: an inode kloader made is never hashed, so
it is dropped), then evicts it (`s_op->evict_inode`) and destroys it:
`s_op->destroy_inode`, then `s_op->free_inode` (which Linux calls after an
RCU grace period; here at once) or, without one, kloader frees it.  A
filesystem with `s_op->alloc_inode` gets inodes from kloader's new_inode
all the same, so kloader frees them and its destroy/free operations are not
called on memory they did not allocate.
"""

from __future__ import annotations

import errno
import time
from typing import Any

from ..errors import KernelError
from ..kernel.api import export
from ..kernel.panic import warn
from ..time.timekeeping import NSEC_PER_SEC, return_timespec64
from .file import INODE
from .super import SB, SOPS, STRUCTS as SUPER_STRUCTS, Call, SuperBlock, caller_call, supers

STRUCTS = (*SUPER_STRUCTS, INODE)   # what these functions read at the kernel's offsets


def _sb_of(ctx: Any, inode: int, who: str) -> SuperBlock:
    sb = supers(ctx.kernel).of(ctx.mem.read_u64(inode + ctx.kernel.layouts[INODE].i_sb))
    if sb is None or inode not in sb.objects:
        raise KernelError(errno.EINVAL, f"{who}: {inode:#x} is not an inode kloader's new_inode made")
    return sb


async def iput_inode(ctx: Any, inode: int, call: Call) -> None:
    mem, off = ctx.mem, ctx.kernel.layouts[INODE]
    count = mem.read_u32(inode + off.i_count)
    if count == 0:
        raise KernelError(errno.EINVAL, f"iput: {inode:#x} has no reference to put")
    mem.write_u32(inode + off.i_count, count - 1)
    if count > 1:
        return
    sb = _sb_of(ctx, inode, "iput")
    s_op = mem.read_u64(sb.address + ctx.kernel.layouts[SB].s_op)
    ops = ctx.kernel.layouts[SOPS]

    def op(member: str) -> int:
        return mem.read_u64(s_op + getattr(ops, member)) if s_op else 0
    drop = op("drop_inode")
    if drop and not (await call(drop, inode)) & 0xFFFFFFFF:
        return                                          # kept in the inode cache
    if op("evict_inode"):
        await call(op("evict_inode"), inode)
    if not op("alloc_inode"):
        if op("destroy_inode"):
            await call(op("destroy_inode"), inode)
        if op("free_inode"):
            await call(op("free_inode"), inode)         # Linux's i_callback, after a grace period
            return
    free(ctx, inode)


def free(ctx: Any, inode: int) -> None:
    """The inode's memory back, once: a second free is the caller's bug."""
    supers(ctx.kernel).release(_sb_of(ctx, inode, "free_inode_nonrcu"), inode)


@export("iput", "void iput(struct inode *inode)", nargs=1)
async def iput(ctx: Any, inode: int) -> None:
    if inode:
        await iput_inode(ctx, inode, caller_call(ctx))


@export("free_inode_nonrcu", "void free_inode_nonrcu(struct inode *inode)", nargs=1)
def free_inode_nonrcu(ctx: Any, inode: int) -> None:
    free(ctx, inode)


@export("generic_delete_inode", "int generic_delete_inode(struct inode *inode)", nargs=1)
def generic_delete_inode(ctx: Any, inode: int) -> int:
    return 1


def _nlink(ctx: Any, inode: int) -> int:
    return inode + ctx.kernel.layouts[INODE].i_nlink


@export("inc_nlink", "void inc_nlink(struct inode *inode)", nargs=1)
def inc_nlink(ctx: Any, inode: int) -> None:
    at = _nlink(ctx, inode)
    ctx.mem.write_u32(at, (ctx.mem.read_u32(at) + 1) & 0xFFFFFFFF)


@export("drop_nlink", "void drop_nlink(struct inode *inode)", nargs=1)
def drop_nlink(ctx: Any, inode: int) -> None:
    at = _nlink(ctx, inode)
    links = ctx.mem.read_u32(at)
    if links == 0:
        warn(ctx, "", "fs/inode.c", "drop_nlink")               # WARN_ON(inode->i_nlink == 0)
        return
    ctx.mem.write_u32(at, links - 1)


@export("clear_nlink", "void clear_nlink(struct inode *inode)", nargs=1)
def clear_nlink(ctx: Any, inode: int) -> None:
    ctx.mem.write_u32(_nlink(ctx, inode), 0)


def now(ctx: Any, inode: int) -> tuple[int, int]:
    """current_time(): the wall clock (coarse) truncated to the superblock's
    `s_time_gran` (timestamp_truncate); an inode without a superblock is
    Linux's WARN."""
    sec, nsec = divmod(time.time_ns(), NSEC_PER_SEC)
    sb = ctx.mem.read_u64(inode + ctx.kernel.layouts[INODE].i_sb)
    if not sb:
        warn(ctx, "current_time() called with uninitialized super_block in the inode",
             "fs/inode.c", "current_time")
        return sec, nsec
    gran = ctx.mem.read_u32(sb + ctx.kernel.layouts[SB].s_time_gran)
    if gran == NSEC_PER_SEC:
        nsec = 0
    elif 1 < gran < NSEC_PER_SEC:
        nsec -= nsec % gran
    elif gran != 1:
        warn(ctx, f"invalid file time granularity: {gran}", "fs/inode.c", "timestamp_truncate")
    return sec, nsec


def set_time(ctx: Any, inode: int, which: str, sec: int, nsec: int) -> None:
    """inode_set_{a,m,c}time_to_ts() at this kernel's members: 6.11+'s
    `i_ctime_sec`/`i_ctime_nsec`, else 6.6's `__i_ctime` or 6.1's
    `i_ctime`, a timespec64 {tv_sec, tv_nsec}."""
    mem, at = ctx.mem, ctx.kernel.layouts[INODE]
    split = getattr(at, f"i_{which}_sec")
    if split is not None:
        mem.write_u64(inode + split, sec & 0xFFFFFFFFFFFFFFFF)
        mem.write_u32(inode + getattr(at, f"i_{which}_nsec"), nsec)
        return
    whole = getattr(at, f"__i_{which}", None) if which == "ctime" else None
    if whole is None:
        whole = getattr(at, f"i_{which}")
    if whole is None:
        raise KernelError(errno.ENOSYS, f"struct inode has no {which} in this kernel's layouts")
    mem.write_u64(inode + whole, sec & 0xFFFFFFFFFFFFFFFF)
    mem.write_u64(inode + whole + 8, nsec)


@export("current_time", "struct timespec64 current_time(struct inode *inode)", nargs=1)
def current_time(ctx: Any, inode: int) -> int:
    return return_timespec64(ctx, *now(ctx, inode))


@export("inode_set_ctime_current", "struct timespec64 inode_set_ctime_current(struct inode *inode)",
        nargs=1)
def inode_set_ctime_current(ctx: Any, inode: int) -> int:
    """Linux 6.6+: ctime is now (6.13's multigrain stamps are not emulated)."""
    sec, nsec = now(ctx, inode)
    set_time(ctx, inode, "ctime", sec, nsec)
    return return_timespec64(ctx, sec, nsec)
