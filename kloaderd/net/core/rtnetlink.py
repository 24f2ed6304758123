"""net/core/rtnetlink.c: the RTNL mutex (`rtnl_lock`, `rtnl_is_locked`, …),
link types (`rtnl_link_register`), what `ip link add type KIND` finds, the
(protocol, message type) -> doit/dumpit handler table
(`rtnl_register_module`, `__rtnl_register_many`, `rtnl_unregister*`) and
the address families' link attribute ops (`rtnl_af_register`); the last
two are in `rtnl_handlers.py`.

As Linux 6.1: a kind already registered is -EEXIST; ops that can create
devices (alloc or setup) but have no dellink get unregister_netdevice_queue
as their dellink; the ops are appended to `link_ops` through their `list`
(in guest memory).  `rtnl_link_unregister` (under pernet_ops_rwsem and the
RTNL) destroys the kind's devices — each through the kind's `dellink`
onto a list, then unregister_netdevice_many — and unlinks;
`__rtnl_link_unregister`, for a caller holding the RTNL, does the same.  No link kind is built into
Debian's kernel.  rtnl_link_ops {list, kind (char *), alloc, setup,
dellink} is read at the running kernel's offsets.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import AsyncIterator
from typing import Any, Protocol

from ...kernel.api import export
from ...kernel.api.sched import mutex_is_locked, mutex_lock, mutex_trylock, mutex_unlock
from ...kernel.layouts import struct
from ...kernel.registry import record_listed
from ...lib.list import GuestList

LINK_OPS = struct("struct rtnl_link_ops", "net/rtnetlink.h", "list", "kind", "alloc", "setup", "dellink")
STRUCTS = (LINK_OPS,)      # what these functions read at the kernel's offsets


class LinkOps:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


def _kind(ctx: Any, ops: int) -> str:
    mem = ctx.mem
    return mem.read_cstr(mem.read_u64(ops + ctx.kernel.layouts[LINK_OPS].kind), 64).decode("utf-8", "replace")


@export("rtnl_link_register", "int rtnl_link_register(struct rtnl_link_ops *ops)", nargs=1)
def rtnl_link_register(ctx: Any, ops: int) -> int:
    """(Linux takes the RTNL around __rtnl_link_register; registering is
    atomic here, so the lock is not taken.)"""
    return __rtnl_link_register(ctx, ops)


@export("__rtnl_link_register", "int __rtnl_link_register(struct rtnl_link_ops *ops)", nargs=1)
def __rtnl_link_register(ctx: Any, ops: int) -> int:
    mem, state, layout = ctx.mem, ctx.kernel.subsystem(LinkOps), ctx.kernel.layouts[LINK_OPS]
    kind = _kind(ctx, ops)
    if any(_kind(ctx, node - layout.list) == kind for node in state.list):
        return -errno.EEXIST
    if (mem.read_u64(ops + layout.alloc) or mem.read_u64(ops + layout.setup)) and not mem.read_u64(
            ops + layout.dellink):
        dellink = ctx.kernel.symbols.get("unregister_netdevice_queue")
        if dellink is not None:
            mem.write_u64(ops + layout.dellink, dellink.address)
    state.list.add_tail(ctx, ops + layout.list)
    record_listed(ctx.kernel, "rtnl_link", ops, f"rtnetlink link kind {kind}", state.list, layout.list)
    return 0


@export("rtnl_link_unregister", "void rtnl_link_unregister(struct rtnl_link_ops *ops)", nargs=1)
def rtnl_link_unregister(ctx: Any, ops: int) -> Any:
    """(Linux also takes pernet_ops_rwsem, against namespaces being made or
    torn down meanwhile: init_net is the only one and never goes.)"""
    async def unregistering() -> int:
        async with rtnl_locked(ctx):
            await _unregister(ctx, ops)
        return 0
    return unregistering()


@export("__rtnl_link_unregister", "void __rtnl_link_unregister(struct rtnl_link_ops *ops)",
        nargs=1)
def __rtnl_link_unregister(ctx: Any, ops: int) -> Any:
    async def unregistering() -> int:
        await _unregister(ctx, ops)
        return 0
    return unregistering()


async def _unregister(ctx: Any, ops: int) -> None:
    """__rtnl_kill_links() in every namespace, then list_del(&ops->list)."""
    layout = ctx.kernel.layouts[LINK_OPS]
    devices = ctx.kernel.subsystem(RtnlMutex).devices
    if devices is not None:
        await devices.kill_links(ctx, ops, ctx.mem.read_u64(ops + layout.dellink))
    ctx.kernel.subsystem(LinkOps).list.delete(ctx, ops + layout.list)
    ctx.kernel.registrations.registry("rtnl_link").remove(ops)


# --- the RTNL mutex ------------------------------------------------------------------
# rtnl_lock() is mutex_lock(&rtnl_mutex): the same sleeping mutex as a
# module's own (kernel/api/sched.py), on a kernel object.  rtnl_unlock()
# also runs netdev_run_todo() on the devices unregistered under the lock
# (net_device.py puts them on `todo`).

class Devices(Protocol):
    """What the RTNL's users call of the network devices (net_device.py's
    NetDevices, once a device or notifier made them)."""

    async def run_todo(self, ctx: Any, devices: list[int]) -> None: ...
    async def kill_links(self, ctx: Any, ops: int, dellink: int) -> None: ...
    async def unregister_list(self, ctx: Any, head: int) -> None: ...


class RtnlMutex:
    def __init__(self, kernel: Any) -> None:
        self.address = kernel.slab.alloc(32, None, zero=True)
        self.todo: list[int] = []            # net_todo_list: devices to finish
        self.devices: Devices | None = None


def _rtnl(ctx: Any) -> int:
    return ctx.kernel.subsystem(RtnlMutex).address


@contextlib.asynccontextmanager
async def rtnl_locked(ctx: Any) -> AsyncIterator[None]:
    """rtnl_lock() ... rtnl_unlock() around a kernel function's own work."""
    taken = rtnl_lock(ctx)
    if not isinstance(taken, int):
        await taken
    try:
        yield
    finally:
        done = rtnl_unlock(ctx)
        if done is not None:
            await done


@export("rtnl_lock", "void rtnl_lock(void)", nargs=0)
def rtnl_lock(ctx: Any) -> Any:
    return mutex_lock(ctx, _rtnl(ctx))


@export("rtnl_lock_killable", "int rtnl_lock_killable(void)", nargs=0)
def rtnl_lock_killable(ctx: Any) -> Any:
    return mutex_lock(ctx, _rtnl(ctx))           # no signals reach emulated tasks


@export("rtnl_trylock", "int rtnl_trylock(void)", nargs=0)
def rtnl_trylock(ctx: Any) -> int:
    return mutex_trylock(ctx, _rtnl(ctx))


@export("rtnl_unlock", "void rtnl_unlock(void)", nargs=0)
def rtnl_unlock(ctx: Any) -> Any:
    """__rtnl_unlock(), then netdev_run_todo() of what was unregistered."""
    state = ctx.kernel.subsystem(RtnlMutex)
    mutex_unlock(ctx, state.address)
    if not state.todo or state.devices is None:
        return None
    devices, finisher, state.todo = state.todo, state.devices, []

    async def finishing() -> int:
        await finisher.run_todo(ctx, devices)
        return 0
    return finishing()


@export("rtnl_is_locked", "int rtnl_is_locked(void)", nargs=0)
def rtnl_is_locked(ctx: Any) -> int:
    return mutex_is_locked(ctx, _rtnl(ctx))
