"""x86-64 relocations with hand-made entries: values, overflow checks and Linux's messages."""

from __future__ import annotations

import errno
import random
import struct

import pytest

from kloaderd.arch.x86_64 import _apply_fast, _apply_one_by_one, apply_relocate_add, as_signed64
from kloaderd.elf.defs import (
    R_X86_64_32, R_X86_64_32S, R_X86_64_64, R_X86_64_NONE, R_X86_64_PC32, R_X86_64_PC64, R_X86_64_PLT32,
)
from kloaderd.errors import KernelError

SEC = 0xFFFFFFFFA0000000     # address of the patched section
M64 = (1 << 64) - 1


def rela(*entries: tuple[int, int, int, int]) -> bytes:
    """(r_offset, type, symbol, addend) -> Elf64_Rela bytes."""
    return b"".join(struct.pack("<QQq", o, (s << 32) | t, a) for o, t, s, a in entries)


def apply(entries, symbols, size=64, mem=None):
    mem = bytearray(size) if mem is None else mem
    n = apply_relocate_add(mem, 0, SEC, len(mem), rela(*entries), symbols, "relmod")
    return mem, n


def u(mem, off, size):
    return int.from_bytes(mem[off:off + size], "little")


def refused(entries, symbols, mem=None) -> KernelError:
    with pytest.raises(KernelError) as exc:
        apply(entries, symbols, mem=mem)
    assert exc.value.errno == errno.ENOEXEC
    return exc.value


def test_r_x86_64_64_writes_symbol_plus_addend():
    mem, n = apply([(8, R_X86_64_64, 1, 0x10)], [0, 0xFFFFFFFF81000000])
    assert n == 1
    assert u(mem, 8, 8) == 0xFFFFFFFF81000010
    assert mem[:8] == bytes(8) and mem[16:] == bytes(48)


def test_negative_addend_wraps_modulo_2_64():
    mem, _ = apply([(0, R_X86_64_64, 1, -0x20)], [0, 0x10])
    assert u(mem, 0, 8) == (0x10 - 0x20) & M64


def test_r_x86_64_32_must_zero_extend():
    mem, _ = apply([(4, R_X86_64_32, 1, 0)], [0, 0xFFFFFFFF])
    assert u(mem, 4, 4) == 0xFFFFFFFF
    err = refused([(4, R_X86_64_32, 1, 0)], [0, 0x1_0000_0000])
    assert err.message == ("overflow in relocation type 10 val 100000000\n"
                           "`relmod' likely not compiled with -mcmodel=kernel")


def test_r_x86_64_32s_must_sign_extend():
    mem, _ = apply([(0, R_X86_64_32S, 1, 0x10), (4, R_X86_64_32S, 2, 0)], [0, SEC, 0x7FFFFFFF])
    assert u(mem, 0, 4) == 0xA0000010
    assert u(mem, 4, 4) == 0x7FFFFFFF
    err = refused([(0, R_X86_64_32S, 1, 0)], [0, 0x80000000])
    assert "overflow in relocation type 11 val 80000000" in err.message
    assert "`relmod' likely not compiled with -mcmodel=kernel" in err.message
    refused([(0, R_X86_64_32S, 1, 0)], [0, 0xFFFFFFFF7FFFFFFF])


@pytest.mark.parametrize("rtype", [R_X86_64_PC32, R_X86_64_PLT32])
def test_pc32_and_plt32_are_relative_to_the_place(rtype):
    target = 0xFFFFFFFF81000100
    mem, _ = apply([(0x11, rtype, 1, -4)], [0, target])
    assert u(mem, 0x11, 4) == (target - 4 - (SEC + 0x11)) & 0xFFFFFFFF


def test_pc32_to_a_small_per_cpu_address_wraps_like_linux():
    # Linux does not range-check PC32: the difference is simply truncated.
    mem, _ = apply([(0, R_X86_64_PC32, 1, 0)], [0, 0x2_0000])
    assert u(mem, 0, 4) == (0x2_0000 - SEC) & 0xFFFFFFFF


def test_pc64():
    mem, _ = apply([(8, R_X86_64_PC64, 1, 0)], [0, 0x1000])
    assert u(mem, 8, 8) == (0x1000 - SEC - 8) & M64


def test_none_writes_nothing_even_over_nonzero_bytes():
    mem = bytearray(b"\xff" * 16)
    out, n = apply([(0, R_X86_64_NONE, 1, 0)], [0, 0x1234], mem=mem)
    assert out == b"\xff" * 16 and n == 1


def test_unknown_type_uses_linux_message():
    err = refused([(0, 99, 1, 0)], [0, 0])
    assert err.message == "relmod: Unknown rela relocation: 99"


def test_nonzero_target_is_refused():
    mem = bytearray(16)
    mem[4] = 1
    err = refused([(4, R_X86_64_32S, 1, 0)], [0, SEC], mem=mem)
    assert err.message == ("x86/modules: Invalid relocation target, existing value is nonzero for type 11, "
                           f"loc {SEC + 4:016x}, val {SEC:x}")


def test_same_place_twice_fails_on_the_second_write():
    err = refused([(0, R_X86_64_64, 1, 0), (0, R_X86_64_64, 1, 0)], [0, SEC])
    assert "existing value is nonzero for type 1" in err.message


def test_same_place_twice_is_fine_when_the_first_wrote_zero():
    # Linux compares the bytes, not whether the place was written before.
    mem, n = apply([(0, R_X86_64_64, 1, 0), (0, R_X86_64_64, 2, 0)], [0, 0, 7])
    assert n == 2 and u(mem, 0, 8) == 7


def test_the_first_failure_in_entry_order_is_reported():
    entries = [(0, R_X86_64_64, 1, 0), (8, R_X86_64_32, 1, 0), (16, 77, 1, 0)]
    assert "overflow in relocation type 10" in refused(entries, [0, SEC]).message
    entries = [(0, R_X86_64_64, 1, 0), (8, 77, 1, 0), (16, R_X86_64_32, 1, 0)]
    assert "Unknown rela relocation: 77" in refused(entries, [0, SEC]).message


def test_place_outside_the_section_is_refused():
    err = refused([(60, R_X86_64_64, 1, 0)], [0, 1])
    assert "outside its 64-byte section" in err.message
    refused([(1 << 63, R_X86_64_PC32, 1, 0)], [0, 1])


def test_writes_land_at_the_section_offset_within_a_larger_buffer():
    mem = bytearray(128)
    apply_relocate_add(mem, 64, SEC, 16, rela((0, R_X86_64_PC32, 1, 0)), [0, SEC + 0x100], "relmod")
    assert u(mem, 64, 4) == 0x100 and mem[:64] == bytes(64)


def reference(mem: bytearray, entries, symbols) -> None:
    """Entry by entry, straight from arch/x86/kernel/module.c (no error cases)."""
    for o, t, s, a in entries:
        val = (symbols[s] + a) & M64
        if t in (R_X86_64_PC32, R_X86_64_PLT32):
            struct.pack_into("<I", mem, o, (val - SEC - o) & 0xFFFFFFFF)
        elif t == R_X86_64_32S:
            struct.pack_into("<I", mem, o, val & 0xFFFFFFFF)
        elif t == R_X86_64_64:
            struct.pack_into("<Q", mem, o, val)


def test_bulk_application_matches_entry_by_entry():
    rng = random.Random(7)
    size = 4096
    symbols = [0] + [rng.choice([SEC + rng.randrange(1 << 20), 0xFFFFFFFF81000000 + rng.randrange(1 << 24)])
                     for _ in range(50)]
    entries = []
    for slot in rng.sample(range(size // 8), 400):
        t = rng.choice([R_X86_64_64, R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_32S, R_X86_64_NONE])
        entries.append((slot * 8, t, rng.randrange(1, 51), rng.randrange(-64, 64)))
    ours = bytearray(size)
    # The fast path itself takes these (it declines nothing here) ...
    assert _apply_fast(ours, 0, SEC, size, rela(*entries), as_signed64(symbols))
    theirs = bytearray(size)
    reference(theirs, entries, symbols)
    assert ours == theirs
    # ... and so does the public entry point, from unsigned values as from signed ones.
    assert apply(entries, symbols, size=size) == (theirs, 400)
    assert apply(entries, as_signed64(symbols), size=size) == (theirs, 400)


def outcome(fn, mem: bytearray, entries, symbols):
    try:
        fn(mem, 0, SEC, len(mem), rela(*entries), symbols, "relmod")
    except KernelError as e:
        return "refused", e.message
    return "applied", bytes(mem)


@pytest.mark.parametrize("seed", range(60))
def test_the_fast_path_never_differs_from_linux_loop(seed):
    """Random sections, half of them clean and half with something Linux
    refuses or truncates (overflows, far PC-relative targets, unknown types,
    overlapping, nonzero and out-of-bounds places): the public function, given
    signed values as `link` gives them or unsigned ones, ends exactly as the
    entry-by-entry loop does."""
    rng = random.Random(seed)
    hostile = seed % 2
    size = rng.choice([64, 256])
    near = [SEC + rng.randrange(1 << 16), 0xFFFFFFFF81000000 + rng.randrange(1 << 20)]
    far = [0, 0x2_0000, 0x1_0000_0000, 0x7FFF_FFFF, 0x8000_0000, M64, 1 << 63]
    symbols = [0] + [rng.choice(near * 4 + far * hostile) for _ in range(12)]
    types = [R_X86_64_64, R_X86_64_32S, R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_PC64, R_X86_64_NONE]
    types += [R_X86_64_32, 99] * hostile
    addends = [0, -4, 8] + [-(1 << 40), 1 << 62] * hostile
    slots = rng.sample(range(size // 8), rng.randrange(1, size // 8))
    entries = []
    for slot in slots:
        offset = slot * 8 + rng.choice([0, 4])
        if hostile and rng.random() < 0.1:
            offset = rng.choice([rng.randrange(size + 8), size - 2, entries[-1][0] if entries else 0])
        entries.append((offset, rng.choice(types), rng.randrange(1, 13), rng.choice(addends)))
    mem = bytearray(size)
    if hostile and rng.random() < 0.3:
        mem[rng.randrange(size)] = rng.randrange(1, 256)
    expected = outcome(_apply_one_by_one, bytearray(mem), entries, symbols)
    assert outcome(apply_relocate_add, bytearray(mem), entries, as_signed64(symbols)) == expected
    assert outcome(apply_relocate_add, bytearray(mem), entries, symbols) == expected
