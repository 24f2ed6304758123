"""kloaderd/lib: jhash against lookup3's published values, bit searching,
population counts and square roots against Python, ___ratelimit's window,
list_debug's verdicts; vmalloc's areas (mm/vmalloc.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st
from unicorn import UC_ARCH_X86, UC_MODE_64, Uc

from kloaderd.kernel.layouts import TABLES, Layouts, read_table
from kloaderd.kernel.memory import AddressSpace
from kloaderd.kernel.oops import KernelBug
from kloaderd.kernel.printk import LogBuffer
from kloaderd.lib import find_bit, hweight, int_sqrt, list_debug, ratelimit
from kloaderd.lib.jhash import jhash
from kloaderd.net.ipv4.tcp_cong import ca_key

BASE = 0xFFFF888000000000


@pytest.fixture(scope="module")
def space() -> AddressSpace:
    mem = AddressSpace(Uc(UC_ARCH_X86, UC_MODE_64))
    mem.map(BASE, 16 * 4096, "rw-")
    return mem


@pytest.fixture
def ctx(space):
    space.write(BASE, bytes(16 * 4096))
    clock = SimpleNamespace(now=1000)
    kernel = SimpleNamespace(log=LogBuffer(), symbolize=lambda a, o=True: None,
                             layouts=Layouts(read_table(TABLES / "kloader.json")["structs"], "kloader"))
    return SimpleNamespace(mem=space, kernel=kernel, module=None, clock=clock,
                           machine=SimpleNamespace(jiffies=lambda: clock.now))


def test_jhash_is_lookup3():
    """Bob Jenkins' lookup3.c driver prints these for hashlittle()."""
    assert jhash(b"", 0) == 0xDEADBEEF
    assert jhash(b"Four score and seven years ago", 0) == 0x17770551
    assert jhash(b"Four score and seven years ago", 1) == 0xCD628161
    assert ca_key(b"vegas\0") == jhash(b"vegas".ljust(16, b"\0"), 5)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, (1 << 200) - 1), st.integers(0, 200), st.integers(0, 210))
def test_find_bit_agrees_with_python(space, value, nbits, start):
    space.write(BASE, value.to_bytes(32, "little"))
    ctx = SimpleNamespace(mem=space)
    bits = [i for i in range(nbits) if value >> i & 1]
    zeros = [i for i in range(nbits) if not value >> i & 1]
    assert find_bit._find_next_bit(ctx, BASE, nbits, start) == next(
        (i for i in bits if i >= start), nbits)
    assert find_bit._find_next_zero_bit(ctx, BASE, nbits, start) == next(
        (i for i in zeros if i >= start), nbits)
    assert find_bit._find_first_bit(ctx, BASE, nbits) == (bits[0] if bits else nbits)
    assert find_bit._find_last_bit(ctx, BASE, nbits) == (bits[-1] if bits else nbits)
    assert find_bit.__bitmap_weight(ctx, BASE, nbits) == len(bits)


@pytest.mark.parametrize("table", ["kloader", "6.12.117+deb12-cloud-amd64"])
def test_ratelimit_burst_window_and_suppressed_count(ctx, table):
    # 6.12 moved `flags` before `begin`: the state is read at the kernel's offsets.
    ctx.kernel.layouts = Layouts(read_table(TABLES / f"{table}.json")["structs"], table)
    at = ctx.kernel.layouts[ratelimit.STATE]
    rs, func = BASE, BASE + 0x100
    ctx.mem.write(func, b"my_func\0")
    ctx.mem.write_u32(rs + at.interval, 5 * 250)
    ctx.mem.write_u32(rs + at.burst, 2)
    verdicts = [ratelimit.___ratelimit(ctx, rs, func) for _ in range(5)]
    assert verdicts == [1, 1, 0, 0, 0]
    assert ctx.mem.read_u64(rs + at.begin) == 1000
    ctx.clock.now += 5 * 250 + 1                      # the window has passed
    assert ratelimit.___ratelimit(ctx, rs, func) == 1
    assert [r.text for r in ctx.kernel.log.records()] == ["my_func: 3 callbacks suppressed"]
    ctx.mem.write_u32(rs + at.interval, 0)     # no interval: never limited
    assert all(ratelimit.___ratelimit(ctx, rs, func) for _ in range(10))


def test_list_debug_accepts_a_sound_list_and_bugs_on_corruption(ctx):
    mem, head, entry = ctx.mem, BASE, BASE + 0x40
    mem.write_u64(head, head)
    mem.write_u64(head + 8, head)
    assert list_debug.__list_add_valid(ctx, entry, head, head) == 1
    with pytest.raises(KernelBug, match="lib/list_debug.c:32"):
        list_debug.__list_add_valid(ctx, head, head, head)
    assert ctx.kernel.log.records()[-1].text.startswith("list_add double add: new=")
    mem.write_u64(entry, list_debug.LIST_POISON1)
    mem.write_u64(entry + 8, list_debug.LIST_POISON2)
    with pytest.raises(KernelBug, match="lib/list_debug.c:45"):
        list_debug.__list_del_entry_valid(ctx, entry)
    assert ctx.kernel.log.records()[-1].text == (
        f"list_del corruption, {entry:016x}->next is LIST_POISON1 (dead000000000100)")


@given(st.integers(0, (1 << 64) - 1))
def test_sw_hweight_counts_the_low_bits(value):
    assert hweight.__sw_hweight32(None, value) == bin(value & 0xFFFFFFFF).count("1")
    assert hweight.__sw_hweight64(None, value) == bin(value).count("1")


@given(st.integers(0, (1 << 64) - 1))
def test_int_sqrt_rounds_down(value):
    root = int_sqrt.int_sqrt(None, value)
    assert root * root <= value < (root + 1) * (root + 1)


def test_vmalloc_areas_are_known_to_vfree_kvfree_and_is_vmalloc_addr():
    from kloaderd.kernel.kernel import Kernel, KernelOptions
    from kloaderd.mm import vmalloc
    from kloaderd.kernel.api.slab import kvfree
    kernel = Kernel(KernelOptions())
    ctx = SimpleNamespace(kernel=kernel, mem=kernel.mem, module=None)
    before = kernel.slab.total
    area = vmalloc.vzalloc(ctx, 3 * 4096 + 1)               # whole pages: four
    assert area and kernel.mem.read(area, 4 * 4096) == bytes(4 * 4096)
    assert vmalloc.is_vmalloc_addr(ctx, area + 4 * 4096 - 1) == 1
    assert vmalloc.is_vmalloc_addr(ctx, area + 4 * 4096) == 0
    assert vmalloc.vmalloc(ctx, 0) == 0
    assert vmalloc.vmalloc_array(ctx, 1 << 62, 8) == 0       # the size overflows: NULL
    kvfree(ctx, area)                                        # vfree()'s, as is_vmalloc_addr says
    assert vmalloc.is_vmalloc_addr(ctx, area) == 0 and kernel.slab.total == before
    vmalloc.vfree(ctx, 0)
