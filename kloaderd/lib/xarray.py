"""XArrays (Linux's lib/xarray.c): the sparse arrays of pointers behind
IDRs and IDAs (lib/idr.py) and used directly by modules (`xa_load`,
`xa_store`, `xa_alloc`, `xa_for_each`, ...).

A `struct xarray` is 16 bytes of module memory — `xa_lock`@0, `xa_flags`@4,
`xa_head`@8 — that the headers' inlines read: `xa_empty()` tests `xa_head`,
`xa_marked()` tests a mark bit of `xa_flags`, `xa_lock()` takes the spinlock.
The entries live in Python, keyed by the structure's address (Linux keeps
them in a tree of `xa_node`s from a slab cache): `xa_head` is NULL when the
array is empty and otherwise a node pointer (internal entry, `| 2`) into an
unmapped range, so a module that peeks finds what Linux would give it, and
one that dereferences it faults.  A mark is set in `xa_flags` while any
entry carries it (XA_FREE_MARK of an allocating array stays set: there is
always room).  Entries are Linux's: pointers, value entries (`xa_mk_value`,
bit 0), and the zero entry a reserved index holds (`xa_alloc` of NULL, or
NULL stored in an allocating array), which loads as NULL.

Bounds: an array holds at most `MAX_ENTRIES` entries; past that a store
fails with -ENOMEM as an allocation of a node would.  Where kloader differs:
an array still holding entries when the memory containing it is freed (a
module's data as it is unloaded, a kfree'd structure) is a leak Linux does
not see (its nodes stay allocated); kloader reports it ("MOD: leaked N
entries of the xarray at ADDR (xa_destroy)") and forgets the entries.  A
structure initialised again (`xa_head` found NULL) while entries are
recorded starts empty.

Layout: `struct xarray`'s members are read at the kernel's offsets, and
the mark bits of xa_flags start at the kernel's __GFP_BITS_SHIFT (27 in
Debian's 6.1, 25 in its 6.12), measured as layouts are (kernel/layouts.py);
struct xa_limit {max@0, min@4} is 8 bytes, passed by value in one register.
"""

from __future__ import annotations

import bisect
import errno
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..kernel.api import at_boot, export
from ..kernel.layouts import constants, struct
from ..kernel.panic import warn_once
from ..kernel.printk import KERN_ERR, Problem

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel

XARRAY = struct("struct xarray", "linux/xarray.h", "xa_flags", "xa_head")
# Where xa_flags' mark bits start: it moves with the gfp flags each release has.
GFP = constants("gfp flags", "linux/gfp.h", "__GFP_BITS_SHIFT")
STRUCTS = (XARRAY, GFP)

XA_FLAGS_TRACK_FREE = 1 << 2
XA_FLAGS_ZERO_BUSY = 1 << 3
XA_FLAGS_ALLOC_WRAPPED = 1 << 4
XA_MAX_MARKS = 3
XA_PRESENT = 8                         # xa_find's filter for "any entry"
XA_FREE_MARK = 0
ULONG_MAX = (1 << 64) - 1
UINT_MAX = (1 << 32) - 1
MAX_ERRNO = 4095

# Entries (include/linux/xarray.h)
XA_RETRY_ENTRY = (256 << 2) | 2
XA_ZERO_ENTRY = (257 << 2) | 2
NODE_BASE = 0xFFFF888E00000000         # xa_head of a non-empty array: an xa_node nobody maps
NODE_STEP = 0x240                      # sizeof(struct xa_node) on x86-64
MAX_ENTRIES = 1 << 20


def mark_flag(kernel: Any, mark: int) -> int:
    """XA_FLAGS_MARK(mark) in the emulated release's xa_flags."""
    return 1 << (getattr(kernel.layouts[GFP], "__GFP_BITS_SHIFT") + mark)


def xa_error(code: int) -> int:
    """XA_ERROR(-code): an internal entry holding the errno."""
    return ((-code << 2) | 2) & ULONG_MAX


def is_internal(entry: int) -> bool:
    return entry & 3 == 2


def is_advanced(entry: int) -> bool:
    """xa_is_advanced: retry and sibling entries, which no store may pass."""
    return is_internal(entry) and entry <= XA_RETRY_ENTRY


def zero_to_null(entry: int) -> int:
    return 0 if entry == XA_ZERO_ENTRY else entry


@dataclass(eq=False)
class Tree:
    """One array's entries, in index order."""
    address: int
    kind: str                               # "xarray", "idr", "ida": what its destroy is
    owner: Any                              # the module that stored its first entry
    node: int                               # xa_head while not empty
    entries: dict[int, int] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)          # sorted indices
    marks: tuple[set[int], ...] = field(default_factory=lambda: (set(), set(), set()))

    def first_from(self, index: int, last: int = ULONG_MAX) -> Iterator[int]:
        """Indices in [index, last], ascending."""
        at = bisect.bisect_left(self.order, index)
        while at < len(self.order) and self.order[at] <= last:
            yield self.order[at]
            at += 1

    def first_free(self, low: int, high: int) -> int | None:
        """The lowest index in [low, high] that holds nothing."""
        candidate = low
        for index in self.first_from(low, high):
            if index != candidate:
                break
            candidate += 1
        return candidate if candidate <= high else None


class XArrays:
    """Every array with entries, by the address of its structure."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.trees: dict[int, Tree] = {}
        self._nodes = 0
        kernel.sanitizer.leftover_checks.append(self._module_freed)
        kernel.sanitizer.watch_frees(self.trees, self._memory_freed)

    @functools.cached_property
    def at(self) -> Any:
        """struct xarray in this kernel (not at boot: a kernel without its
        layout never calls in, its functions not being emulated)."""
        return self.kernel.layouts[XARRAY]

    def get(self, address: int) -> Tree | None:
        """The array at `address`, None when it is empty (or was initialised again)."""
        tree = self.trees.get(address)
        if tree is not None and not self.kernel.mem.read_u64(address + self.at.xa_head):
            del self.trees[address]             # xa_init() over a non-empty array
            return None
        return tree

    def entries(self, address: int) -> dict[int, int]:
        tree = self.get(address)
        return tree.entries if tree is not None else {}

    def store(self, ctx: Any, address: int, kind: str, index: int, entry: int) -> int:
        """Put `entry` at `index` (0 erases): the old entry, or -ENOMEM."""
        tree = self.get(address)
        if not entry:
            return self._erase(tree, index) if tree is not None else 0
        if tree is None:
            node = NODE_BASE + (self._nodes % (1 << 24)) * NODE_STEP | 2
            self._nodes += 1
            tree = self.trees[address] = Tree(address, kind, ctx.module, node)
            self.kernel.mem.write_u64(address + self.at.xa_head, node)
        old = tree.entries.get(index, 0)
        if not old:
            if len(tree.entries) >= MAX_ENTRIES:
                return -errno.ENOMEM
            bisect.insort(tree.order, index)
        tree.entries[index] = entry
        return old

    def _erase(self, tree: Tree, index: int) -> int:
        old = tree.entries.pop(index, 0)
        if old:
            del tree.order[bisect.bisect_left(tree.order, index)]
            for marked in tree.marks:
                marked.discard(index)
            self._sync_marks(tree)
            if not tree.entries:
                self.destroy(tree.address)
        return old

    def destroy(self, address: int) -> None:
        """Everything goes; the structure reads empty."""
        tree = self.trees.pop(address, None)
        if tree is not None:
            mem = self.kernel.mem
            mem.write_u64(address + self.at.xa_head, 0)
            flags = mem.read_u32(address + self.at.xa_flags)
            marks = [mark_flag(self.kernel, mark) for mark in range(XA_MAX_MARKS)]
            if flags & XA_FLAGS_TRACK_FREE:
                marks.pop(XA_FREE_MARK)         # an allocating array always has room
            for bit in marks:
                flags &= ~bit
            mem.write_u32(address + self.at.xa_flags, flags)

    def set_mark(self, address: int, index: int, mark: int, on: bool) -> None:
        tree = self.get(address)
        if tree is None or index not in tree.entries or not 0 <= mark < XA_MAX_MARKS:
            return
        (tree.marks[mark].add if on else tree.marks[mark].discard)(index)
        self._sync_marks(tree)

    def _sync_marks(self, tree: Tree) -> None:
        """xa_flags carries each mark some entry has (the free mark of an
        allocating array stays as it is: there is always room)."""
        mem = self.kernel.mem
        flags = mem.read_u32(tree.address + self.at.xa_flags)
        for mark, marked in enumerate(tree.marks):
            if mark == XA_FREE_MARK and flags & XA_FLAGS_TRACK_FREE:
                continue
            bit = mark_flag(self.kernel, mark)
            flags = flags | bit if marked else flags & ~bit
        mem.write_u32(tree.address + self.at.xa_flags, flags)

    # -- leftovers --------------------------------------------------------------

    def _leak(self, tree: Tree) -> None:
        name = getattr(tree.owner, "name", None)
        what = {"xarray": "xa_destroy", "idr": "idr_destroy", "ida": "ida_destroy",
                "radix_tree": "radix_tree_delete"}[tree.kind]
        unit = "ids" if tree.kind == "ida" else "entries"
        self.kernel.log.emit(KERN_ERR, f"{name or 'kernel'}: leaked {len(tree.entries)} {unit} of the "
                                       f"{tree.kind} at {tree.address:#x} ({what})", name,
                             problem=Problem.LEAK)
        del self.trees[tree.address]

    def _module_freed(self, mod: Any) -> None:
        sanitizer = self.kernel.sanitizer
        for tree in [t for t in self.trees.values() if sanitizer.belongs_to(mod, t.address)]:
            self._leak(tree)

    def _memory_freed(self, start: int, end: int) -> None:
        for tree in [t for t in self.trees.values() if start <= t.address < end]:
            self._leak(tree)


@at_boot
def xarrays(kernel: "Kernel") -> XArrays:
    return kernel.subsystem(XArrays)


def _check_entry(ctx: Any, entry: int) -> bool:
    """A store of a retry or sibling entry: WARN_ON_ONCE and -EINVAL."""
    if is_advanced(entry):
        warn_once(ctx, None, "include/linux/xarray.h:1105", "__xa_store")
        return False
    return True


def _tracks_free(ctx: Any, xa: int) -> bool:
    return bool(ctx.mem.read_u32(xa + ctx.kernel.layouts[XARRAY].xa_flags) & XA_FLAGS_TRACK_FREE)


@export("xa_load", "void *xa_load(struct xarray *xa, unsigned long index)", nargs=2)
def xa_load(ctx: Any, xa: int, index: int) -> int:
    return zero_to_null(xarrays(ctx.kernel).entries(xa).get(index, 0))


def _store(ctx: Any, xa: int, index: int, entry: int) -> int:
    if not _check_entry(ctx, entry):
        return xa_error(errno.EINVAL)
    if not entry and _tracks_free(ctx, xa):
        entry = XA_ZERO_ENTRY
    old = xarrays(ctx.kernel).store(ctx, xa, "xarray", index, entry)
    return xa_error(-old) if old < 0 else zero_to_null(old)


@export("__xa_store", "void *__xa_store(struct xarray *xa, unsigned long index, void *entry, gfp_t gfp)",
        nargs=4)
def __xa_store(ctx: Any, xa: int, index: int, entry: int, gfp: int) -> int:
    return _store(ctx, xa, index, entry)


@export("xa_store", "void *xa_store(struct xarray *xa, unsigned long index, void *entry, gfp_t gfp)",
        nargs=4)
def xa_store(ctx: Any, xa: int, index: int, entry: int, gfp: int) -> int:
    return _store(ctx, xa, index, entry)


def _erase(ctx: Any, xa: int, index: int) -> int:
    return zero_to_null(xarrays(ctx.kernel).store(ctx, xa, "xarray", index, 0))


@export("__xa_erase", "void *__xa_erase(struct xarray *xa, unsigned long index)", nargs=2)
def __xa_erase(ctx: Any, xa: int, index: int) -> int:
    return _erase(ctx, xa, index)


@export("xa_erase", "void *xa_erase(struct xarray *xa, unsigned long index)", nargs=2)
def xa_erase(ctx: Any, xa: int, index: int) -> int:
    return _erase(ctx, xa, index)


@export("__xa_insert", "int __xa_insert(struct xarray *xa, unsigned long index, void *entry, gfp_t gfp)",
        nargs=4)
def __xa_insert(ctx: Any, xa: int, index: int, entry: int, gfp: int) -> int:
    """0, or -EBUSY when the index holds an entry (a reserved one too)."""
    if not _check_entry(ctx, entry):
        return -errno.EINVAL
    arrays = xarrays(ctx.kernel)
    if arrays.entries(xa).get(index):
        return -errno.EBUSY
    ret = arrays.store(ctx, xa, "xarray", index, entry or XA_ZERO_ENTRY)
    return ret if ret < 0 else 0


@export("__xa_cmpxchg", "void *__xa_cmpxchg(struct xarray *xa, unsigned long index, void *old, "
        "void *entry, gfp_t gfp)", nargs=5)
def __xa_cmpxchg(ctx: Any, xa: int, index: int, old: int, entry: int, gfp: int) -> int:
    """Store `entry` if the index holds `old`; the entry found (NULL for a
    reserved one)."""
    if not _check_entry(ctx, entry):
        return xa_error(errno.EINVAL)
    arrays = xarrays(ctx.kernel)
    current = arrays.entries(xa).get(index, 0)
    if current == old:
        ret = arrays.store(ctx, xa, "xarray", index, entry)
        if ret < 0:
            return xa_error(-ret)
    return zero_to_null(current)


def _limit(limit: int) -> tuple[int, int]:
    """struct xa_limit {u32 max; u32 min;} in one register: (min, max)."""
    return (limit >> 32) & UINT_MAX, limit & UINT_MAX


def _alloc(ctx: Any, xa: int, id_ptr: int, entry: int, low: int, high: int) -> int:
    """__xa_alloc's search: the lowest free index in [low, high] into *id."""
    if not _check_entry(ctx, entry):
        return -errno.EINVAL
    if not _tracks_free(ctx, xa):
        warn_once(ctx, None, "lib/xarray.c:1822", "__xa_alloc")
        return -errno.EINVAL
    arrays = xarrays(ctx.kernel)
    tree = arrays.get(xa)
    index = tree.first_free(low, high) if tree is not None else (low if low <= high else None)
    if index is None:
        return -errno.EBUSY
    ret = arrays.store(ctx, xa, "xarray", index, entry or XA_ZERO_ENTRY)
    if ret < 0:
        return ret
    ctx.mem.write_u32(id_ptr, index)
    return 0


@export("__xa_alloc", "int __xa_alloc(struct xarray *xa, u32 *id, void *entry, struct xa_limit limit, "
        "gfp_t gfp)", nargs=5)
def __xa_alloc(ctx: Any, xa: int, id_ptr: int, entry: int, limit: int, gfp: int) -> int:
    low, high = _limit(limit)
    return _alloc(ctx, xa, id_ptr, entry, low, high)


@export("__xa_alloc_cyclic", "int __xa_alloc_cyclic(struct xarray *xa, u32 *id, void *entry, "
        "struct xa_limit limit, u32 *next, gfp_t gfp)", nargs=6)
def __xa_alloc_cyclic(ctx: Any, xa: int, id_ptr: int, entry: int, limit: int, next_ptr: int,
                      gfp: int) -> int:
    """From *next on, wrapping to the limit's minimum (then 1: it wrapped)."""
    mem, flags_at = ctx.mem, ctx.kernel.layouts[XARRAY].xa_flags
    low, high = _limit(limit)
    start = max(low, mem.read_u32(next_ptr))
    ret = _alloc(ctx, xa, id_ptr, entry, start, high)
    flags = mem.read_u32(xa + flags_at)
    if flags & XA_FLAGS_ALLOC_WRAPPED and ret == 0:
        mem.write_u32(xa + flags_at, flags & ~XA_FLAGS_ALLOC_WRAPPED)
        ret = 1
    if ret < 0 and start > low:
        ret = _alloc(ctx, xa, id_ptr, entry, low, high)
        if ret == 0:
            ret = 1
    if ret >= 0:
        following = (mem.read_u32(id_ptr) + 1) & UINT_MAX
        mem.write_u32(next_ptr, following)
        if not following:
            mem.write_u32(xa + flags_at, mem.read_u32(xa + flags_at) | XA_FLAGS_ALLOC_WRAPPED)
    return ret


def _find(ctx: Any, xa: int, index_ptr: int, first: int, last: int, filter_: int) -> int:
    """The first entry in [first, last] (reserved ones skipped) that
    `filter_` admits: XA_PRESENT, or a mark."""
    tree = xarrays(ctx.kernel).get(xa)
    if tree is None or first > last:
        return 0
    marked: Callable[[int], bool] = ((lambda i: True) if filter_ >= XA_MAX_MARKS
                                     else tree.marks[filter_].__contains__)
    for index in tree.first_from(first, last):
        entry = tree.entries[index]
        if entry != XA_ZERO_ENTRY and marked(index):
            ctx.mem.write_u64(index_ptr, index)
            return entry
    return 0


@export("xa_find", "void *xa_find(struct xarray *xa, unsigned long *indexp, unsigned long max, "
        "xa_mark_t filter)", nargs=4)
def xa_find(ctx: Any, xa: int, index_ptr: int, last: int, filter_: int) -> int:
    return _find(ctx, xa, index_ptr, ctx.mem.read_u64(index_ptr), last, filter_ & UINT_MAX)


@export("xa_find_after", "void *xa_find_after(struct xarray *xa, unsigned long *indexp, unsigned long max, "
        "xa_mark_t filter)", nargs=4)
def xa_find_after(ctx: Any, xa: int, index_ptr: int, last: int, filter_: int) -> int:
    after = ctx.mem.read_u64(index_ptr)
    if after == ULONG_MAX:
        return 0
    return _find(ctx, xa, index_ptr, after + 1, last, filter_ & UINT_MAX)


@export("xa_destroy", "void xa_destroy(struct xarray *xa)", nargs=1)
def xa_destroy(ctx: Any, xa: int) -> None:
    xarrays(ctx.kernel).destroy(xa)


@export("xa_get_mark", "bool xa_get_mark(struct xarray *xa, unsigned long index, xa_mark_t mark)", nargs=3)
def xa_get_mark(ctx: Any, xa: int, index: int, mark: int) -> int:
    tree = xarrays(ctx.kernel).get(xa)
    mark &= UINT_MAX
    return int(tree is not None and mark < XA_MAX_MARKS and index in tree.marks[mark])


def _mark(on: bool) -> Callable[[Any, int, int, int], None]:
    def mark(ctx: Any, xa: int, index: int, which: int) -> None:
        xarrays(ctx.kernel).set_mark(xa, index, which & UINT_MAX, on)
    return mark


for _name, _on in (("xa_set_mark", True), ("__xa_set_mark", True),
                   ("xa_clear_mark", False), ("__xa_clear_mark", False)):
    export(_name, f"void {_name}(struct xarray *xa, unsigned long index, xa_mark_t mark)", nargs=3)(_mark(_on))
