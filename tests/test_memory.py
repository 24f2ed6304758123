"""The emulated address space: page table, permissions, Python access, allocators."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
from unicorn.x86_const import UC_X86_REG_RAX as X86_REG_RAX
from unicorn.x86_const import UC_X86_REG_RIP as X86_REG_RIP
from unicorn.unicorn_const import UC_TLB_VIRTUAL

from kloaderd.config import KERNEL_HEAP_BASE, MODULES_VADDR, PAGE_SIZE, PHYS_END
from kloaderd.kernel.memory import DEAD_CODE_FLUSH, AddressSpace, GuestFault, RegionAllocator, parse_perms

HEAP = KERNEL_HEAP_BASE


@pytest.fixture
def mem() -> AddressSpace:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
    return AddressSpace(uc)


def test_mapped_memory_starts_zeroed_and_round_trips(mem):
    mem.map(HEAP, 3 * PAGE_SIZE, "rw-")
    assert mem.read(HEAP, 16) == bytes(16)
    data = bytes(range(256)) * 40            # 10 KiB: spans three pages
    mem.write(HEAP + 100, data)
    assert mem.read(HEAP + 100, len(data)) == data


def test_an_alias_shows_the_same_pages_and_they_outlive_either_mapping(mem):
    """As the direct map shows the kernel image's pages: a write through one
    address is read through the other, and the pages stay while one maps them."""
    alias = HEAP + 16 * PAGE_SIZE
    mem.map(HEAP, 2 * PAGE_SIZE, "rw-")
    mem.alias(alias, HEAP, 2 * PAGE_SIZE, "rw-")
    mem.write(HEAP + PAGE_SIZE - 2, b"abcd")
    assert mem.read(alias + PAGE_SIZE - 2, 4) == b"abcd"
    mem.write_u32(alias, 0x01020304)
    assert mem.read_u32(HEAP) == 0x01020304
    with pytest.raises(ValueError):
        mem.alias(alias, HEAP, PAGE_SIZE)                  # already mapped
    mem.unmap(HEAP, 2 * PAGE_SIZE)
    assert mem.read(alias + PAGE_SIZE - 2, 4) == b"abcd"
    mem.unmap(alias, 2 * PAGE_SIZE)
    assert not mem.is_mapped(alias)


def test_an_alias_has_permissions_of_its_own(mem):
    mem.map(HEAP, PAGE_SIZE, "rw-")
    mem.alias(HEAP + PAGE_SIZE, HEAP, PAGE_SIZE, "r--")
    assert (mem.perms(HEAP), mem.perms(HEAP + PAGE_SIZE)) == ("rw-", "r--")


def test_integers_are_little_endian_and_wrap(mem):
    mem.map(HEAP, PAGE_SIZE)
    mem.write_u64(HEAP, -1)
    assert mem.read_u64(HEAP) == 2**64 - 1
    assert mem.read_s64(HEAP) == -1
    mem.write_u32(HEAP, 0x1_2345_6789)       # taken modulo 2^32
    assert mem.read_u32(HEAP) == 0x2345_6789
    assert mem.read(HEAP, 4) == bytes.fromhex("89674523")
    mem.write_u16(HEAP + 8, 0x8000)
    assert (mem.read_u16(HEAP + 8), mem.read_s16(HEAP + 8)) == (0x8000, -0x8000)
    mem.write_u8(HEAP + 10, 0x1FF)
    assert (mem.read_u8(HEAP + 10), mem.read_s8(HEAP + 10)) == (0xFF, -1)
    mem.write_u32(HEAP + 12, 0xFFFFFFFE)
    assert mem.read_s32(HEAP + 12) == -2


def test_u64_across_a_page_boundary(mem):
    mem.map(HEAP, 2 * PAGE_SIZE)
    mem.write_u64(HEAP + PAGE_SIZE - 3, 0x1122334455667788)
    assert mem.read_u64(HEAP + PAGE_SIZE - 3) == 0x1122334455667788


def test_read_cstr_stops_at_nul_or_limit(mem):
    mem.map(HEAP, 2 * PAGE_SIZE)
    mem.write(HEAP + PAGE_SIZE - 2, b"hello\0world")
    assert mem.read_cstr(HEAP + PAGE_SIZE - 2) == b"hello"
    assert mem.read_cstr(HEAP + PAGE_SIZE - 2, limit=3) == b"hel"


def test_read_cstr_and_heap_writes_reach_what_guest_code_sees(mem):
    """read_cstr and write_data use the host memory behind a page: guest
    stores are in it, and what they write is what guest loads read."""
    mem.map(HEAP, PAGE_SIZE, "rw-")
    mem.map(MODULES_VADDR, PAGE_SIZE, "r-x")
    # movabs %rax, HEAP; movabs HEAP+8, %rax
    mem.write(MODULES_VADDR, bytes.fromhex("48a3") + HEAP.to_bytes(8, "little")
              + bytes.fromhex("48a1") + (HEAP + 8).to_bytes(8, "little"))
    mem.write_data(HEAP + 8, b"loaded\0\0")
    mem.uc.reg_write(X86_REG_RAX, int.from_bytes(b"stored\0\0", "little"))
    mem.uc.emu_start(MODULES_VADDR, MODULES_VADDR + 20)
    assert mem.read_cstr(HEAP) == b"stored"
    assert mem.uc.reg_read(X86_REG_RAX).to_bytes(8, "little") == b"loaded\0\0"


def test_read_cstr_of_a_device_page_asks_the_device(mem):
    """An ioremap'd page has no host memory of ours: its string is what the
    device's callbacks answer (here three 'A's, then zero)."""
    device = PHYS_END
    def read(_uc, offset: int, size: int, _data) -> int:
        return int.from_bytes(bytes(0x41 if offset + i < 3 else 0 for i in range(size)), "little")

    mem.uc.mmio_map(device, PAGE_SIZE, read, None, lambda *_args: None, None)
    mem.map_io(MODULES_VADDR, PAGE_SIZE, device)
    assert mem.read_cstr(MODULES_VADDR) == b"AAA"


def test_read_cstr_running_off_the_mapping_faults(mem):
    mem.map(HEAP, PAGE_SIZE)
    mem.write(HEAP + PAGE_SIZE - 4, b"abcd")
    with pytest.raises(GuestFault) as info:
        mem.read_cstr(HEAP + PAGE_SIZE - 4)
    assert info.value.address == HEAP + PAGE_SIZE
    assert info.value.access == "read"


def test_unmapped_access_raises_guest_fault(mem):
    with pytest.raises(GuestFault) as info:
        mem.read_u32(0x10)
    assert (info.value.address, info.value.access) == (0x10, "read")
    with pytest.raises(GuestFault) as info:
        mem.write(HEAP, b"x")
    assert info.value.access == "write"


def test_a_faulting_write_changes_nothing(mem):
    mem.map(HEAP, PAGE_SIZE)
    with pytest.raises(GuestFault) as info:
        mem.write(HEAP + PAGE_SIZE - 2, b"abcd")
    assert info.value.address == HEAP + PAGE_SIZE
    assert mem.read(HEAP + PAGE_SIZE - 2, 2) == b"\0\0"


def test_python_writes_ignore_page_permissions(mem):
    # The kernel patches read-only module text (text_poke); only the CPU is refused.
    mem.map(MODULES_VADDR, PAGE_SIZE, "r-x")
    mem.write(MODULES_VADDR, b"\xc3")
    assert mem.read(MODULES_VADDR, 1) == b"\xc3"


def test_protect_changes_reported_permissions(mem):
    mem.map(MODULES_VADDR, 2 * PAGE_SIZE, "rw-")
    mem.protect(MODULES_VADDR, PAGE_SIZE, "r-x")
    assert mem.perms(MODULES_VADDR) == "r-x"
    assert mem.perms(MODULES_VADDR + PAGE_SIZE) == "rw-"
    assert mem.perms(MODULES_VADDR + 2 * PAGE_SIZE) is None
    with pytest.raises(ValueError):
        mem.protect(MODULES_VADDR, 3 * PAGE_SIZE, "r--")


def test_unmap_frees_the_pages_and_their_physical_memory(mem):
    before = list(mem.uc.mem_regions())
    mem.map(HEAP, 4 * PAGE_SIZE)
    mem.write(HEAP, b"data")
    mem.unmap(HEAP, 2 * PAGE_SIZE)
    assert not mem.is_mapped(HEAP)
    assert mem.is_mapped(HEAP + 2 * PAGE_SIZE)
    with pytest.raises(GuestFault):
        mem.read(HEAP, 4)
    mem.unmap(HEAP + 2 * PAGE_SIZE, 2 * PAGE_SIZE)
    assert list(mem.uc.mem_regions()) == before


def test_remapping_gives_fresh_zeroed_pages(mem):
    mem.map(HEAP, PAGE_SIZE)
    mem.write(HEAP, b"secret")
    mem.unmap(HEAP, PAGE_SIZE)
    mem.map(HEAP, PAGE_SIZE)
    assert mem.read(HEAP, 6) == bytes(6)


def _run_code(mem: AddressSpace, addr: int) -> int:
    """Run the code at addr up to its `ret`'s address (it is not executed)."""
    uc = mem.uc
    uc.reg_write(X86_REG_RIP, addr)
    uc.emu_start(addr, addr + 5)               # `mov $imm32, %eax` is 5 bytes
    return uc.reg_read(X86_REG_RAX)


@pytest.mark.parametrize("same_address", [True, False], ids=["same-address", "other-address"])
def test_code_loaded_where_code_was_freed_runs_as_written(mem, same_address):
    """Unicorn caches translated code by physical address: a module loaded
    into pages another module's code had (after it was freed) must run its
    own bytes, never the translation of the old ones."""
    text = MODULES_VADDR
    mem.map(text, PAGE_SIZE, "rw-")
    mem.write(text, b"\xb8\x01\x00\x00\x00\xc3")     # mov $1, %eax; ret
    mem.protect(text, PAGE_SIZE, "r-x")
    assert _run_code(mem, text) == 1
    mem.unmap(text, PAGE_SIZE)
    again = text if same_address else text + 16 * PAGE_SIZE
    mem.map(again, PAGE_SIZE, "rw-")                   # the same physical page again
    assert mem.read(again, 6) == bytes(6)
    mem.write(again, b"\xb8\x02\x00\x00\x00\xc3")    # mov $2, %eax; ret
    mem.protect(again, PAGE_SIZE, "r-x")
    assert _run_code(mem, again) == 2


def test_translated_code_is_flushed_once_a_budget_of_freed_code_is_reached(mem, monkeypatch):
    """A dropped translation keeps its room in Unicorn's translation cache
    until the whole cache is flushed: a module loaded and removed over and
    over (each time at a fresh address) grew the daemon by its translated
    code every cycle.  Unmapping DEAD_CODE_FLUSH bytes of code flushes once;
    unmapping data never does."""
    flushes = []
    flush = mem.uc.ctl_flush_tb
    monkeypatch.setattr(mem.uc, "ctl_flush_tb", lambda: (flushes.append(1), flush())[1])
    data = KERNEL_HEAP_BASE
    for _ in range(2 * DEAD_CODE_FLUSH // PAGE_SIZE):
        mem.map(data, PAGE_SIZE, "rw-")
        mem.unmap(data, PAGE_SIZE)
    assert flushes == []
    pages = DEAD_CODE_FLUSH // PAGE_SIZE
    for i in range(pages):
        text = MODULES_VADDR + 2 * i * PAGE_SIZE          # each "module" at a fresh address
        mem.map(text, PAGE_SIZE, "rw-")
        mem.write(text, b"\xb8" + i.to_bytes(4, "little") + b"\xc3")   # mov $i, %eax; ret
        mem.protect(text, PAGE_SIZE, "r-x")
        assert _run_code(mem, text) == i
        mem.unmap(text, PAGE_SIZE)
        assert len(flushes) == (i == pages - 1)


@pytest.mark.parametrize("change", ["protect", "unmap"])
def test_a_page_the_cpu_has_used_is_looked_up_again_after_a_change(mem, change):
    """The TLB keeps what the CPU looked up: taking away a page (or its
    exec permission) after code ran from it must fault, not run the old way."""
    from unicorn import UcError
    text = MODULES_VADDR
    mem.map(text, PAGE_SIZE, "rw-")
    mem.write(text, b"\xb8\x01\x00\x00\x00\xc3")     # mov $1, %eax; ret
    mem.protect(text, PAGE_SIZE, "r-x")
    assert _run_code(mem, text) == 1
    if change == "protect":
        mem.protect(text, PAGE_SIZE, "rw-")
    else:
        mem.unmap(text, PAGE_SIZE)
    with pytest.raises(UcError):
        _run_code(mem, text)
    assert mem.last_fault is not None and mem.last_fault.access == "exec"
    assert mem.last_fault.present == (change == "protect")


def test_pages_the_cpu_never_used_change_without_a_tlb_flush(mem, monkeypatch):
    """A module's fresh images are mapped, written and protected before any
    code runs in them: none of that may flush the TLB (which would make the
    next guest run look up every page it uses again), while a change to a
    page the CPU did use still does."""
    flushes = []
    real_ctl = mem.uc.ctl
    monkeypatch.setattr(mem.uc, "ctl", lambda *args: flushes.append(args) or real_ctl(*args))
    text = MODULES_VADDR
    mem.map(text, 2 * PAGE_SIZE, "rw-")
    mem.write(text, b"\xb8\x01\x00\x00\x00\xc3")
    mem.protect(text, PAGE_SIZE, "r-x")
    mem.protect(text + PAGE_SIZE, PAGE_SIZE, "r--")
    assert flushes == []
    assert _run_code(mem, text) == 1
    mem.protect(text + PAGE_SIZE, PAGE_SIZE, "rw-")       # never used by the CPU
    assert flushes == []
    mem.unmap(text, PAGE_SIZE)                            # used: the TLB may hold it
    assert len(flushes) == 1


def test_mapping_twice_or_misaligned_is_refused(mem):
    mem.map(HEAP, PAGE_SIZE)
    with pytest.raises(ValueError):
        mem.map(HEAP, PAGE_SIZE)
    with pytest.raises(ValueError):
        mem.map(HEAP + PAGE_SIZE + 8, PAGE_SIZE)
    with pytest.raises(ValueError):
        mem.map(HEAP + PAGE_SIZE, PAGE_SIZE, "rwz")


def test_parse_perms():
    assert parse_perms("---") == 0
    assert parse_perms("rwx") == 7
    with pytest.raises(ValueError):
        parse_perms("xwr")


def test_region_allocator_is_page_granular_and_reuses_freed_ranges():
    alloc = RegionAllocator(MODULES_VADDR, MODULES_VADDR + 16 * PAGE_SIZE)
    a = alloc.alloc(1)
    b = alloc.alloc(PAGE_SIZE + 1)
    assert a == MODULES_VADDR
    assert b == MODULES_VADDR + PAGE_SIZE
    assert alloc.used == 3 * PAGE_SIZE
    alloc.free(a)
    assert alloc.alloc(PAGE_SIZE) == a
    with pytest.raises(ValueError):
        alloc.free(a + 1)
    with pytest.raises(MemoryError):
        alloc.alloc(14 * PAGE_SIZE)


def test_region_allocator_coalesces_neighbours():
    alloc = RegionAllocator(0, 4 * PAGE_SIZE)
    blocks = [alloc.alloc(PAGE_SIZE) for _ in range(4)]
    for addr in (blocks[0], blocks[2], blocks[1], blocks[3]):
        alloc.free(addr)
    assert alloc.alloc(4 * PAGE_SIZE) == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 5 * PAGE_SIZE)), max_size=40))
def test_region_allocator_never_hands_out_overlapping_ranges(ops):
    alloc = RegionAllocator(0, 64 * PAGE_SIZE)
    live: dict[int, int] = {}
    for is_free, size in ops:
        if is_free and live:
            addr = sorted(live)[size % len(live)]
            alloc.free(addr)
            del live[addr]
            continue
        try:
            addr = alloc.alloc(size)
        except MemoryError:
            # only when no gap between the live ranges is big enough
            need = -(-size // PAGE_SIZE) * PAGE_SIZE
            edges = [0] + [e for a in sorted(live) for e in (a, a + live[a])] + [64 * PAGE_SIZE]
            assert all(edges[i + 1] - edges[i] < need for i in range(0, len(edges), 2))
            continue
        assert addr % PAGE_SIZE == 0
        end = addr + size
        assert end <= 64 * PAGE_SIZE
        for other, other_size in live.items():
            assert end <= other or other + other_size <= addr
        live[addr] = -(-size // PAGE_SIZE) * PAGE_SIZE
    assert alloc.used == sum(live.values())


@pytest.mark.trio
async def test_a_module_image_is_written_in_pieces_with_other_tasks_let_in(monkeypatch, fixture_ko):
    """Issue 13/14: a 56 MiB module was written into emulated memory in one
    event-loop step, holding every other client up.  It goes in
    MAP_WRITE_PIECE pieces, other tasks running between them (here a piece
    is one page, so a small module shows it), and arrives whole."""
    import trio

    from kloaderd.kernel import internal
    from kloaderd.kernel.kernel import Kernel
    monkeypatch.setattr(internal, "MAP_WRITE_PIECE", PAGE_SIZE)
    kernel = Kernel()
    events: list[str] = []
    write = kernel.mem.write

    def recording(addr, data):
        if MODULES_VADDR <= addr:
            events.append("piece")
        write(addr, data)

    monkeypatch.setattr(kernel.mem, "write", recording)

    async def other() -> None:
        while True:
            events.append("other")
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await kernel.init_module(fixture_ko("hello").read_bytes())
        nursery.cancel_scope.cancel()
    pieces = [i for i, e in enumerate(events) if e == "piece"]
    assert len(pieces) >= 2
    assert "other" in events[pieces[0]:pieces[-1]]
    assert kernel.find_module("hello").state.value == "live"
    assert any(r.text.endswith("Hello, world") for r in kernel.log.records())
