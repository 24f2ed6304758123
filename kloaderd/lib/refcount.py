"""lib/refcount.c: `refcount_warn_saturate`, where refcount_t's inline
helpers go when a count overflows, hits zero where it must not, or is
incremented from zero.

As Linux: the counter is set to REFCOUNT_SATURATED (0xc0000000) so it can
never reach zero again (the object leaks instead of being freed under a
user), and a WARN_ONCE names the event — once per event kind per kernel,
since each REFCOUNT_WARN in Linux is its own WARN_ONCE site.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
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
