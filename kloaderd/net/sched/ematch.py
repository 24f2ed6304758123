"""net/sched/ematch.c: extended matches for classifiers (`tcf_em_register`).

As Linux 6.1: ops without `match` are -EINVAL; a kind (an integer) already
registered is -EEXIST; the ops go on `ematch_ops` through `link` (in guest
memory), and `tcf_em_unregister` unlinks them.  No ematch is built into
Debian's kernel.  Layout: tcf_ematch_ops {kind@0, match@16, owner@40,
link@48}.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.registry import record_listed
from ...lib.list import GuestList

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

KIND, MATCH, OWNER, LINK = 0, 16, 40, 48


class Ematches:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


@export("tcf_em_register", "int tcf_em_register(struct tcf_ematch_ops *ops)", nargs=1)
def tcf_em_register(ctx: Any, ops: int) -> int:
    mem, state = ctx.mem, ctx.kernel.subsystem(Ematches)
    if not mem.read_u64(ops + MATCH):
        return -errno.EINVAL
    kind = mem.read_u32(ops + KIND)
    if any(mem.read_u32(node - LINK + KIND) == kind for node in state.list):
        return -errno.EEXIST
    state.list.add_tail(ctx, ops + LINK)
    record_listed(ctx.kernel, "ematch", ops, f"tc ematch kind {kind}", state.list, LINK,
                  mem.read_u64(ops + OWNER))
    return 0


@export("tcf_em_unregister", "void tcf_em_unregister(struct tcf_ematch_ops *ops)", nargs=1)
def tcf_em_unregister(ctx: Any, ops: int) -> None:
    ctx.kernel.subsystem(Ematches).list.delete(ctx, ops + LINK)
    ctx.kernel.registrations.registry("ematch").remove(ops)
