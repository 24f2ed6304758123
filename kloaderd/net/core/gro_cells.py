"""net/core/gro_cells.c: `gro_cells_init` / `gro_cells_destroy`, the
per-CPU receive queues tunnels hand packets to (ip_tunnel, ip6_tunnel,
geneve).

As Linux: init allocates the zeroed per-CPU `struct gro_cell` (an
sk_buff_head, then a napi_struct: its size is the running kernel's) into
`gcells->cells`, each CPU's queue an empty list — NULL and -ENOMEM when
the per-CPU area is full; destroy frees them and sets `cells` to NULL (a
second destroy does nothing).  Linux also adds each cell's NAPI context to
the device and enables it: kloader polls no NAPI and receives no packet,
so the contexts are not on `dev->napi_list`.  The allocation is the
caller's per-CPU allocation (mm/percpu.py), reported if never destroyed.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...lib.list import init_list_head
from ...mm.percpu import _alloc, free_percpu

NAPI = struct("struct napi_struct", "linux/netdevice.h")
STRUCTS = (NAPI,)
SKB_HEAD_SIZE = 24            # struct sk_buff_head: next, prev, qlen, lock
CELLS = 0                     # struct gro_cells { struct gro_cell __percpu *cells; }


@export("gro_cells_init", "int gro_cells_init(struct gro_cells *gcells, struct net_device *dev)",
        nargs=2)
def gro_cells_init(ctx: Any, gcells: int, dev: int) -> int:
    size = SKB_HEAD_SIZE + ctx.kernel.layouts[NAPI].size
    cells = _alloc(ctx, size, 8)
    ctx.mem.write_u64(gcells + CELLS, cells)
    if not cells:
        return -errno.ENOMEM
    init_list_head(ctx.mem, ctx.kernel.percpu.base + cells)      # __skb_queue_head_init (CPU 0)
    return 0


@export("gro_cells_destroy", "void gro_cells_destroy(struct gro_cells *gcells)", nargs=1)
def gro_cells_destroy(ctx: Any, gcells: int) -> None:
    cells = ctx.mem.read_u64(gcells + CELLS)
    if cells:
        free_percpu(ctx, cells)
        ctx.mem.write_u64(gcells + CELLS, 0)
