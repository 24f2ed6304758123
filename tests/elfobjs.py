"""Objects for the ELF reader and linker tests: gcc-built modules and hand-made ELF.

The C sources spell out by hand what kloader's headers will generate
(`.modinfo`, `__ksymtab`, `__param`, `.gnu.linkonce.this_module`), so these
tests do not depend on the fixture build.  `make_object` writes a minimal
relocatable ELF from explicit sections, symbols and RELA entries, for cases a
compiler will not produce.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import strategies as st

from kloaderd.elf.defs import SHT_RELA, SHT_SYMTAB
from kloaderd.elf.image import parse

CFLAGS = ["-mcmodel=kernel", "-fno-pic", "-mno-red-zone", "-ffreestanding", "-O2", "-fno-common"]

PRELUDE = r"""
struct module { int state; void *list[2]; char name[56]; int (*init)(void); void (*exit)(void); char pad[48]; };
struct kernel_param { const char *name; void *mod; const void *ops; unsigned short perm;
                      signed char level; unsigned char flags; void *arg; };
extern int _printk(const char *fmt, ...);
#define MODINFO(tag, text) static const char __UNIQ(tag)[] __attribute__((section(".modinfo"), used, aligned(1))) = #tag "=" text
#define __UNIQ(t) __CAT(__mod_##t, __LINE__)
#define __CAT(a, b) __CAT2(a, b)
#define __CAT2(a, b) a##b
#define EXPORT(sym, sec) \
    static const char __kstrtab_##sym[] __attribute__((section("__ksymtab_strings"), used, aligned(1))) = #sym; \
    asm(".section \"" sec "\",\"a\"\n.balign 4\n.long " #sym " - .\n.long __kstrtab_" #sym " - .\n.long 0\n.previous\n")
#define PARAM(pname, ops, var) \
    extern const char ops[]; \
    static const char __param_str_##pname[] = #pname; \
    static const struct kernel_param __param_##pname __attribute__((used, section("__param"), aligned(8))) = \
        { __param_str_##pname, 0, ops, 0644, -1, 0, &var }
#define THIS_MODULE_DEF(modname) \
    struct module __this_module __attribute__((section(".gnu.linkonce.this_module"))) = \
        { .name = modname, .init = init_module, .exit = cleanup_module }
"""

HELLO_C = PRELUDE + r"""
extern int some_weak(void) __attribute__((weak));
int counter;
static int verbose = 3;
PARAM(verbose, param_ops_int, verbose);
int hello_helper(int a) { return a + verbose + counter; }
EXPORT(hello_helper, "__ksymtab");
__attribute__((section(".init.text"))) int init_module(void)
{ _printk("hello %d\n", counter); if (some_weak) some_weak(); return 0; }
__attribute__((section(".exit.text"))) void cleanup_module(void) { _printk("bye\n"); }
MODINFO(license, "GPL");
MODINFO(author, "kloader");
MODINFO(alias, "hello-a");
MODINFO(alias, "hello-b");
MODINFO(name, "hello");
MODINFO(vermagic, "6.6.0-kloader SMP preempt mod_unload modversions ");
THIS_MODULE_DEF("hello");
"""

# Many sections and every relocation type gcc and gas emit for kernel code:
# ro_after_init, __jump_table, .bss, string literals, tables of pointers
# (R_X86_64_64), absolute 32S addresses, PC32/PLT32 calls, an ABS symbol and
# a per-type asm block for R_X86_64_32, PC64 and NONE.
MANY_C = PRELUDE + r"""
extern unsigned long jiffies;
extern void *__kmalloc(unsigned long size, unsigned int flags);
extern void kfree(const void *p);
int table[64] __attribute__((section(".data..ro_after_init"))) = { 1, 2, 3 };
char scratch[8192];
static const char *const names[] = { "zero", "one", "two", "three" };
struct jump_entry { int code, target; long key; };
static struct jump_entry jt __attribute__((used, section("__jump_table"), aligned(8))) = { 0, 0, (long)&table };
asm(".globl many_abs\n.set many_abs, 0x1234\n");
asm(".section .rodata.kl,\"a\"\n.balign 8\n"
    "kl_abs32: .long many_abs\n"
    "kl_pc64: .quad hello_other - .\n"
    ".reloc ., R_X86_64_NONE, scratch\n.long 0\n"
    ".previous\n");
extern int hello_other(int);
const char *many_name(unsigned i) { return names[i & 3]; }
int many_sum(void) { int s = 0; for (int i = 0; i < 64; i++) s += table[i]; return s + (int)jiffies; }
EXPORT(many_sum, "__ksymtab_gpl");
EXPORT(many_name, "__ksymtab");
static int count = 1;
PARAM(count, param_ops_int, count);
__attribute__((section(".init.text"))) int init_module(void)
{
    void *p = __kmalloc(count * 16, 0);
    scratch[3] = 1;
    kfree(p);
    return hello_other(many_sum());
}
__attribute__((section(".exit.text"))) void cleanup_module(void) { _printk("%s\n", many_name(1)); }
__attribute__((section(".init.rodata"))) const int init_table[4] = { 4, 3, 2, 1 };
MODINFO(license, "GPL v2");
MODINFO(name, "many");
THIS_MODULE_DEF("many");
"""

COMMON_C = PRELUDE + r"""
int shared_counter;
__attribute__((section(".init.text"))) int init_module(void) { return shared_counter; }
void cleanup_module(void) {}
MODINFO(license, "GPL");
MODINFO(name, "commons");
THIS_MODULE_DEF("commons");
"""

SOURCES = {"hello": HELLO_C, "many": MANY_C}


def compile_c(tmp: Path, name: str, source: str, extra: tuple[str, ...] = ()) -> bytes:
    """gcc -c with kernel code-model flags; skips the test where gcc is absent."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    src = tmp / f"{name}.c"
    obj = tmp / f"{name}.o"
    src.write_text(source)
    subprocess.run(["gcc", "-c", *CFLAGS, *extra, str(src), "-o", str(obj)], check=True)
    return obj.read_bytes()


KBUILD_LIKE_FLAGS = ("-g", "-pg", "-mfentry", "-mrecord-mcount", "-fcf-protection=branch",
                     "-ffunction-sections", "-fdata-sections")


def kbuild_like(tmp: Path, name: str, source: str) -> bytes:
    """What a distribution's .ko looks like: debug info, __mcount_loc, a GNU
    property note, one section per function, merged by `ld -r`, and a module
    signature appended (with a dummy PKCS#7 blob: kloader does not verify)."""
    if shutil.which("ld") is None:
        pytest.skip("GNU ld not installed")
    obj = tmp / f"{name}.o"
    obj.write_bytes(compile_c(tmp, name, source, KBUILD_LIKE_FLAGS))
    ko = tmp / f"{name}.ko"
    subprocess.run(["ld", "-r", "-o", str(ko), str(obj)], check=True)
    sig = bytes(range(256)) * 2
    return ko.read_bytes() + sig + bytes([0, 0, 2, 0, 0, 0, 0, 0]) + struct.pack(">I", len(sig)) \
        + b"~Module signature appended~\n"


# --- mutations, for the fuzz tests ------------------------------------------------

EHDR_FIELDS = [(16, 2), (18, 2), (40, 8), (58, 2), (60, 2), (62, 2), (4, 1), (5, 1)]
SHDR_FIELDS = [(0, 4), (4, 4), (8, 8), (24, 8), (32, 8), (40, 4), (44, 4), (48, 8), (56, 8)]
SYM_FIELDS = [(0, 4), (4, 1), (6, 2), (8, 8), (16, 8)]
RELA_FIELDS = [(0, 8), (8, 4), (12, 4), (16, 8)]      # offset, type, symbol, addend


def interesting(size: int, total: int) -> st.SearchStrategy[int]:
    top = (1 << (8 * size)) - 1
    special = [0, 1, 2, 3, 4, 8, 11, 24, 0xFF, 0xFFFF, 0xFFF1, 0xFFF2, 0xFFFFFFFF, 1 << 63, (1 << 64) - 1,
               total, total - 1, total + 1]
    return st.one_of(st.sampled_from([v & top for v in special]), st.integers(0, top))


def table(data: bytes, sh_type: int) -> list[tuple[int, int, int]]:
    """(offset, size, entry size) of the tables of one type in a valid base object."""
    return [(s.offset, s.size, s.entsize) for s in parse(data).sections if s.type == sh_type and s.size]


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """`base` (a valid object) with one kind of damage: bit flips, truncation,
    header/section-header/symbol/relocation field lies, a splice, or random bytes."""
    data = bytearray(base)
    n = len(data)
    kind = draw(st.sampled_from(["flip", "truncate", "ehdr", "shdr", "symbol", "rela", "random", "splice"]))
    if kind == "flip":
        for pos in draw(st.lists(st.integers(0, n * 8 - 1), min_size=1, max_size=16)):
            data[pos // 8] ^= 1 << (pos % 8)
    elif kind == "truncate":
        data = data[:draw(st.integers(0, n - 1))]
    elif kind == "random":
        return draw(st.one_of(st.binary(max_size=512), st.binary(max_size=256).map(lambda b: bytes(data[:64]) + b)))
    elif kind == "splice":
        start = draw(st.integers(0, n - 1))
        data[start:start + 16] = draw(st.binary(min_size=1, max_size=16))
    else:
        edits = draw(st.integers(1, 3))
        for _ in range(edits):
            if kind == "ehdr":
                at, size = draw(st.sampled_from(EHDR_FIELDS))
            elif kind == "shdr":
                shoff, = struct.unpack_from("<Q", base, 40)
                shnum, = struct.unpack_from("<H", base, 60)
                field, size = draw(st.sampled_from(SHDR_FIELDS))
                at = shoff + 64 * draw(st.integers(0, shnum - 1)) + field
            else:
                tables = table(base, SHT_SYMTAB if kind == "symbol" else SHT_RELA)
                off, tsize, esize = draw(st.sampled_from(tables))
                field, size = draw(st.sampled_from(SYM_FIELDS if kind == "symbol" else RELA_FIELDS))
                at = off + esize * draw(st.integers(0, tsize // esize - 1)) + field
            if at + size <= len(data):
                data[at:at + size] = draw(interesting(size, n)).to_bytes(size, "little")
    return bytes(data)


# --- hand-made ELF ---------------------------------------------------------------

SHDR = struct.Struct("<IIQQQQIIQQ")
SYM = struct.Struct("<IBBHQQ")


def make_object(sections: list[tuple[str, int, int, bytes | int, int]],
                symbols: list[tuple[str, int, int, int, int]],
                relas: dict[str, list[tuple[int, int, int, int]]],
                modname: str = "handmade") -> bytes:
    """A relocatable x86-64 object.

    sections: (name, sh_type, sh_flags, data or NOBITS size, addralign); a
    `.gnu.linkonce.this_module` and `.modinfo` naming `modname` are added.
    symbols: (name, info, shndx (1-based into `sections`, or special), value, size);
    index 0 is the null symbol and is added.
    relas: section name -> [(r_offset, type, symbol index, addend)].
    """
    mod = bytearray(88)
    mod[24:24 + len(modname)] = modname.encode()
    sections = list(sections) + [
        (".gnu.linkonce.this_module", 1, 3, bytes(mod), 8),
        (".modinfo", 1, 2, f"name={modname}\0license=GPL\0".encode(), 1),
    ]
    names = [s[0] for s in sections]
    strtab = bytearray(b"\0")
    symtab = bytearray(SYM.size)
    for name, info, shndx, value, size in symbols:
        symtab += SYM.pack(len(strtab), info, 0, shndx, value, size)
        strtab += name.encode() + b"\0"
    nsec = len(sections)
    rel_names = list(relas)
    symtab_index = nsec + len(rel_names) + 1
    all_secs = [(n, t, f, d, a, 0, 0, 0) for n, t, f, d, a in sections]
    for rn in rel_names:
        body = b"".join(struct.pack("<QQq", o, (s << 32) | t, a) for o, t, s, a in relas[rn])
        all_secs.append((".rela" + rn, 4, 0x40, body, 8, symtab_index, names.index(rn) + 1, 24))
    first_global = 1 + sum(1 for s in symbols if s[1] >> 4 == 0)
    all_secs.append((".symtab", 2, 0, bytes(symtab), 8, symtab_index + 1, first_global, 24))
    all_secs.append((".strtab", 3, 0, bytes(strtab), 1, 0, 0, 0))
    shstr = bytearray(b"\0")
    name_offs = []
    for s in all_secs + [(".shstrtab",)]:
        name_offs.append(len(shstr))
        shstr += s[0].encode() + b"\0"
    all_secs.append((".shstrtab", 3, 0, bytes(shstr), 1, 0, 0, 0))

    out = bytearray(64)
    headers = [SHDR.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    for i, (name, stype, flags, data, align, link, info, entsize) in enumerate(all_secs):
        if stype == 8:
            off, size = len(out), data
        else:
            align_pad = (-len(out)) % max(align, 1)
            out += bytes(align_pad)
            off, size = len(out), len(data)
            out += data
        headers.append(SHDR.pack(name_offs[i], stype, flags, 0, off, size, link, info, align, entsize))
    out += bytes((-len(out)) % 8)
    shoff = len(out)
    out += b"".join(headers)
    struct.pack_into("<16sHHIQQQIHHHHHH", out, 0, b"\x7fELF\x02\x01\x01" + bytes(9), 1, 62, 1, 0, 0, shoff,
                     0, 64, 0, 0, 64, len(headers), len(headers) - 1)
    return bytes(out)
