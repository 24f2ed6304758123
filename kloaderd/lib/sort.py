"""sort() and sort_r() (Linux's lib/sort.c): an in-place heapsort of an
array in module memory, comparing (and, when given, swapping) with the
module's own functions.

The algorithm is Linux's, step for step — bottom-up heapsort, one compare
per level on the way down, then backtracking — so a module's comparison
function is called with the same pairs in the same order as under Linux,
and elements that compare equal end where Linux leaves them (heapsort is
not stable).  Without a swap function elements are exchanged in guest
memory, as Linux's word or byte swaps do.  A sort of `num` elements makes
O(num log num) calls into module code, each a full trip through the CPU;
the array is bounded only by the module's memory, as in Linux.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.callback import call_module_code


def _int(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def _parent(i: int, lsbit: int, size: int) -> int:
    """The parent of the element at byte offset i (Linux's division-free form)."""
    i -= size
    i -= size & -(i & lsbit)
    return i // 2


async def heapsort(base: int, num: int, size: int, cmp: Any, swap: Any) -> None:
    """sort_r's loop; cmp(a, b) and swap(a, b) take guest addresses."""
    n, a = num * size, (num // 2) * size
    lsbit = size & -size
    if not a:
        return
    while True:
        if a:
            a -= size
        else:
            n -= size
            if not n:
                break
            await swap(base, base + n)
        b = a
        while True:
            c = 2 * b + size
            d = c + size
            if d >= n:
                break
            b = c if await cmp(base + c, base + d) >= 0 else d
        if d == n:
            b = c
        while b != a and await cmp(base + a, base + b) >= 0:
            b = _parent(b, lsbit, size)
        c = b
        while b != a:
            b = _parent(b, lsbit, size)
            await swap(base + b, base + c)


def _sort(ctx: Any, base: int, num: int, size: int, cmp_func: int, swap_func: int,
          priv: int | None) -> Any:
    size &= 0xFFFFFFFFFFFFFFFF
    mem = ctx.mem
    extra = () if priv is None else (priv,)

    async def cmp(x: int, y: int) -> int:
        return _int(await call_module_code(ctx, cmp_func, x, y, *extra))

    async def swap(x: int, y: int) -> None:
        if swap_func:
            await call_module_code(ctx, swap_func, x, y, *((size,) if priv is None else (size, priv)))
        else:
            first, second = mem.read(x, size), mem.read(y, size)
            mem.write(x, second)
            mem.write(y, first)

    async def sorting() -> int:
        await heapsort(base, num, size, cmp, swap)
        return 0
    return sorting()


@export("sort", "void sort(void *base, size_t num, size_t size, cmp_func_t cmp_func, swap_func_t swap_func)",
        nargs=5)
def sort(ctx: Any, base: int, num: int, size: int, cmp_func: int, swap_func: int) -> Any:
    return _sort(ctx, base, num, size, cmp_func, swap_func, None)


@export("sort_r", "void sort_r(void *base, size_t num, size_t size, cmp_r_func_t cmp_func, "
        "swap_r_func_t swap_func, const void *priv)", nargs=6)
def sort_r(ctx: Any, base: int, num: int, size: int, cmp_func: int, swap_func: int, priv: int) -> Any:
    return _sort(ctx, base, num, size, cmp_func, swap_func, priv)
