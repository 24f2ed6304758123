"""The ELF reader: what it decodes from real objects, and each check it makes like Linux."""

from __future__ import annotations

import errno
import struct

import pytest

import elfobjs
from kloaderd.elf.defs import (
    R_X86_64_64, R_X86_64_PC32, SHF_ALLOC, SHF_EXECINSTR, SHF_RO_AFTER_INIT, SHF_WRITE, SHT_NOBITS,
    SHT_PROGBITS, STB_GLOBAL, STB_LOCAL,
)
from kloaderd.elf.image import MODULE_SIG_STRING, parse
from kloaderd.errors import KernelError

A, W, X = SHF_ALLOC, SHF_WRITE, SHF_EXECINSTR
SHDR_FIELDS = {"name": (0, "I"), "type": (4, "I"), "flags": (8, "Q"), "addr": (16, "Q"), "offset": (24, "Q"),
               "size": (32, "Q"), "link": (40, "I"), "info": (44, "I"), "addralign": (48, "Q"), "entsize": (56, "Q")}
EHDR_FIELDS = {"type": (16, "H"), "machine": (18, "H"), "shoff": (40, "Q"), "shentsize": (58, "H"),
               "shnum": (60, "H"), "shstrndx": (62, "H")}


@pytest.fixture(scope="module")
def hello(tmp_path_factory) -> bytes:
    return elfobjs.compile_c(tmp_path_factory.mktemp("hello"), "hello", elfobjs.HELLO_C)


def set_ehdr(data: bytes, field: str, value: int) -> bytes:
    out = bytearray(data)
    off, fmt = EHDR_FIELDS[field]
    struct.pack_into("<" + fmt, out, off, value)
    return bytes(out)


def set_shdr(data: bytes, section: str | int, field: str, value: int) -> bytes:
    """Edit one section header field; `section` by name (of a valid object) or index."""
    index = section if isinstance(section, int) else parse(data).section(section).index
    out = bytearray(data)
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    off, fmt = SHDR_FIELDS[field]
    struct.pack_into("<" + fmt, out, shoff + 64 * index + off, value)
    return bytes(out)


def refused(data: bytes, code: int = errno.ENOEXEC, **kw) -> str:
    with pytest.raises(KernelError) as exc:
        parse(data, **kw)
    assert exc.value.errno == code, exc.value.message
    return exc.value.message


def test_hello_decodes(hello):
    image = parse(hello)
    assert image.name == "hello"
    assert image.license == "GPL"
    assert image.vermagic == "6.6.0-kloader SMP preempt mod_unload modversions "
    assert sorted(image.modinfo_all("alias")) == ["hello-a", "hello-b"]   # gcc emits them in reverse
    assert image.modinfo_get("author") == "kloader" and image.modinfo_get("nope") is None
    assert [(e.name, e.gpl, e.entry_size) for e in image.exports] == [("hello_helper", False, 12)]
    assert image.sections[image.exports[0].section].name == "__ksymtab"
    assert [(p.name, p.perm, p.ops) for p in image.params] == [("verbose", 0o644, "param_ops_int")]
    assert image.init.name == "init_module" and image.sections[image.init.shndx].name == ".init.text"
    assert image.exit.name == "cleanup_module"
    assert sorted(image.undefined) == ["_printk", "param_ops_int"]
    assert image.weak_undefined == ("some_weak",)
    assert image.crcs is None and image.versions == ()
    assert image.section(".modinfo").flags & SHF_ALLOC == 0          # Linux clears it
    assert image.section(".eh_frame").flags & SHF_ALLOC                # ...but lays out .eh_frame
    assert image.section(".bss").data == b"" and image.section(".bss").size == 4
    assert image.sections[image.this_module_index].name == ".gnu.linkonce.this_module"


def test_image_is_immutable(hello):
    image = parse(hello)
    with pytest.raises(AttributeError):
        image.name = "other"
    assert isinstance(image.sections, tuple) and isinstance(image.symbols, tuple)


def test_ro_after_init_sections_are_marked(tmp_path):
    image = parse(elfobjs.compile_c(tmp_path, "many", elfobjs.MANY_C))
    assert image.section(".data..ro_after_init").flags & SHF_RO_AFTER_INIT
    assert image.section("__jump_table").flags & SHF_RO_AFTER_INIT
    assert [(e.name, e.gpl) for e in image.exports] == [("many_name", False), ("many_sum", True)]


def test_kbuild_like_module_is_accepted(tmp_path):
    image = parse(elfobjs.kbuild_like(tmp_path, "hello", elfobjs.HELLO_C))
    assert image.signed and image.name == "hello"
    assert not image.section(".debug_info").flags & SHF_ALLOC
    assert image.section("__mcount_loc").flags & SHF_ALLOC
    assert image.section(".note.gnu.property").flags & SHF_ALLOC     # laid out, as Linux does
    assert [e.name for e in image.exports] == ["hello_helper"]


def test_appended_signature_is_stripped(hello):
    sig = b"S" * 300
    ms = bytes([0, 0, 2, 0, 0, 0, 0, 0]) + struct.pack(">I", len(sig))
    image = parse(hello + sig + ms + MODULE_SIG_STRING)
    assert image.signed and image.data == hello and image.name == "hello"


def test_signature_longer_than_the_module_is_refused(hello):
    ms = bytes([0, 0, 2, 0, 0, 0, 0, 0]) + struct.pack(">I", len(hello) * 2)
    refused(hello + ms + MODULE_SIG_STRING, errno.EBADMSG)


def test_oversize_is_efbig_before_parsing():
    assert "more than the 1000 byte limit" in refused(b"\0" * 1001, errno.EFBIG, max_size=1000)


def test_gigantic_nobits_is_refused_before_allocation(hello):
    refused(set_shdr(hello, ".bss", "size", 1 << 40), errno.EFBIG)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[:40], "Invalid ELF header len 40"),
    (lambda d: b"\x7fELG" + d[4:], "Invalid ELF header magic"),
    (lambda d: d[:4] + b"\x01" + d[5:], "Invalid ELF header class/data"),
    (lambda d: set_ehdr(d, "type", 2), "Invalid ELF header type: 2 != 1"),
    (lambda d: set_ehdr(d, "machine", 3), "Invalid architecture in ELF header: 3"),
    (lambda d: set_ehdr(d, "shentsize", 40), "Invalid ELF section header size"),
    (lambda d: set_ehdr(d, "shoff", 1 << 62), "Invalid ELF section header overflow"),
    (lambda d: set_ehdr(d, "shnum", 0xFFFF), "Invalid ELF section header overflow"),
    (lambda d: set_ehdr(d, "shstrndx", 0), "Invalid ELF section name index: 0"),
    (lambda d: set_ehdr(d, "shnum", 0), ">= e_shnum (0)"),
    (lambda d: set_shdr(d, ".shstrtab", "size", 3), "section name table isn't null terminated"),
    (lambda d: set_shdr(d, ".text", "size", 1 << 63), "Invalid ELF section in module (section 1 type 1)"),
    (lambda d: set_shdr(d, ".text", "offset", (1 << 64) - 8), "Invalid ELF section in module (section 1"),
    (lambda d: set_shdr(d, ".text", "name", 1 << 20), "Invalid ELF section name in module (section 1"),
    (lambda d: set_shdr(d, ".symtab", "type", SHT_PROGBITS), "module has no symbols (stripped?)"),
    (lambda d: set_shdr(d, ".symtab", "link", 0), "Invalid ELF sh_link!=SHN_UNDEF(0)"),
    (lambda d: set_shdr(d, ".symtab", "link", 1), "is not a string table"),
    (lambda d: set_shdr(d, ".symtab", "entsize", 16), "symbol table entry size 16"),
    (lambda d: set_shdr(d, ".strtab", "size", 1), "name offset"),
    (lambda d: set_shdr(d, ".gnu.linkonce.this_module", "size", 16), "section size must be at least"),
    (lambda d: set_shdr(d, ".gnu.linkonce.this_module", "flags", SHF_WRITE),
     "must occupy memory during process execution"),
    (lambda d: set_shdr(d, ".rela.text", "info", 0), "applies to invalid section 0"),
    (lambda d: set_shdr(d, ".rela.text", "info", 999), "applies to invalid section 999"),
    (lambda d: set_shdr(d, ".rela.text", "link", 1), "is not the symbol table"),
    (lambda d: set_shdr(d, ".rela.text", "entsize", 16), "has entry size 16"),
    (lambda d: set_shdr(d, ".text", "flags", A | W | X), "has invalid WRITE|EXEC flags"),
    (lambda d: set_shdr(d, ".text", "addralign", 3), "has invalid alignment 3"),
    (lambda d: set_shdr(d, "__param", "size", 20), "__param size 20"),
])
def test_each_violation_is_enoexec_naming_it(hello, mutate, message):
    assert message in refused(mutate(hello))


def test_second_modinfo_is_refused(hello):
    # rename __ksymtab_strings (same length as ".modinfo" + padding is not needed: names are offsets)
    image = parse(hello)
    mi = image.section(".modinfo")
    out = set_shdr(hello, "__ksymtab_strings", "name", _shdr_name(hello, mi.index))
    assert "Only one .modinfo section must exist." in refused(out)


def test_no_struct_module_is_no_module_found(hello):
    image = parse(hello)
    out = set_shdr(hello, ".gnu.linkonce.this_module", "name", _shdr_name(hello, image.section(".data").index))
    assert refused(out) == "No module found in object"


def test_two_struct_modules_are_refused(hello):
    image = parse(hello)
    data_index = image.section(".data").index
    out = set_shdr(hello, data_index, "name", _shdr_name(hello, image.this_module_index))
    out = set_shdr(out, data_index, "size", 96)
    assert "Only one .gnu.linkonce.this_module section must exist." in refused(out)


def _shdr_name(data: bytes, index: int) -> int:
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    return struct.unpack_from("<I", data, shoff + 64 * index)[0]


def _sym(name, info, shndx, value=0, size=0):
    return (name, info, shndx, value, size)


def test_modinfo_must_end_with_nul():
    data = elfobjs.make_object([], [], {})
    image = parse(data)
    mi = image.section(".modinfo")
    assert "not NUL-terminated" in refused(set_shdr(data, ".modinfo", "size", mi.size - 1))


def test_name_falls_back_to_struct_module():
    data = elfobjs.make_object([], [], {}, modname="fallback")
    image = parse(data)
    # blank "name=" key in modinfo: "name=fallback" -> "name=fallback"
    out = bytearray(data)
    at = image.section(".modinfo").offset
    out[at + 2] = ord("e")
    assert parse(bytes(out)).name == "fallback"
    # and with the struct module name empty too, there is no name at all
    out[image.sections[image.this_module_index].offset + 24] = 0
    assert "no name" in refused(bytes(out))


def test_symbol_index_and_section_index_lies():
    secs = [(".text", SHT_PROGBITS, A | X, bytes(16), 16)]
    data = elfobjs.make_object(secs, [_sym("f", STB_GLOBAL << 4 | 2, 1)], {".text": [(0, R_X86_64_PC32, 5, -4)]})
    assert "refers to symbol 5, beyond the 2 symbols" in refused(data)
    data = elfobjs.make_object(secs, [_sym("f", STB_GLOBAL << 4 | 2, 77)], {})
    assert "symbol 1 has invalid section index 0x4d" in refused(data)


def test_versions_and_crcs_are_decoded():
    versions = b"".join(struct.pack("<Q56s", crc, name.encode()) for name, crc in
                        [("module_layout", 0x1234), ("_printk", 0xDEADBEEF)])
    strings = b"exp_a\0exp_b\0"
    secs = [
        (".text", SHT_PROGBITS, A | X, bytes(16), 16),        # 1
        ("__versions", SHT_PROGBITS, A, versions, 8),         # 2
        ("__ksymtab", SHT_PROGBITS, A, bytes(24), 4),         # 3
        ("__ksymtab_strings", SHT_PROGBITS, A, strings, 1),   # 4
        ("__kcrctab", SHT_PROGBITS, A, struct.pack("<II", 11, 22), 4),  # 5
    ]
    syms = [_sym("", STB_LOCAL << 4 | 3, 4), _sym("exp_a", STB_GLOBAL << 4 | 2, 1),
            _sym("exp_b", STB_GLOBAL << 4 | 2, 1, value=8)]
    relas = {"__ksymtab": [(0, R_X86_64_PC32, 2, 0), (4, R_X86_64_PC32, 1, 0),
                           (12, R_X86_64_PC32, 3, 0), (16, R_X86_64_PC32, 1, 6)]}
    image = parse(elfobjs.make_object(secs, syms, relas))
    assert image.versions == (("module_layout", 0x1234), ("_printk", 0xDEADBEEF))
    assert [e.name for e in image.exports] == ["exp_a", "exp_b"]
    assert image.crcs == (11, 22)
    assert not image.section("__versions").flags & SHF_ALLOC


def test_absolute_ksymtab_forms_are_decoded():
    strings = b"old_a\0old_b\0"
    for esize in (16, 24):
        secs = [(".text", SHT_PROGBITS, A | X, bytes(16), 16), ("__ksymtab_gpl", SHT_PROGBITS, A, bytes(2 * esize), 8),
                ("__ksymtab_strings", SHT_PROGBITS, A, strings, 1)]
        syms = [_sym("", STB_LOCAL << 4 | 3, 3), _sym("old_a", STB_GLOBAL << 4 | 2, 1),
                _sym("old_b", STB_GLOBAL << 4 | 2, 1, value=4)]
        relas = {"__ksymtab_gpl": [(0, R_X86_64_64, 2, 0), (8, R_X86_64_64, 1, 0),
                                   (esize, R_X86_64_64, 3, 0), (esize + 8, R_X86_64_64, 1, 6)]}
        image = parse(elfobjs.make_object(secs, syms, relas))
        assert [(e.name, e.gpl, e.entry_size, e.offset) for e in image.exports] == [
            ("old_a", True, esize, 0), ("old_b", True, esize, esize)]


def test_export_without_relocations_is_refused():
    secs = [("__ksymtab", SHT_PROGBITS, A, bytes(12), 4)]
    assert "lacks the relocations of a struct kernel_symbol" in refused(elfobjs.make_object(secs, [], {}))


def test_nobits_sections_have_no_data_but_keep_their_size():
    secs = [(".bss", SHT_NOBITS, A | W, 4096, 64)]
    image = parse(elfobjs.make_object(secs, [], {}))
    assert image.section(".bss").data == b"" and image.section(".bss").size == 4096
