"""The kernel heap: kmalloc's size classes over a buddy page allocator.

Shaped like Linux's SLUB on x86-64: requests up to 8 KiB come from the
`kmalloc-<size>` caches (8 … 8192, with the odd 96 and 192), larger ones
straight from the page allocator, up to KMALLOC_MAX_SIZE (4 MiB, order 10).
Every block the buddy allocator hands out is aligned to its own size, so
power-of-two kmalloc sizes come back naturally aligned as Linux guarantees,
and everything is at least 8-byte aligned.

Memory is mapped into the guest lazily, a chunk at a time, as the buddy
allocator first touches it.  Each allocation is accounted to an owner (a
module name, or None for the core kernel) so a module's leaks can be
reported and reclaimed when it is freed; each owner's allocations are
indexed, so reclaiming them costs what that owner holds, not what the
whole heap holds.  Mistakes in `kfree` are reported
in SLUB's words and never corrupt the heap; freed objects are poisoned
with 0x6b (POISON_FREE) so a use after free reads garbage, as with
slub_debug.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ..config import PAGE_SHIFT, PAGE_SIZE
from .printk import KERN_ERR, KERN_WARNING, Problem

MAX_ORDER = 10                                  # largest buddy block: 4 MiB
KMALLOC_MAX_SIZE = PAGE_SIZE << MAX_ORDER       # 4 MiB, as x86-64 SLUB
KMALLOC_MAX_CACHE_SIZE = 2 * PAGE_SIZE          # larger requests go to the page allocator
KMALLOC_SIZES = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)
ZERO_SIZE_PTR = 16                              # kmalloc(0): not NULL, faults on use
POISON_FREE = 0x6B
MAP_CHUNK = 256 << 10                           # granularity of lazy mapping
_PAGE_MASK = ~(PAGE_SIZE - 1)


# byte -> size -> the bytes: kfree poisons the same sizes again and again.
_FILLS: dict[int, dict[int, bytes]] = {0: {}, POISON_FREE: {}}

class HeapMemory(Protocol):
    def map(self, addr: int, size: int, perms: str = "rw-") -> None: ...
    def write(self, addr: int, data: bytes) -> None: ...
    def write_data(self, addr: int, data: bytes) -> None: ...
    def read(self, addr: int, n: int) -> bytes: ...


class LogSink(Protocol):
    def emit(self, level: int, text: str, module: str | None = None) -> object: ...


def _order_for(size: int) -> int:
    """The buddy order whose block holds `size` bytes."""
    return max(0, (size - 1).bit_length() - PAGE_SHIFT)


class BuddyAllocator:
    """Pages of [base, end), handed out in naturally aligned power-of-two
    blocks; the space is carved into blocks only as it is first needed."""

    def __init__(self, base: int, end: int) -> None:
        self.base = -(-base // PAGE_SIZE) * PAGE_SIZE
        self.end = end // PAGE_SIZE * PAGE_SIZE
        self._brk = self.base                               # never handed out beyond here
        self._free: list[set[int]] = [set() for _ in range(MAX_ORDER + 1)]
        self._heaps: list[list[int]] = [[] for _ in range(MAX_ORDER + 1)]   # lowest first

    def _push(self, order: int, addr: int) -> None:
        self._free[order].add(addr)
        heapq.heappush(self._heaps[order], addr)

    def _pop(self, order: int) -> int | None:
        heap, free = self._heaps[order], self._free[order]
        while heap:
            addr = heapq.heappop(heap)
            if addr in free:
                free.remove(addr)
                return addr
        return None

    def _carve(self) -> bool:
        """Add the largest aligned block at the break to the free lists."""
        for order in range(MAX_ORDER, -1, -1):
            size = PAGE_SIZE << order
            if self._brk % size == 0 and self._brk + size <= self.end:
                self._push(order, self._brk)
                self._brk += size
                return True
        return False

    def alloc(self, order: int) -> int | None:
        while True:
            for have in range(order, MAX_ORDER + 1):
                addr = self._pop(have)
                if addr is not None:
                    while have > order:                     # split, keep the low half
                        have -= 1
                        self._push(have, addr + (PAGE_SIZE << have))
                    return addr
            if not self._carve():
                return None

    def free(self, addr: int, order: int) -> None:
        while order < MAX_ORDER:
            buddy = addr ^ (PAGE_SIZE << order)
            if buddy not in self._free[order]:
                break
            self._free[order].remove(buddy)                 # its heap entry goes stale
            addr = min(addr, buddy)
            order += 1
        self._push(order, addr)


@dataclass
class _Slab:
    start: int
    cache: "_Cache"
    order: int
    free: list[int] = field(default_factory=list)    # free objects, lowest last (popped first)

    @property
    def objects(self) -> int:
        return (PAGE_SIZE << self.order) // self.cache.size


@dataclass
class _Cache:
    size: int
    partial: list[_Slab] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"kmalloc-{self.size // 1024}k" if self.size >= 1024 else f"kmalloc-{self.size}"

    @property
    def orders(self) -> tuple[int, int]:
        """SLUB's oo and min: slabs of at least 8 objects up to order 3, and
        the smallest slab of one object, tried when memory is short."""
        return min(3, _order_for(self.size * 8)), _order_for(self.size)


@dataclass(slots=True)
class _Held:
    """What one owner holds: the bytes it asked for, and its live
    allocations in allocation order (a dict as an ordered set), so that
    `release` frees them as the heap handed them out without looking at
    anyone else's."""
    bytes: int = 0
    live: dict[int, None] = field(default_factory=dict)


@dataclass(slots=True)
class _Allocation:
    size: int                       # what was asked for
    capacity: int                   # ksize()
    owner: str | None
    cache: _Cache | None            # None: a page allocation ("kmalloc_large")
    held: _Held                     # its owner's account, where it is listed


class Slab:
    """kmalloc/kfree over guest memory [base, base+size), accounted per owner.

    `max_owner_bytes` / `max_total_bytes` (None: unlimited) cap the bytes
    requested and not yet freed, per owner and in all; a request over a
    limit fails as an out-of-memory kmalloc does, with NULL.
    """

    def __init__(self, mem: HeapMemory, base: int, size: int, *, log: LogSink,
                 tainted: Callable[[], str] = lambda: "Not tainted",
                 max_owner_bytes: int | None = None,
                 max_total_bytes: int | None = None) -> None:
        self.mem = mem
        self.log = log
        self.tainted = tainted
        self.max_owner_bytes = max_owner_bytes
        self.max_total_bytes = max_total_bytes
        self._pages = BuddyAllocator(base, base + size)
        self._mapped: set[int] = set()                      # MAP_CHUNK indexes
        self._caches = [_Cache(s) for s in KMALLOC_SIZES]
        # kmalloc_index() as a table: the cache for every size up to
        # KMALLOC_MAX_CACHE_SIZE, indexed by (size + 7) >> 3 (classes are multiples of 8).
        self._cache_of = [self._caches[bisect.bisect_left(KMALLOC_SIZES, 8 * i)]
                          for i in range((KMALLOC_MAX_CACHE_SIZE >> 3) + 1)]
        self._slab_of_page: dict[int, _Slab] = {}
        self._live: dict[int, _Allocation] = {}
        self._freed_large: set[int] = set()
        # owner -> what it holds.  An owner's entry stays, at zero, until
        # `release`: a loop of kmalloc+kfree does not make and drop it every time.
        self._held: dict[str | None, _Held] = {}
        self._total = 0
        # failslab: asked before every allocation, as slab_pre_alloc_hook() asks should_failslab().
        self.should_fail: Callable[[int, str | None], bool] | None = None
        # debugobjects: told of every object freed, while its bytes are still
        # there, as slab_free_hook() calls debug_check_no_obj_freed(x, size).
        self.on_free: Callable[[int, int], None] | None = None
        # the memmap: told of every range of the heap as it is first mapped
        # (mm/page_alloc.py backs its struct pages), and of those mapped before it was set.
        self._on_map: Callable[[int, int], None] | None = None

    # -- allocation ----------------------------------------------------------
    def alloc(self, size: int, owner: str | None = None, *, zero: bool = False) -> int:
        """kmalloc: an address, ZERO_SIZE_PTR for size 0, or 0 if refused."""
        if size <= KMALLOC_MAX_CACHE_SIZE:
            if size <= 0:
                return ZERO_SIZE_PTR
            # kmalloc_index(): the smallest size class that fits, from a table.
            cache: _Cache | None = self._cache_of[(size + 7) >> 3]
        elif size > KMALLOC_MAX_SIZE:
            self.log.emit(KERN_WARNING, f"{owner or 'kernel'}: kmalloc({size}) refused: larger "
                                        f"than KMALLOC_MAX_SIZE ({KMALLOC_MAX_SIZE})", owner)
            return 0
        else:
            cache = None
        held = self._held.get(owner)
        if not self._within_limits(size, owner, held.bytes if held is not None else 0):
            return 0
        if self.should_fail is not None and self.should_fail(size, owner):
            return 0                                         # failslab (fault_inject.py)
        if cache is not None:
            addr = self._alloc_object(cache)
            capacity = cache.size
        else:
            capacity = PAGE_SIZE << _order_for(size)
            addr = self._alloc_pages(_order_for(size))
        if addr is None:
            self.log.emit(KERN_WARNING, f"{owner or 'kernel'}: kmalloc({size}) failed: out of "
                                        "heap memory", owner)
            return 0
        if held is None:
            held = self._held[owner] = _Held()
        self._live[addr] = _Allocation(size, capacity, owner, cache, held)
        held.bytes += size
        held.live[addr] = None
        self._total += size
        if zero:
            self._fill(addr, capacity, 0)
        return addr

    def _fill(self, addr: int, size: int, byte: int) -> None:
        """memset of an object: a small one (within a page, the common case)
        in one write to its physical page; heap pages are never executable,
        so no translated code needs flushing."""
        data = _FILLS[byte].get(size)
        if data is None:
            data = bytes([byte]) * size
            if size <= PAGE_SIZE:
                _FILLS[byte][size] = data
        if (addr & (PAGE_SIZE - 1)) + size <= PAGE_SIZE:
            self.mem.write_data(addr, data)
        else:
            self.mem.write(addr, data)

    def _within_limits(self, size: int, owner: str | None, used: int, already: int = 0) -> bool:
        """Would `size` more bytes (replacing `already`) stay within the
        limits, `owner` holding `used` bytes now?"""
        used -= already
        problem = None
        if self.max_owner_bytes is not None and used + size > self.max_owner_bytes:
            problem = f"the per-owner limit of {self.max_owner_bytes} bytes"
        elif self.max_total_bytes is not None and \
                self._total - already + size > self.max_total_bytes:
            problem = f"the heap limit of {self.max_total_bytes} bytes"
        if problem:
            self.log.emit(KERN_WARNING, f"{owner or 'kernel'}: kmalloc({size}) refused: "
                                        f"would exceed {problem}", owner)
        return problem is None

    def _alloc_pages(self, order: int) -> int | None:
        addr = self._pages.alloc(order)
        if addr is not None:
            self._ensure_mapped(addr, PAGE_SIZE << order)
            self._freed_large.discard(addr)
        return addr

    def _alloc_object(self, cache: _Cache) -> int | None:
        if not cache.partial:
            for order in cache.orders:
                start = self._alloc_pages(order)
                if start is not None:
                    break
            else:
                return None
            slab = _Slab(start, cache, order)
            slab.free = [start + i * cache.size for i in range(slab.objects - 1, -1, -1)]
            for page in range(start, start + (PAGE_SIZE << order), PAGE_SIZE):
                self._slab_of_page[page] = slab
            cache.partial.append(slab)
        slab = cache.partial[0]
        addr = slab.free.pop()
        if not slab.free:
            cache.partial.pop(0)
        return addr

    def _ensure_mapped(self, addr: int, size: int) -> None:
        first, last = addr // MAP_CHUNK, (addr + size - 1) // MAP_CHUNK
        run = None
        for chunk in range(first, last + 2):
            missing = chunk <= last and chunk not in self._mapped
            if missing and run is None:
                run = chunk
            elif not missing and run is not None:
                start = max(run * MAP_CHUNK, self._pages.base)
                size = min(chunk * MAP_CHUNK, self._pages.end) - start
                self.mem.map(start, size, "rw-")
                self._mapped.update(range(run, chunk))
                if self._on_map is not None:
                    self._on_map(start, size)
                run = None

    def on_map(self, hook: Callable[[int, int], None]) -> None:
        """Call `hook(start, size)` for each range of the heap mapped, so
        far and from now on."""
        self._on_map = hook
        for chunk in sorted(self._mapped):
            start = max(chunk * MAP_CHUNK, self._pages.base)
            hook(start, min((chunk + 1) * MAP_CHUNK, self._pages.end) - start)

    # -- freeing -------------------------------------------------------------
    def free(self, addr: int, owner: str | None = None) -> bool:
        """kfree: False (and a SLUB-style report) for a pointer kmalloc did
        not return or already took back; the heap stays intact either way.
        `owner` is only who called, for the report: memory may be freed by
        someone other than its allocator."""
        if addr <= ZERO_SIZE_PTR:                             # ZERO_OR_NULL_PTR
            return True
        alloc = self._live.pop(addr, None)
        if alloc is None:
            self._report_bad_free(addr, owner)
            return False
        if self.on_free is not None:
            self.on_free(addr, alloc.capacity)
        held = alloc.held
        held.bytes -= alloc.size
        del held.live[addr]
        self._total -= alloc.size
        self._fill(addr, alloc.capacity, POISON_FREE)
        if alloc.cache is None:
            self._pages.free(addr, _order_for(alloc.capacity))
            self._freed_large.add(addr)
        else:
            slab = self._slab_of_page[addr & _PAGE_MASK]
            if not slab.free:
                alloc.cache.partial.append(slab)
            slab.free.append(addr)
        return True

    def _report_bad_free(self, addr: int, owner: str | None) -> None:
        slab = self._slab_of_page.get(addr & _PAGE_MASK)
        if slab is not None:
            offset = addr - slab.start
            valid = offset % slab.cache.size == 0
            self._slab_bug(slab.cache.name, "Object already free" if valid else
                           f"Invalid object pointer {addr:#x}", owner, addr, slab)
        elif addr in self._freed_large:
            self._slab_bug("kmalloc-large", "Object already free", owner, addr, None)
        else:
            self.log.emit(KERN_ERR, f"kfree: invalid pointer {addr:#x} from {owner or 'kernel'}",
                          owner, problem=Problem.SANITIZER)

    def _slab_bug(self, cache: str, reason: str, owner: str | None, addr: int,
                  slab: _Slab | None) -> None:
        """slab_bug()'s banner, then what SLUB knows about the object."""
        lines = ["=" * 77, f"BUG {cache} ({self.tainted()}): {reason}", "-" * 77]
        if slab is not None:
            used = slab.objects - len(slab.free)
            lines.append(f"Slab {slab.start:#x} objects={slab.objects} used={used}")
        lines.append(f"Object {addr:#x} freed by {owner or 'kernel'}")
        for i, line in enumerate(lines):
            self.log.emit(KERN_ERR, line, owner, problem=Problem.SANITIZER if i == 1 else None)

    # -- the rest of the API ---------------------------------------------------
    def realloc(self, addr: int, size: int, owner: str | None = None, *,
                zero: bool = False) -> int:
        """krealloc: in place while ksize() suffices, else move; on failure
        the old object is left untouched and 0 returned."""
        if size == 0:
            self.free(addr, owner)
            return ZERO_SIZE_PTR
        if addr <= ZERO_SIZE_PTR:
            return self.alloc(size, owner, zero=zero)
        alloc = self._live.get(addr)
        if alloc is None:
            self._report_bad_free(addr, owner)
            return 0
        if size <= alloc.capacity:
            if size > alloc.size and \
                    not self._within_limits(size, alloc.owner, alloc.held.bytes, alloc.size):
                return 0
            alloc.held.bytes += size - alloc.size
            self._total += size - alloc.size
            alloc.size = size
            return addr
        new = self.alloc(size, owner, zero=zero)
        if new:
            self.mem.write(new, self.mem.read(addr, alloc.capacity))
            self.free(addr, owner)
        return new

    def ksize(self, addr: int) -> int:
        """The usable size of an allocation (its size class), 0 if none."""
        alloc = self._live.get(addr)
        return alloc.capacity if alloc is not None else 0

    def owns(self, addr: int, owner: str | None) -> bool:
        """`addr` is the start of a live allocation of `owner`."""
        alloc = self._live.get(addr)
        return alloc is not None and alloc.owner == owner

    def containing(self, addr: int) -> int | None:
        """The start of the live allocation `addr` lies in (anywhere in it), or None."""
        slab = self._slab_of_page.get(addr & _PAGE_MASK)
        if slab is not None:
            size = slab.cache.size
            start = slab.start + (addr - slab.start) // size * size
            return start if start in self._live else None
        for start, alloc in self._live.items():
            if alloc.cache is None and start <= addr < start + alloc.capacity:
                return start
        return None

    def holds(self, addr: int, owner: str | None) -> bool:
        """`addr` lies inside a live allocation of `owner`."""
        start = self.containing(addr)
        return start is not None and self._live[start].owner == owner

    def give_to_kernel(self, addr: int) -> None:
        """The live allocation at `addr` is the kernel's from now on: its
        owner handed it over to be freed later (kfree_rcu), so it is no
        longer that owner's to leak."""
        alloc = self._live.get(addr)
        if alloc is None or alloc.owner is None:
            return
        alloc.held.bytes -= alloc.size
        del alloc.held.live[addr]
        held = self._held.get(None)
        if held is None:
            held = self._held[None] = _Held()
        held.bytes += alloc.size
        held.live[addr] = None
        alloc.owner, alloc.held = None, held

    def usage(self, owner: str | None) -> tuple[int, int]:
        """(bytes requested, allocations) an owner holds now."""
        held = self._held.get(owner)
        return (held.bytes, len(held.live)) if held is not None else (0, 0)

    @property
    def total(self) -> int:
        return self._total

    def release(self, owner: str | None) -> tuple[int, int]:
        """Free everything `owner` still holds, oldest first; returns (bytes,
        allocations)."""
        held = self._held.get(owner)
        if held is None:
            return 0, 0
        usage = held.bytes, len(held.live)
        for addr in list(held.live):
            self.free(addr, owner)
        self._held.pop(owner, None)         # kept at zero until now: see __init__
        return usage

    def reclaim_module(self, name: str) -> tuple[int, int]:
        """When a module is freed: take back what it leaked and say so."""
        leaked, count = self.release(name)
        if count:
            self.log.emit(KERN_ERR, f"{name}: leaked {leaked} bytes in {count} allocations",
                          problem=Problem.LEAK)
        return leaked, count
