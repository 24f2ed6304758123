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

Layouts (Linux 6.1 x86-64): tc_action_ops {head@0, kind@16 (char[16]),
id@32, owner@48, act@56, dump@64, init@88}; tcf_idrinfo {action_idr@32};
the idr's xarray head at 8.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.oops import NotEmulated
from ...kernel.registry import record_listed
from ...lib.list import GuestList
from ..core.net_namespace import register_pernet_subsys, unregister_pernet_subsys

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

HEAD, KIND, ID, ACT, DUMP, INIT = 0, 16, 32, 56, 64, 88
IDRINFO_IDR, XA_HEAD = 32, 8
IFNAMSIZ = 16


class Actions:
    """act_base of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.base = GuestList(kernel)


def _kind(mem: Any, ops: int) -> bytes:
    return mem.read(ops + KIND, IFNAMSIZ).split(b"\0", 1)[0]


@export("tcf_register_action", "int tcf_register_action(struct tc_action_ops *a, "
        "struct pernet_operations *ops)", nargs=2)
def tcf_register_action(ctx: Any, act: int, ops: int) -> Any:
    mem = ctx.mem
    if not all(mem.read_u64(act + off) for off in (ACT, DUMP, INIT)):
        return -errno.EINVAL

    async def registering() -> int:
        ret = await register_pernet_subsys(ctx, ops)
        if ret:
            return ret
        base = ctx.kernel.subsystem(Actions).base
        kind, kind_id = _kind(mem, act), mem.read_u32(act + ID)
        if any(mem.read_u32(node - HEAD + ID) == kind_id or _kind(mem, node - HEAD) == kind
               for node in base):
            await unregister_pernet_subsys(ctx, ops)
            return -errno.EEXIST
        base.add_tail(ctx, act + HEAD)
        record_listed(ctx.kernel, "tc_action", act,
                      f"tc action {kind.decode('utf-8', 'replace')}", base, HEAD)
        return 0
    return registering()


@export("tcf_unregister_action", "int tcf_unregister_action(struct tc_action_ops *a, "
        "struct pernet_operations *ops)", nargs=2)
def tcf_unregister_action(ctx: Any, act: int, ops: int) -> Any:
    base = ctx.kernel.subsystem(Actions).base
    if act + HEAD not in base:
        return -errno.ENOENT
    base.delete(ctx, act + HEAD)
    ctx.kernel.registrations.registry("tc_action").remove(act)

    async def unregistering() -> int:
        await unregister_pernet_subsys(ctx, ops)
        return 0
    return unregistering()


@export("tcf_idrinfo_destroy", "void tcf_idrinfo_destroy(const struct tc_action_ops *ops, "
        "struct tcf_idrinfo *idrinfo)", nargs=2)
def tcf_idrinfo_destroy(ctx: Any, ops: int, idrinfo: int) -> None:
    if ctx.mem.read_u64(idrinfo + IDRINFO_IDR + XA_HEAD):
        raise NotEmulated("tcf_idrinfo_destroy")       # actions kloader did not see made
