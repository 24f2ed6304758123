"""Layout (Linux's order, alignment, page-aligned regions) and symbol resolution."""

from __future__ import annotations

import errno
import struct

import pytest

import elfobjs
from kloaderd.config import MODULES_VADDR, PAGE_SIZE
from kloaderd.elf.defs import (
    R_X86_64_64, R_X86_64_PC32, SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHN_ABS, SHT_NOBITS, SHT_PROGBITS,
    STB_GLOBAL, STB_LOCAL, STB_WEAK,
)
from kloaderd.elf.image import parse
from kloaderd.errors import KernelError
from kloaderd.link import layout_sections, link

A, W, X = SHF_ALLOC, SHF_WRITE, SHF_EXECINSTR
CORE = MODULES_VADDR
INIT = MODULES_VADDR + 0x10_0000
KERNEL = {"_printk": 0xFFFFFFFF81000040, "param_ops_int": 0xFFFFFFFF82000100}


def glob(name, shndx, value=0, size=0, bind=STB_GLOBAL, stype=2):
    return (name, (bind << 4) | stype, shndx, value, size)


SECTIONS = [
    (".text", SHT_PROGBITS, A | X, b"\x90" * 10, 16),          # 1
    (".rodata", SHT_PROGBITS, A, b"r" * 3, 1),                  # 2
    (".data", SHT_PROGBITS, A | W, b"d" * 5, 4),                # 3
    (".data..ro_after_init", SHT_PROGBITS, A | W, b"a" * 8, 8),  # 4
    (".bss", SHT_NOBITS, A | W, 100, 64),                       # 5
    (".init.text", SHT_PROGBITS, A | X, b"\xc3" * 7, 16),       # 6
    (".exit.text", SHT_PROGBITS, A | X, b"\xc3" * 3, 16),       # 7
    (".init.data", SHT_PROGBITS, A | W, b"i" * 4, 4),           # 8
    ("__jump_table", SHT_PROGBITS, A | W, bytes(16), 8),        # 9
    (".rodata.cst", SHT_PROGBITS, A, b"c" * 20, 32),            # 10
    ("__versions", SHT_PROGBITS, A, bytes(64), 8),              # 11
    (".comment", SHT_PROGBITS, 0, b"GCC\0", 1),                 # 12
]


def layout_object(**kw):
    return parse(elfobjs.make_object(SECTIONS, [glob("f", 1)], {}, **kw))


def test_layout_follows_linux_passes_in_index_order():
    image = layout_object()
    layout = layout_sections(image)
    core, init = layout.core, layout.init
    # text pass: .text, .exit.text; page boundary
    assert core.offsets[1] == 0 and core.offsets[7] == 16
    assert core.text_size == PAGE_SIZE
    # read-only pass: .rodata at the page, .rodata.cst aligned to 32
    assert core.offsets[2] == PAGE_SIZE and core.offsets[10] == PAGE_SIZE + 32
    assert core.ro_size == 2 * PAGE_SIZE
    # ro-after-init pass: .data..ro_after_init then __jump_table (Linux marks both)
    assert core.offsets[4] == 2 * PAGE_SIZE and core.offsets[9] == 2 * PAGE_SIZE + 8
    assert core.ro_after_init_size == 3 * PAGE_SIZE
    # writable pass: .data, .bss (64-aligned), then the struct module
    assert core.offsets[3] == 3 * PAGE_SIZE and core.offsets[5] == 3 * PAGE_SIZE + 64
    assert core.size == 4 * PAGE_SIZE
    # .init* goes to init; ro_after_init does not apply there
    assert init.offsets == {6: 0, 8: PAGE_SIZE}
    assert (init.text_size, init.ro_size, init.ro_after_init_size, init.size) == (
        PAGE_SIZE, PAGE_SIZE, PAGE_SIZE, 2 * PAGE_SIZE)
    # not laid out: __versions (Linux clears SHF_ALLOC) and non-alloc sections
    assert 11 not in core.offsets and 12 not in core.offsets


def test_regions_and_permissions():
    layout = layout_sections(layout_object())
    assert [(r.kind, r.offset, r.size, r.perms, r.final_perms) for r in layout.core.regions] == [
        ("text", 0, PAGE_SIZE, "r-x", "r-x"),
        ("ro", PAGE_SIZE, PAGE_SIZE, "r--", "r--"),
        ("ro_after_init", 2 * PAGE_SIZE, PAGE_SIZE, "rw-", "r--"),
        ("data", 3 * PAGE_SIZE, PAGE_SIZE, "rw-", "rw-"),
    ]
    assert [r.kind for r in layout.init.regions] == ["text", "data"]


def test_linked_images_hold_section_bytes_and_zeroed_nobits():
    image = layout_object()
    layout = layout_sections(image)
    linked = link(image, layout, CORE, INIT, {})
    assert len(linked.core) == layout.core.size and len(linked.init) == layout.init.size
    assert linked.core[0:10] == b"\x90" * 10
    assert linked.core[PAGE_SIZE:PAGE_SIZE + 3] == b"rrr"
    bss = layout.core.offsets[5]
    assert linked.core[bss:bss + 100] == bytes(100)
    assert linked.init[0:7] == b"\xc3" * 7
    assert linked.section_addr[6] == INIT and linked.section_addr[1] == CORE
    assert linked.this_module == CORE + layout.core.offsets[image.this_module_index]


def test_section_alignment_is_respected():
    secs = [(".text", SHT_PROGBITS, A | X, b"\x90" * 3, 1), (".text.hot", SHT_PROGBITS, A | X, b"\x90", 64)]
    layout = layout_sections(parse(elfobjs.make_object(secs, [], {})))
    assert layout.core.offsets[1] == 0 and layout.core.offsets[2] == 64


def symbol_object():
    secs = [(".text", SHT_PROGBITS, A | X, bytes(16), 16), (".data", SHT_PROGBITS, A | W, bytes(40), 8)]
    syms = [
        glob("local_data", 2, value=8, bind=STB_LOCAL, stype=1),  # 1
        glob("func", 1, value=4),                                 # 2
        glob("absolute", SHN_ABS, value=0x1234, stype=0),         # 3
        glob("weak_missing", 0, bind=STB_WEAK),                   # 4
        glob("needed", 0),                                        # 5
        glob("weak_present", 0, bind=STB_WEAK),                   # 6
    ]
    relas = {".data": [(0, R_X86_64_64, 1, 0), (8, R_X86_64_64, 3, 0), (16, R_X86_64_64, 4, 0),
                       (24, R_X86_64_64, 5, 0), (32, R_X86_64_64, 6, 0)],
             ".text": [(0, R_X86_64_PC32, 2, -4)]}
    return parse(elfobjs.make_object(secs, syms, relas, modname="syms"))


def test_symbol_values_defined_abs_weak_and_external():
    image = symbol_object()
    assert image.undefined == ("needed",) and image.weak_undefined == ("weak_missing", "weak_present")
    layout = layout_sections(image)
    linked = link(image, layout, CORE, INIT, {"needed": 0xFFFFFFFF81000000, "weak_present": 0xFFFFFFFF81000080})
    data = layout.core.offsets[2]
    values = [struct.unpack_from("<Q", linked.core, data + 8 * i)[0] for i in range(5)]
    assert values == [CORE + data + 8, 0x1234, 0, 0xFFFFFFFF81000000, 0xFFFFFFFF81000080]
    assert linked.symbol_value(2) == CORE + 4
    assert struct.unpack_from("<i", linked.core, 0)[0] == 4 - 4 - 0
    assert linked.relocations == 6


def test_every_missing_symbol_is_listed_with_enoent():
    secs = [(".text", SHT_PROGBITS, A | X, bytes(16), 16)]
    syms = [glob("alpha", 0), glob("beta", 0), glob("gamma", 0, bind=STB_WEAK)]
    image = parse(elfobjs.make_object(secs, syms, {}, modname="needy"))
    with pytest.raises(KernelError) as exc:
        link(image, layout_sections(image), CORE, INIT, {"beta": 1})
    assert exc.value.errno == errno.ENOENT
    assert "needy: Unknown symbol alpha (err -2)" in exc.value.message
    assert "beta" not in exc.value.message and "gamma" not in exc.value.message
    with pytest.raises(KernelError) as exc:
        link(image, layout_sections(image), CORE, INIT, {})
    assert "alpha" in exc.value.message and "beta" in exc.value.message


def test_common_symbols_are_refused(tmp_path):
    image = parse(elfobjs.compile_c(tmp_path, "commons", elfobjs.COMMON_C, ("-fcommon",)))
    with pytest.raises(KernelError) as exc:
        link(image, layout_sections(image), CORE, INIT, {})
    assert exc.value.errno == errno.ENOEXEC
    assert "commons: please compile with -fno-common" in exc.value.message


def test_rel_relocations_are_unsupported_on_x86_64():
    data = bytearray(symbol_object().data)
    # turn the first RELA section into SHT_REL holding its first entry without the addend
    image = parse(bytes(data))
    r = image.rela[0]
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    at = shoff + 64 * r.index
    struct.pack_into("<I", data, at + 4, 9)
    struct.pack_into("<Q", data, at + 32, 16)
    struct.pack_into("<Q", data, at + 56, 16)
    image = parse(bytes(data))
    with pytest.raises(KernelError) as exc:
        link(image, layout_sections(image), CORE, INIT, {"needed": 0})
    assert exc.value.message == "module syms: REL relocation unsupported"


def test_gcc_module_exports_params_init_and_exit(tmp_path):
    image = parse(elfobjs.compile_c(tmp_path, "hello", elfobjs.HELLO_C))
    layout = layout_sections(image)
    linked = link(image, layout, CORE, INIT, KERNEL)
    helper = next(s for s in image.symbols if s.name == "hello_helper")
    assert linked.exports == (("hello_helper", linked.symbol_value(helper.index), False),)
    assert linked.symbol_value(helper.index) == linked.section_addr[helper.shndx] + helper.value
    assert linked.init_addr == INIT + layout.init.offsets[image.init.shndx] + image.init.value
    assert linked.exit_addr == linked.symbol_value(image.exit.index)
    # struct module's init/exit pointers were relocated (R_X86_64_64 at +0x50, +0x58)
    mod_off = layout.core.offsets[image.this_module_index]
    assert struct.unpack_from("<QQ", linked.core, mod_off + 0x50) == (linked.init_addr, linked.exit_addr)
    # __param entry: address, and its ops pointer relocated to the kernel object
    (param,) = image.params
    (addr,) = linked.param_addrs
    assert addr == linked.section_addr[param.section] + param.offset
    off = addr - CORE
    assert struct.unpack_from("<Q", linked.core, off + 16)[0] == KERNEL["param_ops_int"]
    name_ptr = struct.unpack_from("<Q", linked.core, off)[0] - CORE
    assert linked.core[name_ptr:name_ptr + 8] == b"verbose\0"


def test_gpl_exports_are_marked(tmp_path):
    image = parse(elfobjs.compile_c(tmp_path, "many", elfobjs.MANY_C))
    externals = {name: 0xFFFFFFFF81000000 + 64 * i for i, name in enumerate(image.undefined)}
    linked = link(image, layout_sections(image), CORE, INIT, externals)
    by_name = {e.name: e for e in linked.exports}
    assert by_name["many_sum"].gpl and not by_name["many_name"].gpl
    for e in linked.exports:
        sym = next(s for s in image.symbols if s.name == e.name)
        assert e.address == linked.symbol_value(sym.index)


def test_per_cpu_data_is_not_laid_out_and_resolves_against_percpu_base():
    secs = [(".text", SHT_PROGBITS, A | X, bytes(16), 16),
            (".data..percpu", SHT_PROGBITS, A | W, b"\x05\0\0\0" * 4, 8)]
    syms = [glob("pcpu_counter", 2, value=8, stype=1)]
    # mov %gs:pcpu_counter, %eax is an R_X86_64_32S to the per-CPU offset; the
    # per-CPU section's own relocations are not applied (it is copied per CPU).
    relas = {".text": [(4, 11, 1, 0)], ".data..percpu": [(0, R_X86_64_64, 1, 0)]}
    image = parse(elfobjs.make_object(secs, syms, relas, modname="pcpu"))
    assert not image.sections[image.percpu_index].flags & A
    layout = layout_sections(image)
    assert image.percpu_index not in layout.core.offsets
    linked = link(image, layout, CORE, INIT, {}, percpu_base=0x2_0000)
    assert linked.symbol_value(1) == 0x2_0008
    assert struct.unpack_from("<I", linked.core, 4)[0] == 0x2_0008
    assert linked.relocations == 1


def test_unreferenced_got_symbol_is_ignored_as_on_x86():
    secs = [(".text", SHT_PROGBITS, A | X, bytes(16), 16)]
    image = parse(elfobjs.make_object(secs, [glob("_GLOBAL_OFFSET_TABLE_", 0, stype=0)], {}))
    assert image.undefined == ()
    link(image, layout_sections(image), CORE, INIT, {})
