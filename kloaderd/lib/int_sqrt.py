"""lib/math/int_sqrt.c: `int_sqrt`, the integer square root rounded down
(what NFS's and the block layer's heuristics size tables with)."""

from __future__ import annotations

import math
from typing import Any

from ..kernel.api import export

ULONG_MASK = (1 << 64) - 1


@export("int_sqrt", "unsigned long int_sqrt(unsigned long x)", nargs=1)
def int_sqrt(ctx: Any, x: int) -> int:
    return math.isqrt(x & ULONG_MASK)
