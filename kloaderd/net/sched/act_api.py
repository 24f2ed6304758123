"""net/sched/act_api.c: registering traffic control actions
(`tcf_register_action`), what `tc action add ... KIND` finds.

As Linux 6.1: ops without act, dump or init are -EINVAL; the action's
pernet ops are registered first (so init_net has its `tc_action_net`
before the kind is visible), then a kind or id already on `act_base` is
-EEXIST (and the pernet ops are unregistered again); the ops are appended
to `act_base` through their `head`, in guest memory.  Unregistering ops
not on the list is -ENOENT, else they are unlinked and their pernet ops
unregistered (their exit destroys each namespace's action table).  No
action is built into Debian's kernel.

`tcf_idrinfo_destroy`, what those exits call: actions are only created
through rtnetlink (`tc`), which kloader does not emulate, so a table is
always empty and destroying it frees nothing; a table that is not empty
was filled by something kloader cannot follow, and is not emulated.

tc_action_ops {head, kind (char[16]), id, act, dump, init} and
tcf_idrinfo's action_idr head are read at the running kernel's offsets.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.oops import NotEmulated
from ...kernel.registry import record_listed
from ...lib.list import GuestList
from ..core import net_namespace
from ..core.net_namespace import register_pernet_subsys, unregister_pernet_subsys

ACTION_OPS = struct("struct tc_action_ops", "net/act_api.h", "head", "kind", "id", "act", "dump", "init")
IDRINFO = struct("struct tcf_idrinfo", "net/act_api.h", "action_idr.idr_rt.xa_head")
# what these functions read at the kernel's offsets, and the pernet ops they register
STRUCTS = (ACTION_OPS, IDRINFO, *net_namespace.STRUCTS)
IFNAMSIZ = 16


class Actions:
    """act_base of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.base = GuestList(kernel)


def _kind(ctx: Any, ops: int) -> bytes:
    return ctx.mem.read(ops + ctx.kernel.layouts[ACTION_OPS].kind, IFNAMSIZ).split(b"\0", 1)[0]


@export("tcf_register_action", "int tcf_register_action(struct tc_action_ops *a, "
        "struct pernet_operations *ops)", nargs=2)
def tcf_register_action(ctx: Any, act: int, ops: int) -> Any:
    mem, a = ctx.mem, ctx.kernel.layouts[ACTION_OPS]
    if not all(mem.read_u64(act + off) for off in (a.act, a.dump, a.init)):
        return -errno.EINVAL

    async def registering() -> int:
        ret = await register_pernet_subsys(ctx, ops)
        if ret:
            return ret
        base = ctx.kernel.subsystem(Actions).base
        kind, kind_id = _kind(ctx, act), mem.read_u32(act + a.id)
        if any(mem.read_u32(node - a.head + a.id) == kind_id or _kind(ctx, node - a.head) == kind
               for node in base):
            await unregister_pernet_subsys(ctx, ops)
            return -errno.EEXIST
        base.add_tail(ctx, act + a.head)
        record_listed(ctx.kernel, "tc_action", act,
                      f"tc action {kind.decode('utf-8', 'replace')}", base, a.head)
        return 0
    return registering()


@export("tcf_unregister_action", "int tcf_unregister_action(struct tc_action_ops *a, "
        "struct pernet_operations *ops)", nargs=2)
def tcf_unregister_action(ctx: Any, act: int, ops: int) -> Any:
    base, head = ctx.kernel.subsystem(Actions).base, ctx.kernel.layouts[ACTION_OPS].head
    if act + head not in base:
        return -errno.ENOENT
    base.delete(ctx, act + head)
    ctx.kernel.registrations.registry("tc_action").remove(act)

    async def unregistering() -> int:
        await unregister_pernet_subsys(ctx, ops)
        return 0
    return unregistering()


@export("tcf_idrinfo_destroy", "void tcf_idrinfo_destroy(const struct tc_action_ops *ops, "
        "struct tcf_idrinfo *idrinfo)", nargs=2)
def tcf_idrinfo_destroy(ctx: Any, ops: int, idrinfo: int) -> None:
    if ctx.mem.read_u64(idrinfo + ctx.kernel.layouts[IDRINFO].action_idr_idr_rt_xa_head):
        raise NotEmulated("tcf_idrinfo_destroy")       # actions kloader did not see made
