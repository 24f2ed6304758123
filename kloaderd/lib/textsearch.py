"""lib/textsearch.c: text search algorithms (`textsearch_register`).

As Linux 6.1: ops missing a name, find, init, get_pattern or
get_pattern_len are -EINVAL; a name already registered is -EEXIST; the ops
go on `ts_ops` through `list` (in guest memory); unregistering ops that are
not registered is -ENOENT.  Layout: ts_ops {name@0 (char *), init@8,
find@16, destroy@24, get_pattern@32, get_pattern_len@40, owner@48,
list@56}.
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export
from ..kernel.registry import record_listed
from .list import GuestList

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

NAME, INIT, FIND, GET_PATTERN, GET_PATTERN_LEN, OWNER, LIST = 0, 8, 16, 32, 40, 48, 56


class TextSearch:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


def _name(mem: Any, ops: int) -> str:
    return mem.read_cstr(mem.read_u64(ops + NAME), 64).decode("utf-8", "replace")


@export("textsearch_register", "int textsearch_register(struct ts_ops *ops)", nargs=1)
def textsearch_register(ctx: Any, ops: int) -> int:
    mem, state = ctx.mem, ctx.kernel.subsystem(TextSearch)
    if not all(mem.read_u64(ops + off) for off in (NAME, FIND, INIT, GET_PATTERN,
                                                      GET_PATTERN_LEN)):
        return -errno.EINVAL
    name = _name(mem, ops)
    if any(_name(mem, node - LIST) == name for node in state.list):
        return -errno.EEXIST
    state.list.add_tail(ctx, ops + LIST)
    record_listed(ctx.kernel, "textsearch", ops, f"textsearch algorithm {name}", state.list, LIST,
                  mem.read_u64(ops + OWNER))
    return 0


@export("textsearch_unregister", "int textsearch_unregister(struct ts_ops *ops)", nargs=1)
def textsearch_unregister(ctx: Any, ops: int) -> Any:
    if ctx.kernel.registrations.registry("textsearch").remove(ops) is None:
        return -errno.ENOENT
    ctx.kernel.subsystem(TextSearch).list.delete(ctx, ops + LIST, rcu=True)
    return 0
