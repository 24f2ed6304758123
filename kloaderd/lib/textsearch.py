"""lib/textsearch.c: text search algorithms (`textsearch_register`) and the
searches their users prepare (`textsearch_prepare`).

As Linux 6.1 and 6.12: ops missing a name, find, init, get_pattern or
get_pattern_len are -EINVAL; a name already registered is -EEXIST; the ops
go on `ts_ops` through `list` (in guest memory); unregistering ops that are
not registered is -ENOENT.

`textsearch_prepare(algo, pattern, len, gfp, flags)`: a zero-length pattern
is ERR_PTR(-EINVAL); the algorithm is looked up by name on `ts_ops` and its
owner referenced (a module going away makes the lookup fail, as Linux's
try_module_get); with TS_AUTOLOAD, one not registered is asked of modprobe
as `ts_ALGO` (request_module) and looked up again; none is ERR_PTR(-ENOENT).
The algorithm's own `init` (module code) makes the `struct ts_config`; an
error it returns is passed on and the reference dropped.
`textsearch_destroy` runs the algorithm's `destroy`, drops the reference
and kfrees the config.  `textsearch_find_continuous` searches linear data:
the config's `get_next_block` becomes the kernel's `get_linear_data`, which
hands the algorithm's `find` the whole buffer, then `finish` if set, as the
header's inline `textsearch_find`.  Structures are read at the running
kernel's offsets (kernel/layouts.py).
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export
from ..kernel.api.slab import kfree
from ..kernel.callback import call_module_code
from ..kernel.layouts import struct
from ..kernel.registry import record_listed
from .list import GuestList

TS_OPS = struct("struct ts_ops", "linux/textsearch.h", "name", "init", "find", "destroy",
                "get_pattern", "get_pattern_len", "owner", "list")
TS_CONFIG = struct("struct ts_config", "linux/textsearch.h", "ops", "get_next_block", "finish")
TS_STATE = struct("struct ts_state", "linux/textsearch.h", "offset", "cb")
STRUCTS = (TS_OPS, TS_CONFIG, TS_STATE)

TS_AUTOLOAD = 1
UINT_MAX = 0xFFFFFFFF
# struct ts_linear_state {unsigned int len; const void *data;}: lib/textsearch.c's own,
# kept in ts_state.cb; only kloader's textsearch_find_continuous and get_linear_data read it.
_LINEAR_LEN, _LINEAR_DATA = 0, 8


class TextSearch:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


def _is_err(value: int) -> bool:
    return value >= (1 << 64) - 4095


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


def _owner_ref(ctx: Any) -> Any:
    """Who holds the reference a prepared search keeps: the calling module's code."""
    return ctx.module.code_owner if ctx.module is not None else ctx.kernel.kernel_owner


def _lookup(ctx: Any, name: str) -> int:
    """lookup_ts_algo(): the ops named `name`, their owner referenced; 0 if
    none, or if the owner is going away."""
    mem, at = ctx.mem, ctx.kernel.layouts[TS_OPS]
    for node in ctx.kernel.subsystem(TextSearch).list:
        ops = node - at.list
        if _name(mem, at, ops) != name:
            continue
        owner = ctx.kernel.module_by_struct(mem.read_u64(ops + at.owner))
        if owner is not None and not ctx.kernel.module_get(owner, _owner_ref(ctx)):
            return 0
        return ops
    return 0


def _put(ctx: Any, ops: int) -> None:
    owner = ctx.kernel.module_by_struct(ctx.mem.read_u64(ops + ctx.kernel.layouts[TS_OPS].owner))
    if owner is not None:
        ctx.kernel.module_put_from_code(owner, _owner_ref(ctx))


@export("textsearch_prepare", "struct ts_config *textsearch_prepare(const char *algo, const void *pattern, "
        "unsigned int len, gfp_t gfp_mask, int flags)", nargs=5)
def textsearch_prepare(ctx: Any, algo: int, pattern: int, length: int, gfp: int, flags: int) -> Any:
    length &= UINT_MAX
    if not length:
        return -errno.EINVAL
    name = ctx.mem.read_cstr(algo, 64).decode("utf-8", "replace")

    async def preparing() -> int:
        ops = _lookup(ctx, name)
        if not ops and flags & TS_AUTOLOAD:
            await ctx.kernel.kmod.request_module(f"ts_{name}")
            ops = _lookup(ctx, name)
        if not ops:
            return -errno.ENOENT
        at = ctx.kernel.layouts[TS_OPS]
        conf = await call_module_code(ctx, ctx.mem.read_u64(ops + at.init), pattern, length,
                                      gfp & UINT_MAX, flags & UINT_MAX)
        if _is_err(conf):
            _put(ctx, ops)
            return conf
        ctx.mem.write_u64(conf + ctx.kernel.layouts[TS_CONFIG].ops, ops)
        return conf
    return preparing()


@export("textsearch_destroy", "void textsearch_destroy(struct ts_config *conf)", nargs=1)
def textsearch_destroy(ctx: Any, conf: int) -> Any:
    mem = ctx.mem
    ops = mem.read_u64(conf + ctx.kernel.layouts[TS_CONFIG].ops)

    async def destroying() -> int:
        if ops:
            destroy = mem.read_u64(ops + ctx.kernel.layouts[TS_OPS].destroy)
            if destroy:
                await call_module_code(ctx, destroy, conf)
            _put(ctx, ops)
        kfree(ctx, conf)
        return 0
    return destroying()


@export("get_linear_data", "unsigned int get_linear_data(unsigned int consumed, const u8 **dst, "
        "struct ts_config *conf, struct ts_state *state)", nargs=4)
def get_linear_data(ctx: Any, consumed: int, dst: int, conf: int, state: int) -> int:
    """The block callback of a continuous search (lib/textsearch.c's, not
    exported): the rest of the buffer from `consumed`, or 0 at its end."""
    mem, consumed = ctx.mem, consumed & UINT_MAX
    st = state + ctx.kernel.layouts[TS_STATE].cb
    length = mem.read_u32(st + _LINEAR_LEN)
    if consumed < length:
        mem.write_u64(dst, mem.read_u64(st + _LINEAR_DATA) + consumed)
        return length - consumed
    return 0


@export("textsearch_find_continuous", "unsigned int textsearch_find_continuous(struct ts_config *conf, "
        "struct ts_state *state, const void *data, unsigned int len)", nargs=4)
def textsearch_find_continuous(ctx: Any, conf: int, state: int, data: int, length: int) -> Any:
    mem, layouts = ctx.mem, ctx.kernel.layouts
    at, st = layouts[TS_CONFIG], layouts[TS_STATE]
    mem.write_u64(conf + at.get_next_block, ctx.machine.kernel_symbols()["get_linear_data"])
    mem.write_u32(state + st.cb + _LINEAR_LEN, length & UINT_MAX)
    mem.write_u64(state + st.cb + _LINEAR_DATA, data)
    mem.write_u32(state + st.offset, 0)                  # textsearch_find(): from the start
    ops = mem.read_u64(conf + at.ops)

    async def finding() -> int:
        found = await call_module_code(ctx, mem.read_u64(ops + layouts[TS_OPS].find), conf, state)
        finish = mem.read_u64(conf + at.finish)
        if finish:
            await call_module_code(ctx, finish, conf, state)
        return found & UINT_MAX
    return finding()
