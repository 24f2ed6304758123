"""crypto/scatterwalk.c's `scatterwalk_map_and_copy`: copy `nbytes` between
a linear buffer and a scatterlist's data from byte `start` on (`out` 1: into
the scatterlist, 0: out of it), as AEADs read and write their tags.

The entries are walked as lib/scatterlist.py reads them (the direct map,
SG_CHAIN and SG_END); a list shorter than start + nbytes is a page fault
past its end in Linux, and here the copy stops at the list's end.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..lib.scatterlist import PAGE, SCATTERLIST, segments

STRUCTS = (SCATTERLIST, PAGE)


@export("scatterwalk_map_and_copy", "void scatterwalk_map_and_copy(void *buf, struct scatterlist *sg, "
        "unsigned int start, unsigned int nbytes, int out)", nargs=5)
def scatterwalk_map_and_copy(ctx: Any, buf: int, sg: int, start: int, nbytes: int, out: int) -> None:
    mem = ctx.mem
    skip, left = start & 0xFFFFFFFF, nbytes & 0xFFFFFFFF
    for addr, length in segments(ctx.kernel, sg):
        if not left:
            break
        if skip >= length:
            skip -= length
            continue
        chunk = min(length - skip, left)
        if out & 0xFFFFFFFF:
            mem.write(addr + skip, mem.read(buf, chunk))
        else:
            mem.write(buf, mem.read(addr + skip, chunk))
        buf, left, skip = buf + chunk, left - chunk, 0
