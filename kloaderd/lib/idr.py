"""ID allocators (Linux's lib/idr.c): the IDR maps small integers to
pointers, the IDA hands out integers alone — both kept as XArrays
(lib/xarray.py), as Linux keeps them.

A `struct idr` is {idr_rt (the xarray), idr_base,
idr_next}: `idr_init_base()` writes the base and `IDR_RT_MARKER` flags
inline, `idr_is_empty()` reads `xa_head` and the IDR_FREE root tag.  IDs
count from `idr_base`; `idr_alloc_cyclic` continues from `idr_next`.  An
ID may hold NULL (reserved: `idr_alloc(idr, NULL, ...)`): found by
`idr_find` as NULL, skipped by `idr_for_each` and `idr_get_next`, freed by
`idr_remove`.  A `struct ida` is an xarray of its IDs, the lowest free ID
in range handed out first.

Linux's errors and warnings: -ENOSPC when the range is full (or starts
below zero for an IDA), -EINVAL with a WARNING for `idr_alloc`'s negative
start, "ida_free called for id=N which is not allocated." as a WARNING.
An IDR or IDA still holding IDs when its memory is freed is reported as
lib/xarray.py says ("MOD: leaked 3 ids of the ida at ADDR (ida_destroy)").
Where kloader differs: 6.1's `ida_free` of an ID whose chunk of 1,024 was
never used oopses on a NULL bitmap (fixed in 6.3); kloader warns as for
any other ID never allocated.  `idr_preload` (a preemption-disabled
section ended by an inline) is not emulated.

`struct idr`'s idr_base and idr_next are read at the kernel's offsets
(kernel/layouts.py); its xarray `idr_rt`, like an ida's `xa`, is at the
start of the structure in every release.
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export
from ..kernel.callback import call_module_code
from ..kernel.layouts import struct
from ..kernel.panic import warn, warn_once
from .xarray import STRUCTS as XARRAY_STRUCTS, XA_ZERO_ENTRY, xarrays, zero_to_null

IDR = struct("struct idr", "linux/idr.h", "idr_base", "idr_next")
STRUCTS = (IDR, *XARRAY_STRUCTS)
INT_MAX = (1 << 31) - 1
UINT_MAX = (1 << 32) - 1
ULONG_MAX = (1 << 64) - 1
ENOENT_PTR = (-errno.ENOENT) & ULONG_MAX


def _int(value: int) -> int:
    value &= UINT_MAX
    return value - (1 << 32) if value >> 31 else value


def _base(ctx: Any, idr: int) -> int:
    return ctx.mem.read_u32(idr + ctx.kernel.layouts[IDR].idr_base)


def _alloc_u32(ctx: Any, idr: int, ptr: int, first: int, high: int) -> int:
    """idr_get_free from `first` (an ID) up to `high`: the ID, or -ENOSPC/-ENOMEM."""
    base = _base(ctx, idr)
    low = first - base if first >= base else 0
    if high < base:
        return -errno.ENOSPC
    arrays = xarrays(ctx.kernel)
    tree = arrays.get(idr)
    index = tree.first_free(low, high - base) if tree is not None else (low if low <= high - base else None)
    if index is None:
        return -errno.ENOSPC
    ret = arrays.store(ctx, idr, "idr", index, ptr or XA_ZERO_ENTRY)
    return ret if ret < 0 else index + base


@export("idr_alloc_u32", "int idr_alloc_u32(struct idr *idr, void *ptr, u32 *nextid, unsigned long max, "
        "gfp_t gfp)", nargs=5, gpl=True)
def idr_alloc_u32(ctx: Any, idr: int, ptr: int, nextid: int, high: int, gfp: int) -> int:
    got = _alloc_u32(ctx, idr, ptr, ctx.mem.read_u32(nextid), min(high, UINT_MAX))
    if got < 0:
        return got
    ctx.mem.write_u32(nextid, got)
    return 0


def _end(end: int) -> int:
    end = _int(end)
    return end - 1 if end > 0 else INT_MAX


@export("idr_alloc", "int idr_alloc(struct idr *idr, void *ptr, int start, int end, gfp_t gfp)", nargs=5,
        gpl=True)
def idr_alloc(ctx: Any, idr: int, ptr: int, start: int, end: int, gfp: int) -> int:
    """The lowest free ID in [start, end) (end <= 0: INT_MAX)."""
    start = _int(start)
    if start < 0:
        warn_once(ctx, None, "lib/idr.c:84", "idr_alloc")
        return -errno.EINVAL
    return _alloc_u32(ctx, idr, ptr, start, _end(end))


@export("idr_alloc_cyclic", "int idr_alloc_cyclic(struct idr *idr, void *ptr, int start, int end, gfp_t gfp)",
        nargs=5)
def idr_alloc_cyclic(ctx: Any, idr: int, ptr: int, start: int, end: int, gfp: int) -> int:
    """From idr_next on, wrapping to `start` once; idr_next becomes the ID + 1."""
    start, high = _int(start), _end(end)
    first = ctx.mem.read_u32(idr + ctx.kernel.layouts[IDR].idr_next)
    if _int(first) < start:
        first = start
    got = _alloc_u32(ctx, idr, ptr, first, high)
    if got == -errno.ENOSPC and first > start:
        got = _alloc_u32(ctx, idr, ptr, start, high)
    if got >= 0:
        ctx.mem.write_u32(idr + ctx.kernel.layouts[IDR].idr_next, (got + 1) & UINT_MAX)
    return got


def _index(ctx: Any, idr: int, id_: int) -> int | None:
    base = _base(ctx, idr)
    return id_ - base if id_ >= base else None


@export("idr_find", "void *idr_find(const struct idr *idr, unsigned long id)", nargs=2, gpl=True)
def idr_find(ctx: Any, idr: int, id_: int) -> int:
    index = _index(ctx, idr, id_)
    return zero_to_null(xarrays(ctx.kernel).entries(idr).get(index, 0)) if index is not None else 0


@export("idr_remove", "void *idr_remove(struct idr *idr, unsigned long id)", nargs=2, gpl=True)
def idr_remove(ctx: Any, idr: int, id_: int) -> int:
    index = _index(ctx, idr, id_)
    if index is None:
        return 0
    return zero_to_null(xarrays(ctx.kernel).store(ctx, idr, "idr", index, 0))


@export("idr_replace", "void *idr_replace(struct idr *idr, void *ptr, unsigned long id)", nargs=3)
def idr_replace(ctx: Any, idr: int, ptr: int, id_: int) -> int:
    """The old pointer, or ERR_PTR(-ENOENT) for an ID not allocated."""
    index = _index(ctx, idr, id_)
    arrays = xarrays(ctx.kernel)
    if index is None or index not in arrays.entries(idr):
        return ENOENT_PTR
    return zero_to_null(arrays.store(ctx, idr, "idr", index, ptr or XA_ZERO_ENTRY))


def _next(ctx: Any, idr: int, first: int) -> tuple[int, int] | None:
    """(ID, pointer) of the first non-NULL entry at or after ID `first`."""
    tree = xarrays(ctx.kernel).get(idr)
    if tree is None:
        return None
    base = _base(ctx, idr)
    for index in tree.first_from(first - base if first >= base else 0):
        entry = tree.entries[index]
        if entry != XA_ZERO_ENTRY:
            return index + base, entry
    return None


@export("idr_get_next_ul", "void *idr_get_next_ul(struct idr *idr, unsigned long *nextid)", nargs=2)
def idr_get_next_ul(ctx: Any, idr: int, nextid: int) -> int:
    found = _next(ctx, idr, ctx.mem.read_u64(nextid))
    if found is None:
        return 0
    ctx.mem.write_u64(nextid, found[0])
    return found[1]


@export("idr_get_next", "void *idr_get_next(struct idr *idr, int *nextid)", nargs=2)
def idr_get_next(ctx: Any, idr: int, nextid: int) -> int:
    found = _next(ctx, idr, ctx.mem.read_u32(nextid))
    if found is None:
        return 0
    if found[0] > INT_MAX:
        warn_once(ctx, None, "lib/idr.c:269", "idr_get_next")
        return 0
    ctx.mem.write_u32(nextid, found[0])
    return found[1]


@export("idr_for_each", "int idr_for_each(const struct idr *idr, int (*fn)(int id, void *p, void *data), "
        "void *data)", nargs=3)
def idr_for_each(ctx: Any, idr: int, fn: int, data: int) -> Any:
    """fn(id, p, data) for each non-NULL entry in ID order, until one returns non-zero."""
    async def walking() -> int:
        at = 0
        while (found := _next(ctx, idr, at)) is not None:
            id_, entry = found
            if id_ > INT_MAX:
                warn_once(ctx, None, "lib/idr.c:208", "idr_for_each")
                break
            ret = _int(await call_module_code(ctx, fn, id_, entry, data))
            if ret:
                return ret
            at = id_ + 1
        return 0
    return walking()


@export("idr_destroy", "void idr_destroy(struct idr *idr)", nargs=1)
def idr_destroy(ctx: Any, idr: int) -> None:
    xarrays(ctx.kernel).destroy(idr)


@export("ida_alloc_range", "int ida_alloc_range(struct ida *ida, unsigned int min, unsigned int max, "
        "gfp_t gfp)", nargs=4)
def ida_alloc_range(ctx: Any, ida: int, low: int, high: int, gfp: int) -> int:
    """The lowest free ID in [min, max]: -ENOSPC when there is none."""
    low, high = low & UINT_MAX, high & UINT_MAX
    if low > INT_MAX:
        return -errno.ENOSPC
    high = min(high, INT_MAX)
    arrays = xarrays(ctx.kernel)
    tree = arrays.get(ida)
    index = tree.first_free(low, high) if tree is not None else (low if low <= high else None)
    if index is None:
        return -errno.ENOSPC
    ret = arrays.store(ctx, ida, "ida", index, XA_ZERO_ENTRY)
    return ret if ret < 0 else index


@export("ida_free", "void ida_free(struct ida *ida, unsigned int id)", nargs=2)
def ida_free(ctx: Any, ida: int, id_: int) -> None:
    id_ &= UINT_MAX
    if id_ > INT_MAX or not xarrays(ctx.kernel).store(ctx, ida, "ida", id_, 0):
        warn(ctx, f"ida_free called for id={_int(id_)} which is not allocated.", "lib/idr.c:525", "ida_free")


@export("ida_destroy", "void ida_destroy(struct ida *ida)", nargs=1)
def ida_destroy(ctx: Any, ida: int) -> None:
    xarrays(ctx.kernel).destroy(ida)
