"""printk: vsnprintf against glibc where Linux agrees with it, Linux's own
documented behaviour where it does not, the va_list reader, the log ring
buffer and the _printk/vprintk/WARN entry points."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest
import trio
import trio.testing
from unicorn import UC_ARCH_X86, UC_MODE_64, Uc

from kloaderd.kernel.api import printk as api_printk
from kloaderd.kernel.memory import AddressSpace
from kloaderd.kernel.printk import (KERN_ERR, KERN_INFO, KERN_WARNING, LogBuffer, VaList,
                                    vsnprintf, vsnprintf_bounded)

DATA = 0xFFFF888000000000       # a mapped data page for strings and va_lists
STRINGS = ["", "a", "hello", "hello, world", "kloader module loader"]


@pytest.fixture(scope="module")
def mem() -> AddressSpace:
    space = AddressSpace(Uc(UC_ARCH_X86, UC_MODE_64))
    space.map(DATA, 4 * 4096, "rw-")
    offset = 0
    for s in STRINGS:
        space.write(DATA + offset, s.encode() + b"\0")
        offset += 64
    return space


def string_ptr(s: str) -> int:
    return DATA + 64 * STRINGS.index(s)


def fmt(mem, f: str, *args: int, symbolize=None) -> str:
    return vsnprintf(f.encode(), iter(args), mem=mem, symbolize=symbolize).decode("latin-1")


# -- the glibc oracle -----------------------------------------------------------------

INTS = [0, 1, -1, 7, 42, -42, 127, 128, 255, 256, -129, 32767, -32768, 65535, 65536,
        2**31 - 1, -2**31, 2**32 - 1, 2**32, 2**63 - 1, -2**63, 0x123456789ABCDEF0]
FLAGS = ["", "-", "+", " ", "#", "0", "-0", "+0", " 0", "#0", "-#", "+ "]
WIDTHS = ["", "1", "5", "12", "*"]
PRECISIONS = ["", ".0", ".1", ".3", ".10", ".*"]
QUALS = {"": ("int", "unsigned int", 32), "hh": ("int", "unsigned int", 32),
         "h": ("int", "unsigned int", 32), "l": ("long", "unsigned long", 64),
         "ll": ("long long", "unsigned long long", 64), "z": ("ssize_t", "size_t", 64),
         "t": ("ptrdiff_t", "ptrdiff_t", 64)}


def _truncated(value: int, qual: str, signed: bool) -> int:
    bits = {"hh": 8, "h": 16, "": 32}.get(qual, 64)
    value &= (1 << bits) - 1
    return value - (1 << bits) if signed and value >> (bits - 1) else value


def _linux_differs(flags: str, precision: str, conv: str, value: int | None) -> bool:
    """The cases where lib/vsprintf.c and C's printf part ways (tested below)."""
    if conv in "cs":
        return bool(set(flags) & set("#+ 0")) or (conv == "c" and bool(precision))
    if "#" in flags and conv in "diu":
        return True                      # undefined in C
    if precision and "0" in flags:
        return True                      # Linux keeps zero padding with a precision
    if precision == ".0" and value == 0:
        return True                      # Linux prints "0" for %.0d of 0
    if "#" in flags and conv in "xX" and value == 0:
        return True                      # Linux: "0x0"
    return "#" in flags and conv == "o" and bool(precision)


def oracle_cases() -> list[tuple[str, list[tuple[str, int | str]]]]:
    rng = random.Random(20240601)
    cases = []
    while len(cases) < 1500:
        conv = rng.choice("diuxXocs")
        flags, width, precision = rng.choice(FLAGS), rng.choice(WIDTHS), rng.choice(PRECISIONS)
        qual = rng.choice(list(QUALS)) if conv not in "cs" else ""
        args: list[tuple[str, int | str]] = []
        if width == "*":
            args.append(("int", rng.choice([0, 3, 9, -7])))
        effective_precision = precision
        if precision == ".*":
            star = rng.choice([0, 2, 5])
            args.append(("int", star))
            effective_precision = f".{star}"
        if conv == "s":
            value: int | None = None
            args.append(("str", rng.choice(STRINGS)))
        elif conv == "c":
            value = rng.randrange(32, 127)
            args.append(("int", value))
        else:
            signed_t, unsigned_t, _ = QUALS[qual]
            signed = conv in "di"
            raw = rng.choice(INTS)
            value = _truncated(raw, qual, signed)
            args.append((signed_t if signed else unsigned_t, raw))
        if _linux_differs(flags, effective_precision, conv, value):
            continue
        cases.append((f"<%{flags}{width}{precision}{qual}{conv}>", args))
    return cases


def _c_literal(ctype: str, value: int | str) -> str:
    if ctype == "str":
        return '"' + str(value).replace('"', '\\"') + '"'
    return f"({ctype})0x{int(value) & (2**64 - 1):x}ULL"


@pytest.fixture(scope="module")
def glibc(tmp_path_factory) -> dict[int, bytes]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed for the snprintf oracle")
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <sys/types.h>",
             "int main(void) {", "char buf[4096]; int n;"]
    for fmtstr, args in oracle_cases():
        call_args = ", ".join(_c_literal(t, v) for t, v in args)
        lines.append(f'n = snprintf(buf, sizeof buf, "{fmtstr}", {call_args}); '
                     'printf("%d:", n); fwrite(buf, 1, n, stdout);')
    lines.append("return 0; }")
    work = tmp_path_factory.mktemp("oracle")
    (work / "oracle.c").write_text("\n".join(lines))
    subprocess.run(["gcc", "-w", "-O0", "-o", str(work / "oracle"), str(work / "oracle.c")],
                   check=True)
    out = subprocess.run([str(work / "oracle")], check=True, capture_output=True).stdout
    results, pos = [], 0
    while pos < len(out):
        colon = out.index(b":", pos)
        n = int(out[pos:colon])
        results.append(out[colon + 1:colon + 1 + n])
        pos = colon + 1 + n
    return dict(enumerate(results))


def test_vsnprintf_matches_glibc_where_linux_agrees(mem, glibc):
    mismatches = []
    for i, (fmtstr, args) in enumerate(oracle_cases()):
        values = [string_ptr(v) if t == "str" else int(v) & (2**64 - 1) for t, v in args]
        ours = vsnprintf(fmtstr.encode(), iter(values), mem=mem)
        if ours != glibc[i]:
            mismatches.append((fmtstr, args, ours, glibc[i]))
    assert len(glibc) == 1500
    assert not mismatches, mismatches[:10]


# -- where Linux is not C ----------------------------------------------------------------

@pytest.mark.parametrize("f, args, expected", [
    ("%.0d", [0], "0"),                    # glibc: ""
    ("%.d", [0], "0"),                     # '.' without digits is no precision
    ("%.s", ["hello"], "hello"),
    ("%.*d", [-1, 0], "0"),                # a negative precision is 0 in Linux
    ("%#x", [0], "0x0"),                   # glibc: "0"
    ("%#X", [255], "0XFF"),
    ("%#.3o", [8], "0010"),                # glibc: "010"
    ("%08.3d", [5], "00000005"),           # glibc: "     005"
    ("%#o", [0], "0"),
    ("%5%|", [], "%|"),
    ("a%yb", [1], "a"),                    # unknown conversion: output stops
    ("x%ny", [1], "x"),                    # %n is refused the same way
    ("end%", [], "end"),
    ("%hhd %hhu %hd %hu", [0x1FF, 0x1FF, 0x18000, 0x18000], "-1 255 -32768 32768"),
    ("%d %u", [2**32 + 5, -1], "5 4294967295"),
    ("%ld %lu %Ld", [-1, -1, -2], "-1 18446744073709551615 -2"),
    ("%jd %qu %zd %td", [-3, 2**64 - 1, -4, -5], "-3 18446744073709551615 -4 -5"),
    ("%-*d|%*d", [-4, 7, -3, 8], "7   |8  "),
    ("%c%c", [0x141, 0x42], "AB"),
    ("%-3c|%3c", [65, 66], "A  |  B"),
])
def test_linux_specific_formats(mem, f, args, expected):
    values = [string_ptr(a) if isinstance(a, str) else a for a in args]
    assert fmt(mem, f, *values) == expected


def test_char_zero_is_a_byte_in_the_output(mem):
    assert vsnprintf(b"a%cb", iter([0]), mem=mem) == b"a\0b"


def test_string_pointers(mem):
    assert fmt(mem, "[%s]", 0) == "[(null)]"
    assert fmt(mem, "[%.3s]", 0) == "[(nu]"           # error strings obey precision
    assert fmt(mem, "[%8s]", 0) == "[  (null)]"
    assert fmt(mem, "[%s]", 0x10) == "[(efault)]"     # below PAGE_SIZE
    assert fmt(mem, "[%s]", 2**64 - 22) == "[(efault)]"   # an ERR_PTR
    assert fmt(mem, "[%s]", 0xFFFF888000100000) == "[(efault)]"   # unmapped
    assert fmt(mem, "[%05s]", string_ptr("a")) == "[    a]"     # strings never zero-pad


def test_string_ending_at_an_unmapped_page(mem):
    end = DATA + 4 * 4096
    mem.write(end - 3, b"ab\0")
    assert fmt(mem, "%s", end - 3) == "ab"
    mem.write(end - 3, b"abc")
    assert fmt(mem, "%s", end - 3) == "(efault)"
    assert fmt(mem, "%.3s", end - 3) == "abc"          # precision stops the read in time


def test_plain_p_is_a_stable_keyed_hash(mem):
    hashed = fmt(mem, "%p", 0xFFFFFFFFA0001234)
    assert re.fullmatch(r"00000000[0-9a-f]{8}", hashed)
    assert hashed != "ffffffffa0001234"
    assert fmt(mem, "%p", 0xFFFFFFFFA0001234) == hashed
    assert fmt(mem, "%p", 0xFFFFFFFFA0001238) != hashed
    assert fmt(mem, "%pK", 0xFFFFFFFFA0001234) == hashed        # kptr_restrict=0
    assert fmt(mem, "%p", 0) == "0000000000000000"                # NULL prints raw
    assert fmt(mem, "%p", 2**64 - 12) == "fffffffffffffff4"       # so do error pointers
    assert fmt(mem, "%pfoo!", 0) == "0000000000000000!"           # the extension is skipped


def test_px_pe(mem):
    assert fmt(mem, "%px", 0xFFFFFFFFA0001234) == "ffffffffa0001234"
    assert fmt(mem, "%px", 0x1234) == "0000000000001234"
    assert fmt(mem, "%20px|", 0x1234) == "                1234|"
    assert fmt(mem, "%pe", 2**64 - 22) == "-EINVAL"
    assert fmt(mem, "%pe", 2**64 - 517) == "-EPROBE_DEFER"


def test_pointee_extensions(mem):
    addr = DATA + 3 * 4096 + 2048
    mem.write(addr, bytes([0x00, 0x1B, 0x21, 0xAA, 0xBB, 0xCC, 0, 0]))
    for f, args, expected in [
        ("%pM", [addr], "00:1b:21:aa:bb:cc"), ("%pMR", [addr], "cc:bb:aa:21:1b:00"),
        ("%pMF", [addr], "00-1b-21-aa-bb-cc"), ("%pm", [addr], "001b21aabbcc"),
        ("%pI4", [addr], "0.27.33.170"), ("%pi4", [addr], "000.027.033.170"),
        ("%pa", [addr], "0x0000ccbbaa211b00"), ("%ph", [addr], "00"),
        ("%4ph", [addr], "00 1b 21 aa"), ("%6phC", [addr], "00:1b:21:aa:bb:cc"),
        ("%*phD", [3, addr], "00-1b-21"), ("[%20pM]", [addr], "[   00:1b:21:aa:bb:cc]"),
        ("%pM", [0], "(null)"), ("%pI4", [0x20], "(efault)"),
        ("%ph", [0xFFFF888000100000], "(efault)"),
    ]:
        assert fmt(mem, f, *args) == expected, f


def test_symbolized_pointers(mem):
    calls = []

    def symbolize(address: int, offset: bool = True) -> str | None:
        calls.append((address, offset))
        if 0xFFFFFFFFA0000000 <= address < 0xFFFFFFFFA0000040:
            off = address - 0xFFFFFFFFA0000000
            return f"hello_init+{off:#x}/0x40 [hello]" if offset else "hello_init"
        return None

    assert fmt(mem, "%pS", 0xFFFFFFFFA0000012, symbolize=symbolize) == \
        "hello_init+0x12/0x40 [hello]"
    assert fmt(mem, "%ps", 0xFFFFFFFFA0000012, symbolize=symbolize) == "hello_init"
    assert fmt(mem, "%pB", 0xFFFFFFFFA0000040, symbolize=symbolize) == \
        "hello_init+0x40/0x40 [hello]"                # a return address just past the end
    assert calls[-1] == (0xFFFFFFFFA000003F, True)
    assert fmt(mem, "%pS", 0xFFFFFFFF81234567, symbolize=symbolize) == "0xffffffff81234567"
    assert fmt(mem, "[%-12ps]", 0xFFFFFFFFA0000001, symbolize=symbolize) == "[hello_init  ]"


def test_star_width_and_precision_come_from_the_arguments(mem):
    assert fmt(mem, "[%*.*s]", 8, 3, string_ptr("hello")) == "[     hel]"
    assert fmt(mem, "[%*d]", 2**32 - 5, 1) == "[1    ]"    # an int: -5 means left, 5 wide


# -- va_list --------------------------------------------------------------------------

def _va_list(mem, gp_offset: int, regs: list[int], stack: list[int]) -> int:
    va, save, overflow = DATA + 3 * 4096, DATA + 3 * 4096 + 64, DATA + 3 * 4096 + 1024
    mem.write_u32(va, gp_offset)
    mem.write_u32(va + 4, 48)
    mem.write_u64(va + 8, overflow)
    mem.write_u64(va + 16, save)
    for i, v in enumerate(regs):
        mem.write_u64(save + 8 * i, v)
    for i, v in enumerate(stack):
        mem.write_u64(overflow + 8 * i, v)
    return va


def test_va_list_reads_registers_then_the_overflow_area(mem):
    # printk(fmt, ...) used rdi for fmt: gp_offset 8, five register slots left.
    va = _va_list(mem, 8, [0xDEAD, 1, 2, 3, 4, 5], [6, 7])
    values = VaList(mem, va)
    assert [next(values) for _ in range(7)] == [1, 2, 3, 4, 5, 6, 7]
    assert mem.read_u32(va) == 48                      # written back, as va_arg does
    assert mem.read_u64(va + 8) == DATA + 3 * 4096 + 1024 + 16


def test_vsnprintf_from_a_va_list(mem):
    va = _va_list(mem, 40, [0, 0, 0, 0, 0, string_ptr("hello")], [2**64 - 7, 0x2A])
    assert vsnprintf(b"%s %d %x", VaList(mem, va), mem=mem) == b"hello -7 2a"


# -- the log -------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_levels_and_default_level():
    log = LogBuffer()
    assert log.printk(b"\x013error\n") == 5
    log.printk(b"no level\n", "hello")
    log.printk(b"\x017\x013first level wins\n")
    assert [(r.level, r.text, r.module) for r in log.records()] == [
        (3, "error", None), (4, "no level", "hello"), (7, "first level wins", None)]
    assert [r.seq for r in log.records()] == [1, 2, 3]
    assert [r.seq for r in log.records(since=2)] == [3]


def test_kern_cont_continues_the_same_callers_record():
    log = LogBuffer()
    log.printk(b"\x016loading:", "hello")
    assert log.records() == []                   # not finalized: readers do not see it yet
    log.printk(b"\x01c a", "hello")
    log.printk(b"\x01c b\n", "hello")
    log.printk(b"\x01c orphan\n", "hello")      # nothing open: a record of its own
    (first, second) = log.records()
    assert (first.level, first.text) == (6, "loading: a b")
    assert (second.level, second.text) == (4, " orphan")


def test_kern_cont_from_another_caller_starts_a_new_record():
    log = LogBuffer()
    log.printk(b"\x016alpha", "a")
    log.printk(b"\x01cbeta\n", "b")             # finalizes a's line, starts b's
    log.emit(KERN_ERR, "kernel says\n")
    assert [(r.module, r.text) for r in log.records()] == [
        ("a", "alpha"), ("b", "beta"), (None, "kernel says")]


def test_open_record_is_finalized_by_the_next_record_or_flush():
    log = LogBuffer()
    log.printk(b"\x016partial", "m")
    log.printk(b"\x016next", "m")
    assert [r.text for r in log.records()] == ["partial"]
    log.flush()
    assert [r.text for r in log.records()] == ["partial", "next"]
    assert log.last_seq == 2


@pytest.mark.parametrize("fmt", [b"", b"x", b"\x016hello: Hello, world\n", b"100%% sure", b"%s!"])
@pytest.mark.parametrize("room", [None, -1, 0, 3, 64])
def test_a_format_without_conversions_is_its_own_output(fmt, room):
    """vsnprintf_bounded's shortcut for a constant format keeps and counts
    what formatting it would (the first `room` bytes, the full length), and
    still asks the watchdog once for a non-empty one."""
    checks = []
    got = vsnprintf_bounded(fmt, iter([0]), room, check=lambda: checks.append(1))
    text = vsnprintf(fmt, iter([0]))
    keep = len(text) if room is None else max(room, 0)
    assert got == (text[:keep], len(text))
    assert len(checks) >= (1 if fmt else 0)


def test_printk_truncates_to_a_record():
    log = LogBuffer()
    assert log.printk(b"x" * 5000) == 1023
    log.flush()
    assert len(log.records()[0].text) == 1023


def test_non_utf8_bytes_are_escaped():
    log = LogBuffer()
    log.printk(b"bad \xff byte\n")
    assert log.records()[0].text == "bad \\xff byte"


def test_capacity_drops_the_oldest_but_seq_keeps_counting():
    log = LogBuffer(capacity=100)
    for i in range(30):
        log.emit(KERN_INFO, f"message {i:02d}")   # 11 bytes each, 12 with the newline
    records = log.records()
    assert sum(len(r.text) + 1 for r in records) <= 100
    assert records[-1].text == "message 29" and records[-1].seq == 30
    assert records[0].seq == 30 - len(records) + 1 > 1
    assert log.records(since=3)[0].seq == records[0].seq   # the gap is visible
    big = log.emit(KERN_INFO, "y" * 500)                  # larger than the buffer: kept alone
    assert log.records() == [big]


def test_timestamps_and_dmesg_format():
    clock = FakeClock()
    log = LogBuffer(clock=clock)
    clock.now += 1.2345678
    record = log.emit(KERN_INFO, "hello")
    assert record.timestamp == pytest.approx(1.2345678)
    assert log.format(record) == "[    1.234568] hello"
    clock.now += 12345.5
    record = log.emit(KERN_INFO, "two\nlines")
    assert log.format(record) == "[12346.734568] two\n[12346.734568] lines"


@pytest.mark.trio
async def test_follow_waits_for_new_records_and_cancels_cleanly():
    log = LogBuffer()
    log.emit(KERN_INFO, "old")
    seen = []

    async def follower(task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        async for record in log.follow(since=0):
            seen.append(record.text)

    async with trio.open_nursery() as nursery:
        await nursery.start(follower)
        await trio.testing.wait_all_tasks_blocked()
        assert seen == ["old"]
        log.printk(b"\x016new", "m")
        await trio.testing.wait_all_tasks_blocked()
        assert seen == ["old"]                   # still open
        log.printk(b"\x01c line\n", "m")
        log.emit(KERN_ERR, "third")
        await trio.testing.wait_all_tasks_blocked()
        assert seen == ["old", "new line", "third"]
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_follow_from_a_seq_skips_what_was_seen():
    log = LogBuffer()
    for text in ("a", "b", "c"):
        log.emit(KERN_INFO, text)
    follow = log.follow(since=2)
    with trio.fail_after(5):
        assert (await follow.__anext__()).text == "c"
    await follow.aclose()


# -- the kernel functions ----------------------------------------------------------------

def make_ctx(mem, args=(), module="hello", **extra):
    taints = []
    kernel = SimpleNamespace(log=LogBuffer(), add_taint=taints.append,
                             symbolize=lambda address, offset=True: None)
    ctx = SimpleNamespace(mem=mem, kernel=kernel, va=lambda: iter(args), still_running=lambda: None,
                          module=SimpleNamespace(name=module) if module else None, **extra)
    return ctx, taints


def put_string(mem, text: bytes, slot: int) -> int:
    addr = DATA + 2 * 4096 + 256 * slot
    mem.write(addr, text + b"\0")
    return addr


def test_printk_entry_point_formats_and_logs_as_the_module(mem):
    ctx, _ = make_ctx(mem, [string_ptr("hello"), 42])
    fmt_ptr = put_string(mem, b"\x013%s: %d\n", 0)
    assert api_printk._printk(ctx, fmt_ptr) == len("hello: 42")
    (record,) = ctx.kernel.log.records()
    assert (record.level, record.module, record.text) == (3, "hello", "hello: 42")


def test_vprintk_reads_a_va_list(mem):
    ctx, _ = make_ctx(mem, module=None)
    va = _va_list(mem, 8, [0, 7, 8], [])
    api_printk.vprintk(ctx, put_string(mem, b"%d+%d\n", 0), va)
    assert ctx.kernel.log.records()[0].text == "7+8"
    assert ctx.kernel.log.records()[0].module is None


def test_warn_slowpath_fmt_logs_linux_shape_and_taints(mem):
    ctx, taints = make_ctx(mem, [5], task=SimpleNamespace(pid=77), caller=0xFFFFFFFFA0000010)
    ctx.kernel.symbolize = lambda address, offset=True: "hello_init+0x10/0x40 [hello]"
    api_printk.warn_slowpath_fmt(ctx, put_string(mem, b"drivers/hello.c", 0), 12, 9,
                                 put_string(mem, b"bad value %d\n", 1))
    texts = [r.text for r in ctx.kernel.log.records()]
    assert texts == ["------------[ cut here ]------------",
                     "WARNING: CPU: 0 PID: 77 at drivers/hello.c:12 hello_init+0x10/0x40 [hello]",
                     "bad value 5", "---[ end trace 0000000000000000 ]---"]
    assert all(r.level == KERN_WARNING for r in ctx.kernel.log.records())
    assert taints == ["W"]


# -- end to end: a real module's printk calls --------------------------------------------

PRINTFMT_EXPECTED = """\
6 printfmt: d=-42 i=-42 u=4294967254
6 printfmt: x=beef X=BEEF o=10
6 printfmt: c=k s=kloader pct=%
6 printfmt: hh=-5 hhu=250 h=-1234 hu=65000
6 printfmt: l=-9223372036854775808 lu=9223372036854775808 lx=8000000000000000
6 printfmt: ll=-9223372036854775808 llu=18446744073709551615 llx=ffffffffffffffff
6 printfmt: z=123456789 zd=-987654321 t=-4096
6 printfmt: width=[      42] left=[42      ] zero=[00000042]
6 printfmt: plus=[+42] space=[ 42] plusneg=[-42]
6 printfmt: alt=[0xff] [010] [0XFF]
6 printfmt: zeroneg=[-0000042] leftneg=[-42   ]
6 printfmt: star=[       7] starleft=[7       ]
6 printfmt: prec=[005] strprec=[klo] starprec=[klo]
6 printfmt: strwidth=[   kloader] strleft=[kloader   ]
6 printfmt: null=[(null)]
6 printfmt: zero=0 0 0 0
6 printfmt: cont-start cont-middle cont-end
4 printfmt: default level
4 printfmt: a warning
3 printfmt: an error"""


@pytest.mark.trio
async def test_a_real_modules_printk_calls(tmp_path):
    if shutil.which("gcc") is None or shutil.which("ld") is None:
        pytest.skip("building a module needs gcc and ld")
    from pathlib import Path

    from kloaderd.build import build_module
    from kloaderd.kernel.kernel import Kernel

    source = Path(__file__).parent.parent / "fixtures" / "src" / "printfmt.c"
    ko = build_module([source], tmp_path / "printfmt.ko").read_bytes()
    kernel = Kernel()
    await kernel.init_module(ko, "")
    records = [r for r in kernel.log.records() if r.module == "printfmt"]
    plain = [f"{r.level} {r.text}" for r in records if not re.search(r" p[xSs_]|p=", r.text)]
    assert "\n".join(plain) == PRINTFMT_EXPECTED
    pointers = {r.text.split("=")[0].split()[-1]: r.text.split("=", 1)[1] for r in records
                if re.search(r" p[xSs_]|p=", r.text)}
    assert re.fullmatch(r"00000000[0-9a-f]{8}", pointers["p"])
    assert re.fullmatch(r"ffffffffa[0-9a-f]{7}", pointers["px"])
    # 0x5: `jmp __x86_return_thunk`, the return of a CONFIG_RETHUNK build
    assert pointers["pS"] == "printfmt_target+0x0/0x5 [printfmt]"
    assert pointers["ps"] == "printfmt_target [printfmt]"
    assert re.fullmatch(r"printfmt_init\+0x0/0x[0-9a-f]+ \[printfmt\]", pointers["pS_init"])


def test_the_ring_is_bounded_in_real_bytes_not_characters():
    """Issue 13, defect 7: capacity counted text only, so 524 k one-letter
    records in a 1 MiB ring cost 148 MB.  Now what the ring holds, measured
    by tracemalloc, stays within its capacity."""
    import tracemalloc
    capacity = 256 << 10
    tracemalloc.start()
    try:
        log = LogBuffer(capacity=capacity)
        before = tracemalloc.get_traced_memory()[0]
        for i in range(60_000):
            log.emit(KERN_INFO, "x")
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held <= capacity * 1.1
    assert log.records()[-1].seq == 60_000
    assert len(log.records()) < 60_000               # the oldest went


def test_a_record_holds_at_most_1023_bytes_and_pr_cont_starts_the_next():
    """Issue 13, defect 7: pr_cont in a loop grew one record to 12 MB.
    Linux caps a record at PRINTKRB_RECORD_MAX; a continuation that does not
    fit starts a new record."""
    log = LogBuffer()
    log.printk(b"\x016start:", "m")
    for i in range(3000):
        log.printk(b"\x01c" + b"%d," % (i % 10), "m")
    log.printk(b"\x01c\n", "m")
    log.emit(KERN_INFO, "\u00e9" * 2000)               # the kernel's own lines too
    texts = [r.text for r in log.records()]
    assert all(len(t.encode()) <= 1023 for t in texts)
    assert "".join(texts[:-1]) == "start:" + "".join(f"{i % 10}," for i in range(3000))
    assert texts[-1] == "\u00e9" * 511                 # cut at a character boundary
