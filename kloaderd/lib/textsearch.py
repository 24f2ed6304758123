"""lib/textsearch.c: text search algorithms (`textsearch_register`).

As Linux 6.1: ops missing a name, find, init, get_pattern or
get_pattern_len are -EINVAL; a name already registered is -EEXIST; the ops
go on `ts_ops` through `list` (in guest memory); unregistering ops that are
not registered is -ENOENT.  `struct ts_ops` is read at the kernel's
offsets (kernel/layouts.py).
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export
from ..kernel.layouts import struct
from ..kernel.registry import record_listed
from .list import GuestList

TS_OPS = struct("struct ts_ops", "linux/textsearch.h", "name", "init", "find", "get_pattern",
                "get_pattern_len", "owner", "list")
STRUCTS = (TS_OPS,)


class TextSearch:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


def _name(mem: Any, at: Any, ops: int) -> str:
    return mem.read_cstr(mem.read_u64(ops + at.name), 64).decode("utf-8", "replace")


@export("textsearch_register", "int textsearch_register(struct ts_ops *ops)", nargs=1)
def textsearch_register(ctx: Any, ops: int) -> int:
    mem, state, at = ctx.mem, ctx.kernel.subsystem(TextSearch), ctx.kernel.layouts[TS_OPS]
    if not all(mem.read_u64(ops + off) for off in (at.name, at.find, at.init, at.get_pattern,
                                                      at.get_pattern_len)):
        return -errno.EINVAL
    name = _name(mem, at, ops)
    if any(_name(mem, at, node - at.list) == name for node in state.list):
        return -errno.EEXIST
    state.list.add_tail(ctx, ops + at.list)
    record_listed(ctx.kernel, "textsearch", ops, f"textsearch algorithm {name}", state.list, at.list,
                  mem.read_u64(ops + at.owner))
    return 0


@export("textsearch_unregister", "int textsearch_unregister(struct ts_ops *ops)", nargs=1)
def textsearch_unregister(ctx: Any, ops: int) -> Any:
    if ctx.kernel.registrations.registry("textsearch").remove(ops) is None:
        return -errno.ENOENT
    ctx.kernel.subsystem(TextSearch).list.delete(ctx, ops + ctx.kernel.layouts[TS_OPS].list, rcu=True)
    return 0
