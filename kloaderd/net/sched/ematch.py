"""net/sched/ematch.c: extended matches for classifiers (`tcf_em_register`).

As Linux 6.1: ops without `match` are -EINVAL; a kind (an integer) already
registered is -EEXIST; the ops go on `ematch_ops` through `link` (in guest
memory), and `tcf_em_unregister` unlinks them.  No ematch is built into
Debian's kernel.  tcf_ematch_ops {kind, match, owner, link} is read at
the running kernel's offsets.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.registry import record_listed
from ...lib.list import GuestList

EMATCH_OPS = struct("struct tcf_ematch_ops", "net/pkt_cls.h", "kind", "match", "owner", "link")
STRUCTS = (EMATCH_OPS,)    # what these functions read at the kernel's offsets


class Ematches:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


@export("tcf_em_register", "int tcf_em_register(struct tcf_ematch_ops *ops)", nargs=1)
def tcf_em_register(ctx: Any, ops: int) -> int:
    mem, state, e = ctx.mem, ctx.kernel.subsystem(Ematches), ctx.kernel.layouts[EMATCH_OPS]
    if not mem.read_u64(ops + e.match):
        return -errno.EINVAL
    kind = mem.read_u32(ops + e.kind)
    if any(mem.read_u32(node - e.link + e.kind) == kind for node in state.list):
        return -errno.EEXIST
    state.list.add_tail(ctx, ops + e.link)
    record_listed(ctx.kernel, "ematch", ops, f"tc ematch kind {kind}", state.list, e.link,
                  mem.read_u64(ops + e.owner))
    return 0


@export("tcf_em_unregister", "void tcf_em_unregister(struct tcf_ematch_ops *ops)", nargs=1)
def tcf_em_unregister(ctx: Any, ops: int) -> None:
    ctx.kernel.subsystem(Ematches).list.delete(ctx, ops + ctx.kernel.layouts[EMATCH_OPS].link)
    ctx.kernel.registrations.registry("ematch").remove(ops)
