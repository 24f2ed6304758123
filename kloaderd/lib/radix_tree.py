"""lib/radix-tree.c: the radix tree API over XArrays (lib/xarray.py), as
Linux has had it since 4.20 (`struct radix_tree_root` is a `struct
xarray`): `radix_tree_insert`, `radix_tree_lookup`, `radix_tree_delete`,
`radix_tree_delete_item`, `radix_tree_gang_lookup`, and the preloads.

As Linux: inserting where an entry is is -EEXIST, an internal entry is a
WARN and -EINVAL; `radix_tree_delete_item` deletes only the item named
(NULL: whatever is there) and returns it; a gang lookup fills up to
`max_items` results from `first_index` up, in index order, and returns
how many.  `radix_tree_preload` and `radix_tree_maybe_preload` return 0
with preemption disabled, which the header's inline
`radix_tree_preload_end()` enables again; kloader's arrays need no nodes
reserved.  A tree still holding entries when its memory is freed is
reported as an XArray is ("leaked N entries of the radix_tree at …").
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.api import export
from ..kernel.panic import warn_once
from .xarray import STRUCTS as XARRAY_STRUCTS, is_internal, xarrays

STRUCTS = XARRAY_STRUCTS          # what these functions read at the kernel's offsets
KIND = "radix_tree"


@export("radix_tree_insert", "int radix_tree_insert(struct radix_tree_root *root, unsigned long index, "
        "void *item)", nargs=3)
def radix_tree_insert(ctx: Any, root: int, index: int, item: int) -> int:
    if is_internal(item):
        warn_once(ctx, None, "lib/radix-tree.c", "radix_tree_insert")
        return -errno.EINVAL
    arrays = xarrays(ctx.kernel)
    if arrays.entries(root).get(index):
        return -errno.EEXIST
    ret = arrays.store(ctx, root, KIND, index, item)
    return ret if ret < 0 else 0


@export("radix_tree_lookup", "void *radix_tree_lookup(const struct radix_tree_root *root, unsigned long index)",
        nargs=2)
def radix_tree_lookup(ctx: Any, root: int, index: int) -> int:
    return xarrays(ctx.kernel).entries(root).get(index, 0)


@export("radix_tree_delete_item", "void *radix_tree_delete_item(struct radix_tree_root *root, "
        "unsigned long index, void *item)", nargs=3)
def radix_tree_delete_item(ctx: Any, root: int, index: int, item: int) -> int:
    arrays = xarrays(ctx.kernel)
    entry = arrays.entries(root).get(index, 0)
    if not entry or item and entry != item:
        return 0
    arrays.store(ctx, root, KIND, index, 0)
    return entry


@export("radix_tree_delete", "void *radix_tree_delete(struct radix_tree_root *root, unsigned long index)",
        nargs=2)
def radix_tree_delete(ctx: Any, root: int, index: int) -> int:
    return radix_tree_delete_item(ctx, root, index, 0)


@export("radix_tree_gang_lookup", "unsigned int radix_tree_gang_lookup(const struct radix_tree_root *root, "
        "void **results, unsigned long first_index, unsigned int max_items)", nargs=4)
def radix_tree_gang_lookup(ctx: Any, root: int, results: int, first_index: int, max_items: int) -> int:
    tree = xarrays(ctx.kernel).get(root)
    found = 0
    if tree is not None:
        for index in tree.first_from(first_index):
            if found >= max_items & 0xFFFFFFFF:
                break
            ctx.mem.write_u64(results + 8 * found, tree.entries[index])
            found += 1
    return found


@export("radix_tree_preload", "int radix_tree_preload(gfp_t gfp_mask)", nargs=1)
def radix_tree_preload(ctx: Any, gfp_mask: int) -> int:
    ctx.task.preempt_count += 1              # local_lock(&radix_tree_preloads.lock)
    return 0


@export("radix_tree_maybe_preload", "int radix_tree_maybe_preload(gfp_t gfp_mask)", nargs=1)
def radix_tree_maybe_preload(ctx: Any, gfp_mask: int) -> int:
    return radix_tree_preload(ctx, gfp_mask)
