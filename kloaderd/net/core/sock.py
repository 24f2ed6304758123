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
protocol gets a lower index than on Linux.  Layout (Linux 6.1 x86-64):
proto {inuse_idx@224, memory_allocated@272, per_cpu_fw_alloc@280,
sysctl_mem@304, slab@344, obj_size@352, slab_flags@356, rsk_prot@376,
twsk_prot@384, owner@400, name@408 (32 bytes), node@440};
request_sock_ops {obj_size@4, slab@8, slab_name@16};
timewait_sock_ops {twsk_slab@0, twsk_slab_name@8, twsk_obj_size@16}.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.printk import KERN_CRIT, KERN_ERR
from ...kernel.registry import record_listed
from ...lib.list import GuestList
from ...mm.slab_common import SLAB_HWCACHE_ALIGN, kmem_cache_create, kmem_cache_destroy

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

INUSE_IDX, MEMORY_ALLOCATED, PER_CPU_FW_ALLOC, SYSCTL_MEM = 224, 272, 280, 304
SLAB, OBJ_SIZE, SLAB_FLAGS, RSK_PROT, TWSK_PROT, OWNER, NAME, NODE = (
    344, 352, 356, 376, 384, 400, 408, 440)
RSK_OBJ_SIZE, RSK_SLAB, RSK_SLAB_NAME = 4, 8, 16
TW_SLAB, TW_SLAB_NAME, TW_OBJ_SIZE = 0, 8, 16
SLAB_ACCOUNT = 0x04000000
PROTO_INUSE_NR = 64


class Protos:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)
        self.inuse: set[int] = set()


def _name(ctx: Any, prot: int) -> str:
    return ctx.mem.read(prot + NAME, 32).split(b"\0", 1)[0].decode("utf-8", "replace")


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
    if mem.read_u64(prot + MEMORY_ALLOCATED):
        for field, what in ((SYSCTL_MEM, "sysctl_mem"), (PER_CPU_FW_ALLOC, "per_cpu_fw_alloc")):
            if not mem.read_u64(prot + field):
                _log(ctx, KERN_ERR, f"{name}: missing {what}")
                return -errno.EINVAL
    flags = mem.read_u32(prot + SLAB_FLAGS)
    if alloc_slab & 0xFFFFFFFF:
        cache = kmem_cache_create(ctx, prot + NAME, mem.read_u32(prot + OBJ_SIZE), 0,
                                  SLAB_HWCACHE_ALIGN | SLAB_ACCOUNT | flags, 0)
        mem.write_u64(prot + SLAB, cache)
        if not cache:
            _log(ctx, KERN_CRIT, f"{name}: Can't create sock SLAB cache!")
            return -errno.ENOBUFS
        rsk = mem.read_u64(prot + RSK_PROT)
        if rsk and not _named_cache(ctx, rsk, RSK_SLAB_NAME, RSK_SLAB,
                                    mem.read_u32(rsk + RSK_OBJ_SIZE), SLAB_ACCOUNT | flags,
                                    f"request_sock_{name}"):
            _log(ctx, KERN_CRIT, f"{name}: Can't create request sock SLAB cache!")
            _undo_caches(ctx, prot)
            return -errno.ENOMEM
        tw = mem.read_u64(prot + TWSK_PROT)
        if tw and not _named_cache(ctx, tw, TW_SLAB_NAME, TW_SLAB, mem.read_u32(tw + TW_OBJ_SIZE),
                                   SLAB_ACCOUNT | flags, f"tw_sock_{name}"):
            _undo_caches(ctx, prot)
            return -errno.ENOBUFS
    state = ctx.kernel.subsystem(Protos)
    index = next(i for i in range(PROTO_INUSE_NR) if i not in state.inuse or i == PROTO_INUSE_NR - 1)
    mem.write_u32(prot + INUSE_IDX, index)
    if index == PROTO_INUSE_NR - 1:
        _log(ctx, KERN_ERR, "PROTO_INUSE_NR exhausted")
        _undo_caches(ctx, prot)
        return -errno.ENOSPC
    state.inuse.add(index)
    state.list.add(ctx, prot + NODE)
    record_listed(ctx.kernel, "proto", prot, f"socket protocol {name}", state.list, NODE,
                  mem.read_u64(prot + OWNER))
    return 0


def _undo_caches(ctx: Any, prot: int) -> None:
    mem = ctx.mem
    for ops_off, name_off, slab_off in ((TWSK_PROT, TW_SLAB_NAME, TW_SLAB),
                                        (RSK_PROT, RSK_SLAB_NAME, RSK_SLAB)):
        ops = mem.read_u64(prot + ops_off)
        if ops:
            _drop_cache(ctx, ops, name_off, slab_off)
    kmem_cache_destroy(ctx, mem.read_u64(prot + SLAB))
    mem.write_u64(prot + SLAB, 0)


@export("proto_unregister", "void proto_unregister(struct proto *prot)", nargs=1)
def proto_unregister(ctx: Any, prot: int) -> None:
    mem, state = ctx.mem, ctx.kernel.subsystem(Protos)
    index = mem.read_u32(prot + INUSE_IDX)
    if index != PROTO_INUSE_NR - 1:
        state.inuse.discard(index)
    state.list.delete(ctx, prot + NODE)
    ctx.kernel.registrations.registry("proto").remove(prot)
    _undo_caches(ctx, prot)
