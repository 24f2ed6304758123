"""net/core/sock.c: registering a socket protocol's `struct proto`
(`proto_register`), what every address family module does for its sockets.

As Linux 6.1: a protocol with memory accounting but no `sysctl_mem` or
`per_cpu_fw_alloc` is "NAME: missing sysctl_mem" (…per_cpu_fw_alloc) and
-EINVAL; with `alloc_slab` its socket cache is made (kmem_cache_create of
obj_size, SLAB_HWCACHE_ALIGN | SLAB_ACCOUNT | slab_flags; failing is "NAME:
Can't create sock SLAB cache!" and -ENOBUFS), and so are its request-sock
("request_sock_NAME") and timewait ("tw_sock_NAME") caches when it has
those ops; it takes the first free of the 64 `inuse_idx` slots ("PROTO_INUSE_NR
exhausted", -ENOSPC, when only the last is left) and goes on `proto_list`
through `node`.  `proto_unregister` undoes all of it.

Where kloader differs: the kernel's own protocols (TCP, UDP, raw, ping,
UNIX, netlink, packet, …) do not occupy inuse_idx slots here, so a module's
protocol gets a lower index than on Linux.  proto, request_sock_ops and
timewait_sock_ops are read at the running kernel's offsets.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.printk import KERN_CRIT, KERN_ERR
from ...kernel.registry import record_listed
from ...lib.list import GuestList
from ...mm.slab_common import SLAB_FLAGS as SLAB_FLAG_VALUES, kmem_cache_create, kmem_cache_destroy

PROTO = struct("struct proto", "net/sock.h", "inuse_idx", "memory_allocated", "per_cpu_fw_alloc",
               "sysctl_mem", "slab", "obj_size", "slab_flags", "rsk_prot", "twsk_prot", "owner", "name",
               "node")
RSK_OPS = struct("struct request_sock_ops", "net/request_sock.h", "obj_size", "slab", "slab_name")
TWSK_OPS = struct("struct timewait_sock_ops", "net/timewait_sock.h", "twsk_slab", "twsk_slab_name",
                  "twsk_obj_size")
STRUCTS = (PROTO, RSK_OPS, TWSK_OPS)      # what these functions read at the kernel's offsets
PROTO_NAME_LEN = 32                       # char name[32]
PROTO_INUSE_NR = 64


class Protos:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)
        self.inuse: set[int] = set()


def _name(ctx: Any, prot: int) -> str:
    return ctx.mem.read(prot + ctx.kernel.layouts[PROTO].name, PROTO_NAME_LEN).split(b"\0", 1)[0].decode("utf-8", "replace")


def _log(ctx: Any, level: int, text: str) -> None:
    ctx.kernel.log.emit(level, text, getattr(ctx.module, "name", None))


def _named_cache(ctx: Any, ops: int, name_off: int, slab_off: int, size: int, flags: int,
                 label: str) -> bool:
    """kasprintf(label) into ops->name_off, kmem_cache_create into ops->slab_off."""
    slab = ctx.kernel.slab
    text = label.encode() + b"\0"
    name = slab.alloc(len(text), getattr(ctx.module, "name", None))
    if not name:
        return False
    ctx.mem.write(name, text)
    ctx.mem.write_u64(ops + name_off, name)
    cache = kmem_cache_create(ctx, name, size, 0, flags, 0)
    ctx.mem.write_u64(ops + slab_off, cache)
    return bool(cache)


def _drop_cache(ctx: Any, ops: int, name_off: int, slab_off: int) -> None:
    """req_prot_cleanup()/tw_prot_cleanup()."""
    kmem_cache_destroy(ctx, ctx.mem.read_u64(ops + slab_off))
    name = ctx.mem.read_u64(ops + name_off)
    if name:
        ctx.kernel.slab.free(name, getattr(ctx.module, "name", None))
    ctx.mem.write_u64(ops + name_off, 0)
    ctx.mem.write_u64(ops + slab_off, 0)


@export("proto_register", "int proto_register(struct proto *prot, int alloc_slab)", nargs=2)
def proto_register(ctx: Any, prot: int, alloc_slab: int) -> int:
    mem, name = ctx.mem, _name(ctx, prot)
    layouts = ctx.kernel.layouts
    p, rsk_ops, tw_ops = layouts[PROTO], layouts[RSK_OPS], layouts[TWSK_OPS]
    if mem.read_u64(prot + p.memory_allocated):
        for field, what in ((p.sysctl_mem, "sysctl_mem"), (p.per_cpu_fw_alloc, "per_cpu_fw_alloc")):
            if not mem.read_u64(prot + field):
                _log(ctx, KERN_ERR, f"{name}: missing {what}")
                return -errno.EINVAL
    flags = mem.read_u32(prot + p.slab_flags)
    if alloc_slab & 0xFFFFFFFF:
        known = ctx.kernel.layouts[SLAB_FLAG_VALUES]
        cache = kmem_cache_create(ctx, prot + p.name, mem.read_u32(prot + p.obj_size), 0,
                                  known.SLAB_HWCACHE_ALIGN | known.SLAB_ACCOUNT | flags, 0)
        mem.write_u64(prot + p.slab, cache)
        if not cache:
            _log(ctx, KERN_CRIT, f"{name}: Can't create sock SLAB cache!")
            return -errno.ENOBUFS
        rsk = mem.read_u64(prot + p.rsk_prot)
        if rsk and not _named_cache(ctx, rsk, rsk_ops.slab_name, rsk_ops.slab,
                                    mem.read_u32(rsk + rsk_ops.obj_size), known.SLAB_ACCOUNT | flags,
                                    f"request_sock_{name}"):
            _log(ctx, KERN_CRIT, f"{name}: Can't create request sock SLAB cache!")
            _undo_caches(ctx, prot)
            return -errno.ENOMEM
        tw = mem.read_u64(prot + p.twsk_prot)
        if tw and not _named_cache(ctx, tw, tw_ops.twsk_slab_name, tw_ops.twsk_slab,
                                   mem.read_u32(tw + tw_ops.twsk_obj_size), known.SLAB_ACCOUNT | flags,
                                   f"tw_sock_{name}"):
            _undo_caches(ctx, prot)
            return -errno.ENOBUFS
    state = ctx.kernel.subsystem(Protos)
    index = next(i for i in range(PROTO_INUSE_NR) if i not in state.inuse or i == PROTO_INUSE_NR - 1)
    mem.write_u32(prot + p.inuse_idx, index)
    if index == PROTO_INUSE_NR - 1:
        _log(ctx, KERN_ERR, "PROTO_INUSE_NR exhausted")
        _undo_caches(ctx, prot)
        return -errno.ENOSPC
    state.inuse.add(index)
    state.list.add(ctx, prot + p.node)
    record_listed(ctx.kernel, "proto", prot, f"socket protocol {name}", state.list, p.node,
                  mem.read_u64(prot + p.owner))
    return 0


def _undo_caches(ctx: Any, prot: int) -> None:
    mem, layouts = ctx.mem, ctx.kernel.layouts
    p, rsk_ops, tw_ops = layouts[PROTO], layouts[RSK_OPS], layouts[TWSK_OPS]
    for ops_off, name_off, slab_off in ((p.twsk_prot, tw_ops.twsk_slab_name, tw_ops.twsk_slab),
                                        (p.rsk_prot, rsk_ops.slab_name, rsk_ops.slab)):
        ops = mem.read_u64(prot + ops_off)
        if ops:
            _drop_cache(ctx, ops, name_off, slab_off)
    kmem_cache_destroy(ctx, mem.read_u64(prot + p.slab))
    mem.write_u64(prot + p.slab, 0)


@export("proto_unregister", "void proto_unregister(struct proto *prot)", nargs=1)
def proto_unregister(ctx: Any, prot: int) -> None:
    mem, state, p = ctx.mem, ctx.kernel.subsystem(Protos), ctx.kernel.layouts[PROTO]
    index = mem.read_u32(prot + p.inuse_idx)
    if index != PROTO_INUSE_NR - 1:
        state.inuse.discard(index)
    state.list.delete(ctx, prot + p.node)
    ctx.kernel.registrations.registry("proto").remove(prot)
    _undo_caches(ctx, prot)
