"""The kernel heap: size classes, alignment, kfree mistakes, accounting,
limits, and the kmalloc family as module code calls it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st
from unicorn import UC_ARCH_X86, UC_MODE_64, Uc

from kloaderd.kernel.api import slab as api_slab
from kloaderd.kernel.memory import AddressSpace, GuestFault
from kloaderd.kernel.printk import LogBuffer
from kloaderd.kernel.slab import KMALLOC_MAX_SIZE, POISON_FREE, ZERO_SIZE_PTR, Slab

HEAP = 0xFFFF888100000000
HEAP_SIZE = 64 << 20


def new_slab(**limits) -> Slab:
    mem = AddressSpace(Uc(UC_ARCH_X86, UC_MODE_64))
    return Slab(mem, HEAP, HEAP_SIZE, log=LogBuffer(), **limits)


def log_texts(slab: Slab) -> list[str]:
    return [r.text for r in slab.log.records()]


def test_size_classes_and_natural_alignment():
    slab = new_slab()
    for size, ksize in [(1, 8), (8, 8), (9, 16), (65, 96), (100, 128), (129, 192), (193, 256),
                        (4096, 4096), (5000, 8192), (8193, 16384), (KMALLOC_MAX_SIZE, 4 << 20)]:
        addr = slab.alloc(size, "m")
        assert addr and addr % 8 == 0
        assert slab.ksize(addr) == ksize
        if ksize & (ksize - 1) == 0:
            assert addr % ksize == 0, (size, hex(addr))
        slab.mem.write(addr + size - 1, b"x")        # the whole object is mapped


def test_lazy_growth_maps_only_what_is_used():
    slab = new_slab()
    assert not slab.mem.is_mapped(HEAP)
    addr = slab.alloc(32, None)
    assert slab.mem.is_mapped(addr)
    assert not slab.mem.is_mapped(HEAP + HEAP_SIZE - 4096)


def test_zero_size_null_and_huge():
    slab = new_slab()
    assert slab.alloc(0, "m") == ZERO_SIZE_PTR
    assert slab.free(ZERO_SIZE_PTR) and slab.free(0)             # no-ops
    assert slab.alloc(KMALLOC_MAX_SIZE + 1, "m") == 0
    assert "kmalloc(4194305) refused: larger than KMALLOC_MAX_SIZE" in log_texts(slab)[-1]
    assert slab.usage("m") == (0, 0)


def test_zeroing_and_poisoning():
    slab = new_slab()
    a = slab.alloc(64, "m")
    slab.mem.write(a, b"\xaa" * 64)
    slab.free(a, "m")
    assert slab.mem.read(a, 64) == bytes([POISON_FREE]) * 64     # use after free reads poison
    b = slab.alloc(64, "m", zero=True)
    assert b == a                                                # the slot is reused
    assert slab.mem.read(b, 64) == bytes(64)


def test_double_free_is_reported_and_harmless():
    slab = new_slab()
    a = slab.alloc(40, "m")
    assert slab.free(a, "m")
    assert not slab.free(a, "m")
    assert "BUG kmalloc-64 (Not tainted): Object already free" in log_texts(slab)
    b, c = slab.alloc(40, "m"), slab.alloc(40, "m")
    assert b == a and c != a                                     # not handed out twice


def test_bad_pointers_are_reported():
    slab = new_slab(tainted=lambda: "Tainted: G           O")
    a = slab.alloc(64, "m")
    assert not slab.free(a + 8, "m")
    assert f"BUG kmalloc-64 (Tainted: G           O): Invalid object pointer {a + 8:#x}" \
        in log_texts(slab)
    assert not slab.free(0xFFFF888012345678, "m")
    assert log_texts(slab)[-1] == "kfree: invalid pointer 0xffff888012345678 from m"
    big = slab.alloc(100000, "m")
    slab.free(big, "m")
    assert not slab.free(big, "m")
    assert "BUG kmalloc-large (Tainted: G           O): Object already free" in log_texts(slab)
    assert slab.usage("m") == (64, 1)                            # `a` is still live


def test_realloc_in_place_grow_move_and_shrink_to_zero():
    slab = new_slab()
    a = slab.alloc(20, "m")
    slab.mem.write(a, b"0123456789abcdefghij")
    assert slab.realloc(a, 30, "m") == a                         # kmalloc-32 still fits
    assert slab.usage("m") == (30, 1)
    b = slab.realloc(a, 100, "m")
    assert b != a and slab.ksize(b) == 128
    assert slab.mem.read(b, 20) == b"0123456789abcdefghij"
    assert slab.ksize(a) == 0 and slab.usage("m") == (100, 1)
    assert slab.realloc(b, 0, "m") == ZERO_SIZE_PTR
    assert slab.usage("m") == (0, 0)
    c = slab.realloc(0, 10, "m")
    assert c and slab.usage("m") == (10, 1)


def test_failed_realloc_leaves_the_object_alone():
    slab = new_slab(max_owner_bytes=1000)
    a = slab.alloc(500, "m")
    assert slab.realloc(a, 2000, "m") == 0
    assert slab.ksize(a) == 512 and slab.usage("m") == (500, 1)


def test_accounting_and_release():
    slab = new_slab()
    for size in (10, 20, 5000):
        slab.alloc(size, "leaky")
    keep = slab.alloc(7, None)
    freed_by_other = slab.alloc(30, "leaky")
    slab.free(freed_by_other, "someone-else")                    # charged to its allocator
    assert slab.usage("leaky") == (5030, 3)
    assert slab.owns(keep, None) and not slab.owns(keep, "leaky")
    assert slab.reclaim_module("leaky") == (5030, 3)
    assert log_texts(slab)[-1] == "leaky: leaked 5030 bytes in 3 allocations"
    assert slab.usage("leaky") == (0, 0)
    assert slab.usage(None) == (7, 1) and slab.total == 7
    assert slab.reclaim_module("clean") == (0, 0)
    assert log_texts(slab)[-1] == "leaky: leaked 5030 bytes in 3 allocations"


def test_release_frees_only_the_owners_objects_in_allocation_order():
    """Release walks the owner's own index: its objects, oldest first (what
    the debugobjects hook sees, and the order they return to their slabs),
    an object kreallocated in place still among them, nobody else's touched."""
    slab = new_slab()
    freed: list[int] = []
    slab.on_free = lambda addr, _size: freed.append(addr)
    mine = [slab.alloc(size, "m") for size in (64, 5000, 10)]
    theirs = [slab.alloc(64, "other"), slab.alloc(32, None)]
    assert slab.realloc(mine[2], 16, "m") == mine[2]          # grown within its size class
    slab.free(mine[0], "m")
    again = slab.alloc(64, "m")
    assert slab.release("m") == (5000 + 16 + 64, 3)
    assert freed == [mine[0], mine[1], mine[2], again]
    assert slab.usage("m") == (0, 0)
    assert all(slab.ksize(a) for a in theirs) and slab.total == 64 + 32
    assert slab.alloc(8, "m") and slab.usage("m") == (8, 1)  # a new account after release


def test_limits():
    slab = new_slab(max_owner_bytes=100, max_total_bytes=150)
    assert slab.alloc(60, "a") and slab.alloc(40, "a")
    assert slab.alloc(1, "a") == 0
    assert "would exceed the per-owner limit of 100 bytes" in log_texts(slab)[-1]
    assert slab.alloc(50, "b")
    assert slab.alloc(1, "b") == 0
    assert "would exceed the heap limit of 150 bytes" in log_texts(slab)[-1]


def test_exhausting_a_small_heap():
    mem = AddressSpace(Uc(UC_ARCH_X86, UC_MODE_64))
    slab = Slab(mem, HEAP + 4096, 3 * 4096, log=LogBuffer())      # odd base and size
    pages = [slab.alloc(4096, "m") for _ in range(3)]
    assert all(pages) and slab.alloc(4096, "m") == 0
    assert "out of heap memory" in log_texts(slab)[-1]
    slab.free(pages[1], "m")
    assert slab.alloc(4096, "m") == pages[1]
    with pytest.raises(GuestFault):
        mem.read(HEAP, 1)                                        # outside the region: unmapped


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 20000), st.integers(0, 1000)),
                max_size=60))
def test_random_alloc_free_never_overlaps(ops):
    slab = new_slab()
    live: dict[int, int] = {}
    for is_alloc, size, pick in ops:
        if is_alloc or not live:
            addr = slab.alloc(size, "m")
            if size == 0:
                assert addr == ZERO_SIZE_PTR
                continue
            assert addr % 8 == 0 and slab.ksize(addr) >= size
            if size & (size - 1) == 0:
                assert addr % size == 0
            live[addr] = size
        else:
            addr = sorted(live)[pick % len(live)]
            assert slab.free(addr, "m")
            del live[addr]
        spans = sorted((a, a + slab.ksize(a)) for a in live)
        assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:]))
        assert slab.usage("m") == (sum(live.values()), len(live))


# -- the kernel functions ----------------------------------------------------------------

@pytest.fixture
def ctx():
    slab = new_slab()
    taints: list[str] = []
    kernel = SimpleNamespace(slab=slab, log=slab.log, add_taint=taints.append, taints=taints)
    return SimpleNamespace(mem=slab.mem, kernel=kernel, module=SimpleNamespace(name="hello"))


def test_kmalloc_kzalloc_kfree(ctx):
    a = api_slab.__kmalloc(ctx, 24, 0xCC0)                       # GFP_KERNEL
    assert ctx.kernel.slab.usage("hello") == (24, 1)
    ctx.mem.write(a, b"\x55" * 24)
    api_slab.kfree(ctx, a)
    z = api_slab.__kmalloc(ctx, 24, 0xCC0 | 0x100)               # __GFP_ZERO
    assert z == a and ctx.mem.read(z, 24) == bytes(24)
    api_slab.kfree(ctx, 0)
    assert ctx.kernel.taints == []
    api_slab.kfree(ctx, a)
    api_slab.kfree(ctx, a)
    assert ctx.kernel.taints == ["B"]


def test_kernel_allocations_belong_to_no_module(ctx):
    ctx.module = None
    api_slab.__kmalloc(ctx, 8, 0)
    assert ctx.kernel.slab.usage(None) == (8, 1)


def test_kstrdup_kmemdup_krealloc_ksize(ctx):
    src = api_slab.__kmalloc(ctx, 64, 0)
    ctx.mem.write(src, b"module text\0tail")
    dup = api_slab.kstrdup(ctx, src, 0)
    assert ctx.mem.read(dup, 12) == b"module text\0" and api_slab.ksize(ctx, dup) == 16
    assert api_slab.kstrdup(ctx, 0, 0) == 0
    mem_dup = api_slab.kmemdup(ctx, src, 16, 0)
    assert ctx.mem.read(mem_dup, 16) == b"module text\0tail"
    moved = api_slab.krealloc(ctx, mem_dup, 300, 0)
    assert ctx.mem.read(moved, 16) == b"module text\0tail" and api_slab.ksize(ctx, moved) == 512
    assert api_slab.krealloc(ctx, 0xFFFF888012345000, 8, 0) == 0
    assert ctx.kernel.taints == ["B"]
    assert ctx.kernel.slab.usage("hello") == (64 + 12 + 300, 3)
