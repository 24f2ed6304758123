"""net/core/net_namespace.c: the initial network namespace (`init_net`) and
the per-namespace operations modules register (`register_pernet_subsys`,
`register_pernet_device`).

`init_net` is real memory of struct net's size, holding what kloader keeps
of it: `passive` and `ns.count` at 1, `list` on `net_namespace_list`,
`user_ns` pointing at `init_user_ns`, an empty `dev_base_head` and
`rules_ops`, and `gen`, the `struct net_generic` array of per-subsystem
data that `net_generic(net, id)` indexes.  The other fields are zero.
`pernet_ops_rwsem` and `net_rwsem` are unlocked semaphores.

Registering is Linux 6.1's: under `pernet_ops_rwsem` held for writing, an
`id` (if the ops have one) is the smallest free one from MIN_PERNET_OPS_ID
(3), `size` bytes are allocated zeroed for the namespace and stored at
`ng->ptr[id]` (the array grown as `net_assign_generic` grows it), and
`init(&init_net)` runs; when it fails, the data is freed, `exit_batch` runs
on an empty list, the id is freed and the error returned.  Subsystems go
before the first device (`first_device`), devices at the end of
`pernet_list`.  Unregistering takes the ops off the list, then runs
`pre_exit(net)`, a grace period, `exit(net)`, `exit_batch(net_exit_list)`
and frees the data and the id.  Unregistering ops not registered is
Linux's `list_del corruption` BUG.  `net_ns_barrier` takes and gives back
`pernet_ops_rwsem`, waiting for any registration under way.

Where kloader differs: `init_net` is the only namespace; kloader's own
subsystems register no pernet ops, so a module's id starts at
MIN_PERNET_OPS_ID where Linux's built-in ones took the first ids.  The
structures are read at the running kernel's offsets (`kernel.layouts`):
struct net is 4,224 bytes on 6.1.0-50, 4,288 on 6.1.0-57 and its members
move between releases; `exit_batch_rtnl`, backported to Debian's 6.1, is
done without where a release lacks it.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import AsyncIterator
from typing import Any

from ...kernel import api
from ...kernel.api import at_boot, export
from ...kernel.callback import call_module_code
from ...kernel.kdata import DataExport, export_data
from ...kernel.layouts import struct
from ...kernel.locking.rwsem import down_write, init_rwsem, up_write
from ...kernel.rcu import synchronize_rcu
from ...kernel.registry import owner_of
from ...lib.list import LIST_HEAD_SIZE, GuestList, init_list_head
from .rtnetlink import RtnlMutex, rtnl_locked

NET = struct("struct net", "net/net_namespace.h", "passive", "list", "exit_list", "user_ns", "ns.count",
             "dev_base_head", "rules_ops", "gen", "netdev_chain", "proc_net", "proc_net_stat")
PERNET_OPS = struct("struct pernet_operations", "net/net_namespace.h", "list", "init", "pre_exit", "exit",
                    "exit_batch", "id", "size", optional=("exit_batch_rtnl",))
NET_GENERIC = struct("struct net_generic", "net/netns/generic.h", "s.len")
STRUCTS = (NET, PERNET_OPS, NET_GENERIC)    # what these functions read at the kernel's offsets

RWSEM_SIZE = 40
MAX_PERNET_SIZE = 1 << 22      # a larger ops->size is a corrupted structure, not a request

export_data("init_net", DataExport(struct=NET))
for _name, _size in (("net_namespace_list", LIST_HEAD_SIZE), ("pernet_ops_rwsem", RWSEM_SIZE),
                     ("net_rwsem", RWSEM_SIZE)):
    export_data(_name, DataExport(lambda _profile, size=_size: size))


def min_pernet_ops_id(kernel: Any) -> int:
    """MIN_PERNET_OPS_ID: (sizeof(struct net_generic) + 7) / 8, the slots of
    ng->ptr[] that its header `s` overlays."""
    return (kernel.layouts[NET_GENERIC].size + 7) // 8


def _int(rax: int) -> int:
    """A callback's `int` result."""
    rax &= 0xFFFFFFFF
    return rax - (1 << 32) if rax & 0x80000000 else rax


class NetNamespaces:
    """init_net, the namespace list and pernet_list of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        mem, symbols = kernel.mem, kernel.symbols

        def data(name: str, size: int) -> int:
            found = symbols.get(name)      # a profile's export; kloader's own kernel has none
            return found.address if found is not None else kernel.slab.alloc(size, None, zero=True)
        self.layout = layout = kernel.layouts[NET]
        self.len = kernel.layouts[NET_GENERIC].s_len      # of ng->s.len
        self.min_id = min_pernet_ops_id(kernel)
        self.net = data("init_net", layout.size)
        self.rwsem = data("pernet_ops_rwsem", RWSEM_SIZE)
        init_rwsem(mem, self.rwsem)
        init_rwsem(mem, data("net_rwsem", RWSEM_SIZE))
        net = self.net
        mem.write_u32(net + layout.passive, 1)
        mem.write_u32(net + layout.ns_count, 1)
        user_ns = symbols.get("init_user_ns")
        mem.write_u64(net + layout.user_ns, user_ns.address if user_ns is not None else 0)
        for head in (layout.exit_list, layout.dev_base_head, layout.rules_ops):
            init_list_head(mem, net + head)
        namespaces = data("net_namespace_list", LIST_HEAD_SIZE)
        init_list_head(mem, namespaces)
        for entry, other in ((net + layout.list, namespaces), (namespaces, net + layout.list)):
            mem.write_u64(entry, other)
            mem.write_u64(entry + 8, other)
        self.gen = 0
        self.max_gen_ptrs = self.min_id
        if not self._alloc_generic():
            raise MemoryError("no memory for init_net's net_generic")
        self.pernet_list = GuestList(kernel)
        self.first_device = self.pernet_list.head
        self.exit_list = GuestList(kernel)          # net_exit_list, on the caller's stack in Linux
        self.dev_kill_list = GuestList(kernel)      # dev_kill_list, the same
        self.ids: set[int] = set()

    # -- net_generic -------------------------------------------------------------
    def _alloc_generic(self) -> bool:
        """net_alloc_generic() with `max_gen_ptrs` slots, the old ones copied,
        published in net->gen (the old array is freed: no reader holds it
        across the call here)."""
        mem, slab = self.kernel.mem, self.kernel.slab
        new = slab.alloc(self.max_gen_ptrs * 8, None, zero=True)
        if not new:
            return False
        old = self.gen
        if old:
            length = mem.read_u32(old + self.len)
            first = self.min_id * 8
            mem.write(new + first, mem.read(old + first, (length - self.min_id) * 8))
            slab.free(old, None)
        mem.write_u32(new + self.len, self.max_gen_ptrs)
        mem.write_u64(self.net + self.layout.gen, new)
        self.gen = new
        return True

    def assign_generic(self, pernet_id: int, data: int) -> bool:
        """net_assign_generic(): ng->ptr[id] = data, growing the array."""
        if self.kernel.mem.read_u32(self.gen + self.len) <= pernet_id and not self._alloc_generic():
            return False
        self.kernel.mem.write_u64(self.gen + pernet_id * 8, data)
        return True

    def generic(self, pernet_id: int) -> int:
        return self.kernel.mem.read_u64(self.gen + pernet_id * 8)

    # -- ids ---------------------------------------------------------------------
    def alloc_id(self) -> int:
        """ida_alloc_min(&net_generic_ids, MIN_PERNET_OPS_ID)."""
        pernet_id = self.min_id
        while pernet_id in self.ids:
            pernet_id += 1
        self.ids.add(pernet_id)
        self.max_gen_ptrs = max(self.max_gen_ptrs, pernet_id + 1)
        return pernet_id


@at_boot
def _boot(kernel: Any) -> None:
    """Under a profile whose layouts these are, init_net and the semaphores
    are set up before any module reads them.  kloader's own kernel exports
    none of them, so its namespace is made on first use."""
    if kernel.profile is not None and api.emulated_for("register_pernet_subsys",
                                                       kernel.profile.version, kernel.layouts):
        kernel.subsystem(NetNamespaces)


class _Ops:
    """A struct pernet_operations as the kernel reads it."""

    def __init__(self, kernel: Any, ops: int) -> None:
        mem, layout = kernel.mem, kernel.layouts[PERNET_OPS]
        self.address = ops
        self.list = ops + layout.list
        (self.init, self.pre_exit, self.exit, self.exit_batch, self.id, self.size) = (
            mem.read_u64(ops + off) for off in (
                layout.init, layout.pre_exit, layout.exit, layout.exit_batch, layout.id, layout.size))
        rtnl = layout.exit_batch_rtnl
        self.exit_batch_rtnl = mem.read_u64(ops + rtnl) if rtnl is not None else 0


async def _ops_init(ctx: Any, ns: NetNamespaces, ops: _Ops, pernet_id: int) -> int:
    """ops_init(ops, &init_net)."""
    slab, owner = ctx.kernel.slab, getattr(ctx.module, "name", None)
    data = 0
    if ops.id and ops.size:
        if ops.size > MAX_PERNET_SIZE:
            return -errno.ENOMEM
        data = slab.alloc(ops.size, owner, zero=True)
        if not data:
            return -errno.ENOMEM
        if not ns.assign_generic(pernet_id, data):
            slab.free(data, owner)
            return -errno.ENOMEM
    err = _int(await call_module_code(ctx, ops.init, ns.net)) if ops.init else 0
    if err and data:
        ns.assign_generic(pernet_id, 0)
        slab.free(data, owner)
    return err


async def _exit_nets(ctx: Any, ns: NetNamespaces, ops: _Ops, nets: list[int],
                     pernet_id: int) -> None:
    """ops_pre_exit_list, a grace period, ops_exit_list and ops_free_list
    for `nets` (init_net, or none when an init failed)."""
    mem = ctx.mem
    for net in nets:
        ns.exit_list.add_tail(ctx, net + ns.layout.exit_list)
    try:
        for net in nets:
            if ops.pre_exit:
                await call_module_code(ctx, ops.pre_exit, net)
        await _finish(synchronize_rcu(ctx))
        if ops.exit_batch_rtnl:
            async with rtnl_locked(ctx):
                await call_module_code(ctx, ops.exit_batch_rtnl, ns.exit_list.head,
                                       ns.dev_kill_list.head)
                devices = ctx.kernel.subsystem(RtnlMutex).devices    # none made: none to kill
                if devices is not None:
                    await devices.unregister_list(ctx, ns.dev_kill_list.head)
        for net in nets:
            if ops.exit:
                await call_module_code(ctx, ops.exit, net)
        if ops.exit_batch:
            await call_module_code(ctx, ops.exit_batch, ns.exit_list.head)
        if ops.id and ops.size:
            for _net in nets:
                ctx.kernel.slab.free(ns.generic(pernet_id), getattr(ctx.module, "name", None))
                ns.assign_generic(pernet_id, 0)     # (Linux leaves the freed pointer)
    finally:
        # Also when an exit oopsed: the oops ends the removal, and the
        # next unregister must find net_exit_list empty (Linux would keep
        # pernet_ops_rwsem for ever instead).
        for net in nets:
            init_list_head(mem, net + ns.layout.exit_list)
        init_list_head(mem, ns.exit_list.head)
        init_list_head(mem, ns.dev_kill_list.head)      # (list_del poisoned it)


async def _finish(result: Any) -> None:
    """Wait for a kernel function that may sleep (it returned a coroutine)."""
    if not isinstance(result, int):
        await result


@contextlib.asynccontextmanager
async def pernet_ops_locked(ctx: Any) -> AsyncIterator[NetNamespaces]:
    """down_write(&pernet_ops_rwsem) ... up_write(): no namespace comes or
    goes, and no pernet ops are registered, meanwhile."""
    ns = ctx.kernel.subsystem(NetNamespaces)
    await _finish(down_write(ctx, ns.rwsem))
    try:
        yield ns
    finally:
        up_write(ctx, ns.rwsem)


def _forget(entry: Any) -> None:
    """on_leftover: a module freed with its ops still registered."""
    ns, pernet_id = entry.data
    _forget_ops(ns, entry.address, pernet_id, entry.owner.name if entry.owner else None)


def _forget_ops(ns: NetNamespaces, ops: int, pernet_id: int | None, owner: str | None) -> None:
    """Take ops whose module is going off pernet_list, with their id and
    init_net's data for them, without calling into the module."""
    entry = ops + ns.kernel.layouts[PERNET_OPS].list
    ns.pernet_list.unlink_quietly(entry)
    if ns.first_device == entry:
        ns.first_device = ns.kernel.mem.read_u64(entry)
    if pernet_id is not None:
        if ns.kernel.mem.read_u32(ns.gen + ns.len) > pernet_id and ns.generic(pernet_id):
            ns.kernel.slab.free(ns.generic(pernet_id), owner)
            ns.assign_generic(pernet_id, 0)
        ns.ids.discard(pernet_id)


async def _register(ctx: Any, address: int, device: bool) -> int:
    async with pernet_ops_locked(ctx) as ns:
        ops = _Ops(ctx.kernel, address)
        pernet_id = None
        if ops.id:
            pernet_id = ns.alloc_id()
            ctx.mem.write_u32(ops.id, pernet_id)
        before = ns.pernet_list.head if device else ns.first_device
        ns.pernet_list.insert_before(ctx, ops.list, before)
        err = 0
        try:
            if ops.init or ops.id and ops.size:
                err = await _ops_init(ctx, ns, ops, pernet_id or 0)
        except BaseException:          # init oopsed: the load unwinds without the ops
            _forget_ops(ns, address, pernet_id, getattr(ctx.module, "name", None))
            raise
        if err:
            ns.pernet_list.delete(ctx, ops.list)
            await _exit_nets(ctx, ns, ops, [], pernet_id or 0)
            ns.ids.discard(pernet_id)
            return err
        if device and ns.first_device == ns.pernet_list.head:
            ns.first_device = ops.list
        name = ctx.kernel.symbolize(address, False) or f"{address:#x}"
        ctx.kernel.registrations.registry("pernet").add(
            address, f"pernet operations {name}", owner=owner_of(ctx.kernel, address),
            address=address, points_to=(ops.init, ops.pre_exit, ops.exit, ops.exit_batch),
            data=(ns, pernet_id), on_leftover=_forget)
        return 0


async def _unregister(ctx: Any, address: int, device: bool) -> int:
    async with pernet_ops_locked(ctx) as ns:
        ops = _Ops(ctx.kernel, address)
        if device and ns.first_device == ops.list:
            ns.first_device = ctx.mem.read_u64(ops.list)
        ns.pernet_list.delete(ctx, ops.list)     # not registered: list_del corruption
        pernet_id = ctx.mem.read_u32(ops.id) if ops.id else None
        ctx.kernel.registrations.registry("pernet").remove(address)
        await _finish(synchronize_rcu(ctx))
        await _exit_nets(ctx, ns, ops, [ns.net], pernet_id or 0)
        ns.ids.discard(pernet_id)
        return 0


@export("register_pernet_subsys", "int register_pernet_subsys(struct pernet_operations *ops)",
        nargs=1, gpl=True)
def register_pernet_subsys(ctx: Any, ops: int) -> Any:
    return _register(ctx, ops, device=False)


@export("unregister_pernet_subsys",
        "void unregister_pernet_subsys(struct pernet_operations *ops)", nargs=1, gpl=True)
def unregister_pernet_subsys(ctx: Any, ops: int) -> Any:
    return _unregister(ctx, ops, device=False)


@export("register_pernet_device", "int register_pernet_device(struct pernet_operations *ops)",
        nargs=1, gpl=True)
def register_pernet_device(ctx: Any, ops: int) -> Any:
    return _register(ctx, ops, device=True)


@export("unregister_pernet_device",
        "void unregister_pernet_device(struct pernet_operations *ops)", nargs=1, gpl=True)
def unregister_pernet_device(ctx: Any, ops: int) -> Any:
    return _unregister(ctx, ops, device=True)


async def _barrier(ctx: Any) -> int:
    async with pernet_ops_locked(ctx):
        return 0


@export("net_ns_barrier", "void net_ns_barrier(void)", nargs=0)
def net_ns_barrier(ctx: Any) -> Any:
    """Wait for any namespace being set up or torn down (and any pernet ops
    being registered) to finish: pernet_ops_rwsem taken and given back."""
    return _barrier(ctx)
