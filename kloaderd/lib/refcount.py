"""lib/refcount.c: `refcount_warn_saturate`, where refcount_t's inline
helpers go when a count overflows, hits zero where it must not, or is
incremented from zero; and `refcount_dec_not_one` and
`refcount_dec_and_lock` (sunrpc's auth_domain_put, which
rpcsec_gss_krb5's exit reaches through gss_mech_unregister).

As Linux: the counter is set to REFCOUNT_SATURATED (0xc0000000) so it can
never reach zero again (the object leaks instead of being freed under a
user), and a WARN_ONCE names the event — once per event kind per kernel,
since each REFCOUNT_WARN in Linux is its own WARN_ONCE site.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.api.sched import _raw_spin_lock, _raw_spin_unlock
from ..kernel.panic import warn_once

REFCOUNT_SATURATED = 0xC0000000
# enum refcount_saturation_type, in order
_EVENTS = ("saturated; leaking memory", "saturated; leaking memory",
           "addition on 0; use-after-free", "underflow; use-after-free",
           "decrement hit 0; leaking memory")
_LINES = (25, 28, 31, 34, 37)
_UNKNOWN = ("unknown saturation event!?", 40)


@export("refcount_warn_saturate",
        "void refcount_warn_saturate(refcount_t *r, enum refcount_saturation_type t)", nargs=2)
def refcount_warn_saturate(ctx: Any, r: int, t: int) -> None:
    ctx.mem.write_u32(r, REFCOUNT_SATURATED)
    t &= 0xFFFFFFFF
    text, line = (_EVENTS[t], _LINES[t]) if t < len(_EVENTS) else _UNKNOWN
    warn_once(ctx, f"refcount_t: {text}.", f"lib/refcount.c:{line}", "refcount_warn_saturate")


def _dec_not_one(ctx: Any, r: int) -> bool:
    """refcount_dec_not_one(): decrement unless the count is 1 (false then);
    a saturated count stays saturated; 0 is an underflow, warned once and
    left as it is."""
    val = ctx.mem.read_u32(r)
    if val == REFCOUNT_SATURATED:
        return True
    if val == 1:
        return False
    if val == 0:
        # Linux's WARN_ONCE in refcount_dec_not_one (kloader does not know its line)
        warn_once(ctx, "refcount_t: underflow; use-after-free.", "lib/refcount.c", "refcount_dec_not_one")
        return True
    ctx.mem.write_u32(r, val - 1)
    return True


def _dec_and_test(ctx: Any, r: int) -> bool:
    """refcount_dec_and_test() as the header's inline does it: true when
    the count went 1 -> 0; from 0 or below, REFCOUNT_SUB_UAF."""
    old = ctx.mem.read_u32(r)
    ctx.mem.write_u32(r, (old - 1) & 0xFFFFFFFF)
    if old == 1:
        return True
    if old >= 0x80000000 or old == 0:                 # old < 0 || old - 1 < 0, as ints
        refcount_warn_saturate(ctx, r, 3)
    return False


@export("refcount_dec_not_one", "bool refcount_dec_not_one(refcount_t *r)", nargs=1)
def refcount_dec_not_one(ctx: Any, r: int) -> int:
    return int(_dec_not_one(ctx, r))


@export("refcount_dec_and_lock", "bool refcount_dec_and_lock(refcount_t *r, spinlock_t *lock)", nargs=2)
def refcount_dec_and_lock(ctx: Any, r: int, lock: int) -> int:
    """True, with `lock` held, when this put took the count to 0 (the
    caller frees the object and unlocks); false, unlocked, otherwise."""
    if _dec_not_one(ctx, r):
        return 0
    _raw_spin_lock(ctx, lock)
    if not _dec_and_test(ctx, r):
        _raw_spin_unlock(ctx, lock)
        return 0
    return 1
