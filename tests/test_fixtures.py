"""The committed fixture modules: complete, current, and what they claim to be.

Also runs `tables` natively (tests/native.py) and in kloader, each against
results computed here in Python, so the two runs agree line for line with
each other and with a trusted reference.
"""

from __future__ import annotations

import importlib.util
import errno
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from kloaderd.kernel import api
from native import native_lines

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1

_spec = importlib.util.spec_from_file_location("fixtures_rebuild", FIXTURES / "rebuild.py")
rebuild = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = rebuild
_spec.loader.exec_module(rebuild)

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("ld") is None,
                               reason="building fixtures needs gcc and ld")


def _elf_summary(path: Path) -> dict:
    """What must not change between a committed fixture and a rebuilt one."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        sections = tuple(s.name for s in elf.iter_sections())
        symtab = elf.get_section_by_name(".symtab")
        symbols = frozenset(
            (s.name, s["st_info"]["bind"], s["st_info"]["type"],
             s["st_shndx"] if isinstance(s["st_shndx"], str) else elf.get_section(s["st_shndx"]).name)
            for s in symtab.iter_symbols() if s.name)
        return {"sections": sections, "symbols": symbols}


def _open(name: str) -> ELFFile:
    return ELFFile(open(FIXTURES / f"{name}.ko", "rb"))


def _modinfo(elf: ELFFile) -> list[tuple[str, str]]:
    raw = elf.get_section_by_name(".modinfo").data()
    return [tuple(e.decode().split("=", 1)) for e in raw.split(b"\0") if e]


def _versions(elf: ELFFile) -> dict[str, int]:
    sec = elf.get_section_by_name("__versions")
    data = sec.data() if sec is not None else b""
    return {data[i + 8:i + 64].split(b"\0")[0].decode(): struct.unpack_from("<Q", data, i)[0]
            for i in range(0, len(data), 64)}


def _symbols(elf: ELFFile) -> dict[str, object]:
    symtab = elf.get_section_by_name(".symtab")
    assert isinstance(symtab, SymbolTableSection)
    return {s.name: s for s in symtab.iter_symbols() if s.name}


def test_every_source_has_a_committed_relocatable_x86_64_object():
    names = set(rebuild.module_sources())
    assert len(names) >= 20
    assert names == {p.stem for p in FIXTURES.glob("*.ko")}
    for name in names:
        elf = _open(name)
        try:
            assert (elf["e_type"], elf["e_machine"], elf.elfclass) == ("ET_REL", "EM_X86_64", 64)
            assert ("name", name) in _modinfo(elf)
            assert elf.get_section_by_name(".gnu.linkonce.this_module")["sh_size"] == 128
        finally:
            elf.stream.close()


def test_committed_versions_agree_with_the_kernel_api_registry():
    """A stale CRC would make a fixture fail to load: rebuild after registry changes."""
    api.load_all()
    stale = []
    for path in FIXTURES.glob("*.ko"):
        if path.stem == "badcrc":
            continue
        elf = _open(path.stem)
        try:
            for name, crc in _versions(elf).items():
                if name in api.FUNCTIONS or name in api.OBJECTS:
                    if crc != api.symbol_crc(name):
                        stale.append(f"{path.name}: {name}")
        finally:
            elf.stream.close()
    assert not stale, "run `python fixtures/rebuild.py`; stale CRCs: " + ", ".join(stale)


def test_fixtures_are_built_as_their_tests_need():
    elf = _open("badmagic")
    assert ("vermagic", "5.10.0 SMP mod_unload ") in _modinfo(elf)
    elf.stream.close()

    elf = _open("badcrc")
    versions = _versions(elf)
    elf.stream.close()
    api.load_all()
    assert "_printk" in versions
    assert versions["_printk"] != api.symbol_crc("_printk")

    elf = _open("common")
    assert _symbols(elf)["common_counter"]["st_shndx"] == "SHN_COMMON"
    elf.stream.close()

    elf = _open("user")
    assert ("depends", "exporter") in _modinfo(elf)
    elf.stream.close()

    elf = _open("getter")   # symbol_get only: no link-time dependency
    assert ("depends", "") in _modinfo(elf)
    assert "exp_gpl_mul" not in _symbols(elf)
    elf.stream.close()

    elf = _open("noexit")
    syms = _symbols(elf)
    assert "init_module" in syms and "cleanup_module" not in syms
    elf.stream.close()

    elf = _open("unknownsym")
    syms = _symbols(elf)
    assert syms["kloader_no_such_function"]["st_shndx"] == "SHN_UNDEF"
    assert syms["kloader_missing_too"]["st_shndx"] == "SHN_UNDEF"
    elf.stream.close()

    elf = _open("multi")   # fixtures/src/multi/*.c: one module from two objects
    files = {s.name for s in _symbols(elf).values() if s["st_info"]["type"] == "STT_FILE"}
    assert {"helper.c", "main.c"} <= files
    assert _symbols(elf)["multi_square"]["st_shndx"] != "SHN_UNDEF"
    elf.stream.close()

    elf = _open("user_proprietary")
    assert ("license", "Proprietary") in _modinfo(elf)
    assert _symbols(elf)["exp_gpl_mul"]["st_shndx"] == "SHN_UNDEF"
    elf.stream.close()


def test_exporter_exports_plain_and_gpl_symbols():
    elf = _open("exporter")
    try:
        exported = {}
        for sym in _symbols(elf).values():
            if sym.name.startswith("__ksymtab_") and isinstance(sym["st_shndx"], int):
                exported[sym.name[len("__ksymtab_"):]] = elf.get_section(sym["st_shndx"]).name
        assert exported == {
            "exp_add": "__ksymtab", "exp_value": "__ksymtab", "register_widget": "__ksymtab",
            "unregister_widget": "__ksymtab", "exp_call_widgets": "__ksymtab",
            "exp_gpl_mul": "__ksymtab_gpl",
        }
        assert elf.get_section_by_name("__ksymtab")["sh_size"] == 5 * 12
    finally:
        elf.stream.close()


def test_tables_has_a_jump_table_into_its_text():
    """Absolute .text addresses in .rodata: what the dense switch compiles to."""
    elf = _open("tables")
    try:
        symtab = elf.get_section_by_name(".symtab")
        targets = set()
        for sec in elf.iter_sections():
            if isinstance(sec, RelocationSection) and \
                    elf.get_section(sec["sh_info"]).name == ".rodata":
                for r in sec.iter_relocations():
                    sym = symtab.get_symbol(r["r_info_sym"])
                    if r["r_info_type"] == 1 and isinstance(sym["st_shndx"], int):
                        targets.add(elf.get_section(sym["st_shndx"]).name)
        assert any(t.startswith(".text") for t in targets)
    finally:
        elf.stream.close()


@pytest.mark.slow          # rebuilds every fixture with gcc and ld
@needs_gcc
def test_rebuild_script_reproduces_the_committed_set(tmp_path):
    proc = subprocess.run([sys.executable, str(FIXTURES / "rebuild.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rebuilt = {p.stem for p in tmp_path.glob("*.ko")}
    assert rebuilt == {p.stem for p in FIXTURES.glob("*.ko")}
    for name in sorted(rebuilt):
        assert _elf_summary(tmp_path / f"{name}.ko") == _elf_summary(FIXTURES / f"{name}.ko"), name


# --- tables, natively, against an independent computation ---

def _c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _c_mod(a: int, b: int) -> int:
    return a - b * _c_div(a, b)


def _s32(x: int) -> int:
    x &= MASK32
    return x - (1 << 32) if x >> 31 else x


def _step(acc: int, x: int) -> int:
    cases = {
        0: lambda a: a + 7,
        1: lambda a: a ^ 0x5A5A5A5A,
        2: lambda a: a * 3,
        3: lambda a: (a << 5) | (a >> 27),
        4: lambda a: a - 1000,
        5: lambda a: ~a,
        6: lambda a: a + (a >> 3),
        7: lambda a: a * 2654435761,
        8: lambda a: a ^ (a << 7),
        9: lambda a: a + 0x1234,
        10: lambda a: a // 3 + 11,
        11: lambda a: a ^ (a >> 11),
    }
    return cases.get(x, lambda a: a + x)(acc) & MASK32


def _ackermann(m: int, n: int) -> int:
    if m == 0:
        return n + 1
    if n == 0:
        return _ackermann(m - 1, 1)
    return _ackermann(m - 1, _ackermann(m, n - 1))


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def expected_tables_lines() -> list[str]:
    out = []
    ops = [("add", lambda a, b: a + b), ("sub", lambda a, b: a - b),
           ("mul", lambda a, b: a * b), ("div", _c_div), ("mod", _c_mod),
           ("xor", lambda a, b: a ^ b)]
    for a, b in ((91, 7), (-17, 5)):
        out += [f"{name}({a}, {b}) = {_s32(fn(a, b))}" for name, fn in ops]
    out.append(f"pipeline(9) = {-(2 * (9 + 1) ** 2)}")
    acc = 1
    for i in range(40):
        acc = _step(acc, (i * 7) % 15)
    out.append(f"switch accumulator = {acc}")
    words = "zero one two three four five six seven eight nine".split()
    for n in (2024, 4000000000):
        out.append(f"{n} spelled = " + " ".join(words[int(d)] for d in str(n)))
    out += [f"fib(20) = {_fib(20)}", f"ackermann(2, 3) = {_ackermann(2, 3)}",
            f"ackermann(3, 3) = {_ackermann(3, 3)}"]
    a, b, c, d, n = 0x0123456789ABCDEF, 0xFEDCBA98, -0x123456789AB, 1000, 9
    out += [f"u64 mul {a * b & MASK64:x}", f"u64 div {a // b}", f"u64 mod {a % b}",
            f"u64 shl {a << n & MASK64:x}", f"u64 shr {a >> n:x}",
            f"s64 div {_c_div(c, d)}", f"s64 mod {_c_mod(c, d)}", f"s64 sar {c >> n}",
            f"s64 as u64 shr {(c & MASK64) >> n:x}", f"s64 mul {c * d}"]
    out.append(f"sum of cubes = {sum(i ** 3 & MASK32 for i in range(256))}")
    out.append(f'crc32("123456789") = {zlib.crc32(b"123456789"):08x}')
    primes = [p for p in range(2, 100) if all(p % q for q in range(2, p))]
    out.append(f"sum of primes below 100 = {sum(primes)}")
    ma = [[1, 2, 3], [4, 5, 6], [7, 8, 10]]
    mb = [[-2, 0, 1], [3, 1, -1], [0, 4, 2]]
    for i in range(3):
        row = [sum(ma[i][k] * mb[k][j] for k in range(3)) for j in range(3)]
        out.append(f"product row {i} = {row[0]} {row[1]} {row[2]}")
    out.append("unloaded")
    return ["tables: " + line for line in out]


@needs_gcc
def test_tables_native_output():
    assert native_lines([FIXTURES / "src" / "tables.c"]) == expected_tables_lines()


def test_tables_prints_the_same_lines_in_kloader(kloader):
    """The emulated CPU, linker and printk agree with the host and with Python."""
    kloader.init_module((FIXTURES / "tables.ko").read_bytes())
    kloader.delete_module("tables")
    printed = [r["text"] for r in kloader.dmesg() if r["module"] == "tables"]
    assert printed == expected_tables_lines()


@needs_gcc
def test_params_natively_parse_into_every_parameter_type():
    """The moduleparam.h tables, walked by the native shim as the kernel would."""
    lines = native_lines([FIXTURES / "src" / "params.c"], {
        "pbyte": "255", "pshort": "-32768", "pushort": "0x10", "pint": "-7", "puint": "010",
        "plong": "-9223372036854775808", "pulong": "18446744073709551615",
        "pullong": "1", "phexint": "0xcafe", "pbool": "n", "pinvbool": "n",
        "pcharp": "hello", "parray": "9,8,7", "pstring": "short", "answer": "43"})
    values = dict(line.removeprefix("params: ").split("=", 1) for line in lines if "=" in line)
    assert values == {
        "pbyte": "255", "pshort": "-32768", "pushort": "16", "pint": "-7", "puint": "8",
        "plong": "-9223372036854775808", "pulong": "18446744073709551615", "pullong": "1",
        "phexint": "0xcafe", "pbool": "N", "pinvbool": "Y", "pcharp": "hello",
        "parray_count": "3", "parray[0]": "9", "parray[1]": "8", "parray[2]": "7",
        "pstring": "short", "answer": "43",
    }


def expected_inlines_lines() -> list[str]:
    order: list[int] = []
    for value in range(1, 6):          # even indexes list_add_tail, odd ones list_add
        if value % 2:
            order.append(value)
        else:
            order.insert(0, value)

    def digits(values: list[int]) -> str:
        return "".join(map(str, values)) or "0"

    out = [f"list order = {digits(order)}"]
    order.remove(3)
    out.append(f"after list_del = {digits(order)}")
    order = [v for v in order if v % 2 == 0]
    out += [f"odd ones removed = {digits(order)}, empty={int(not order)}",
            "container_of ok = 1"]
    counter = 40 + 1 + 5
    out.append(f"atomic = {counter}")
    counter -= 1
    out.append(f"dec_and_test = {int(counter == 0)}")
    old, counter = counter, (100 if counter == 45 else counter)
    out.append(f"cmpxchg old = {old}, now = {counter}")
    seven, minus_three = 7, -3
    out.append(f"min = {min(seven, minus_three)}, max = {max(seven, minus_three)}, "
               f"clamp = {min(max(seven, 0), 5)}, min_t = {min(seven, minus_three & MASK32)}")
    out.append(f"DIV_ROUND_UP(10, 4) = {-(-10 // 4)}, round_up(13, 8) = {-(-13 // 8) * 8}, "
               f"round_down(13, 8) = {13 // 8 * 8}, ALIGN(17, 16) = {-(-17 // 16) * 16}")
    value = 0x123456789ABCDEF
    out.append(f"abs = 3, upper_32_bits = {value >> 32:x}, lower_32_bits = {value & MASK32:x}")
    out.append(f"IS_ERR = 1, PTR_ERR = {-errno.ENOSPC}, IS_ERR(NULL) = 0, IS_ERR_OR_NULL(NULL) = 1")
    hz = 250
    jiffies = [-(-ms * hz // 1000) for ms in (1, 1000, 1001)]   # rounded up
    out.append(f"msecs_to_jiffies(1) = {jiffies[0]}, (1000) = {jiffies[1]}, "
               f"(1001) = {jiffies[2]}, jiffies_to_msecs(250) = {250 * 1000 // hz}")
    out += ["time_after across the wrap = 1, time_before = 0",
            "kmalloc_array overflow gives NULL = 1",
            f'kstrtoul("0x1f", 0) = {int("0x1f", 0)}',
            "fresh completion done = 0, spinlock word = 0",
            "unloaded"]
    return ["inlines: " + line for line in out]


@needs_gcc
def test_header_inlines_compute_what_python_does():
    assert native_lines([FIXTURES / "src" / "inlines.c"]) == expected_inlines_lines()


@needs_gcc
@pytest.mark.parametrize("name, params", [
    ("hello", {}),
    ("inlines", {}),
    ("multi", {}),
    ("initsec", {}),
    ("locks", {}),
    ("params", {"pshort": "-7", "pinvbool": "0", "parray": "3,2,1", "pstring": "abc",
                "pcharp": "xyz", "phexint": "0x10", "answer": "-1"}),
])
def test_a_fixture_prints_the_same_natively_and_in_kloader(kloader, name, params):
    native = native_lines(rebuild.module_sources()[name], params, modname=name)
    kloader.init_module((FIXTURES / f"{name}.ko").read_bytes(),
                        " ".join(f"{k}={v}" for k, v in params.items()))
    kloader.delete_module(name)
    assert [r["text"] for r in kloader.dmesg() if r["module"] == name] == native
