"""lib/string.c, the printf family and kstrto* as module code calls them:
pointers into guest memory, Linux's return values."""

from __future__ import annotations

import errno
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st
from unicorn import UC_ARCH_X86, UC_MODE_64, Uc

from kloaderd.kernel import api
from kloaderd.kernel.api import string as s
from kloaderd.kernel.memory import AddressSpace, GuestFault

BASE = 0xFFFF888000000000
U64 = 2**64 - 1


@pytest.fixture(scope="module")
def space() -> AddressSpace:
    mem = AddressSpace(Uc(UC_ARCH_X86, UC_MODE_64))
    mem.map(BASE, 4 * 4096, "rw-")
    return mem


class Ctx(SimpleNamespace):
    """A module's call: variadic arguments come from `args`."""

    def va(self):
        return iter(self.args)

    def still_running(self):
        """The watchdog: never reached by these short calls."""


@pytest.fixture
def ctx(space):
    space.write(BASE, bytes(4 * 4096))
    kernel = SimpleNamespace(symbolize=lambda address, offset=True: None)
    return Ctx(mem=space, kernel=kernel, module=None, args=[])


def put(ctx, offset: int, data: bytes) -> int:
    ctx.mem.write(BASE + offset, data)
    return BASE + offset


def test_memcpy_memmove_memset(ctx):
    src = put(ctx, 0, b"abcdefgh")
    assert s.memcpy(ctx, BASE + 100, src, 8) == BASE + 100
    assert ctx.mem.read(BASE + 100, 8) == b"abcdefgh"
    assert s.memmove(ctx, src + 2, src, 6) == src + 2             # overlapping, forwards
    assert ctx.mem.read(src, 8) == b"ababcdef"
    assert s.memset(ctx, src, 0x1FF, 3) == src                    # only the low byte
    assert ctx.mem.read(src, 4) == b"\xff\xff\xffb"
    assert s.memcpy(ctx, 0, 0, 0) == 0                            # count 0 touches nothing


def test_memcmp_returns_the_byte_difference(ctx):
    a, b = put(ctx, 0, b"abcX"), put(ctx, 16, b"abcA")
    assert s.memcmp(ctx, a, b, 4) == ord("X") - ord("A")
    assert s.memcmp(ctx, b, a, 4) == ord("A") - ord("X")
    assert s.memcmp(ctx, a, b, 3) == 0
    assert s.memcmp(ctx, put(ctx, 32, b"\x80"), put(ctx, 48, b"\x01"), 1) == 127   # unsigned


def test_lengths(ctx):
    p = put(ctx, 0, b"hello\0")
    assert s.strlen(ctx, p) == 5
    assert s.strnlen(ctx, p, 3) == 3 and s.strnlen(ctx, p, 100) == 5


@pytest.mark.parametrize("a, b, result", [
    (b"abc", b"abc", 0), (b"abc", b"abd", -1), (b"abd", b"abc", 1), (b"ab", b"abc", -1),
    (b"abc", b"ab", 1), (b"\xff", b"a", 1), (b"", b"", 0),
])
def test_strcmp_is_minus_one_zero_or_one(ctx, a, b, result):
    pa, pb = put(ctx, 0, a + b"\0"), put(ctx, 64, b + b"\0")
    assert s.strcmp(ctx, pa, pb) == result


def test_strncmp(ctx):
    pa, pb = put(ctx, 0, b"abcdef\0"), put(ctx, 64, b"abcxyz\0")
    assert s.strncmp(ctx, pa, pb, 3) == 0
    assert s.strncmp(ctx, pa, pb, 4) == -1
    assert s.strncmp(ctx, pa, pb, 0) == 0


def test_strcpy_strcat(ctx):
    dst, src = BASE + 200, put(ctx, 0, b"world\0")
    put(ctx, 200, b"hello \0")
    assert s.strcat(ctx, dst, src) == dst
    assert ctx.mem.read_cstr(dst) == b"hello world"
    assert s.strcpy(ctx, dst, src) == dst
    assert ctx.mem.read(dst, 7) == b"world\0w"


def test_strscpy(ctx):
    src, dst = put(ctx, 0, b"kloader\0"), BASE + 100
    put(ctx, 100, b"\xee" * 16)
    assert s.strscpy(ctx, dst, src, 16) == 7
    assert ctx.mem.read(dst, 9) == b"kloader\0\xee"
    assert s.strscpy(ctx, dst, src, 8) == 7                       # exactly fits
    assert s.strscpy(ctx, dst, src, 5) == -errno.E2BIG
    assert ctx.mem.read(dst, 5) == b"kloa\0"
    assert s.strscpy(ctx, dst, src, 0) == -errno.E2BIG
    assert s.strscpy(ctx, dst, src, 2**31) == -errno.E2BIG        # > INT_MAX


def test_strchr_strrchr_strstr(ctx):
    p = put(ctx, 0, b"a/b/c\0")
    assert s.strchr(ctx, p, ord("/")) == p + 1
    assert s.strrchr(ctx, p, ord("/")) == p + 3
    assert s.strchr(ctx, p, ord("x")) == 0 and s.strrchr(ctx, p, ord("x")) == 0
    assert s.strchr(ctx, p, 0) == p + 5 and s.strrchr(ctx, p, 0) == p + 5
    assert s.strchr(ctx, p, 0x100 + ord("b")) == p + 2          # (char)c
    needle, empty, missing = put(ctx, 64, b"b/c\0"), put(ctx, 80, b"\0"), put(ctx, 96, b"cc\0")
    assert s.strstr(ctx, p, needle) == p + 2
    assert s.strstr(ctx, p, empty) == p
    assert s.strstr(ctx, p, missing) == 0


def test_snprintf_truncates_and_returns_the_full_length(ctx):
    fmt = put(ctx, 0, b"%s=%d\0")
    name = put(ctx, 32, b"count\0")
    buf = BASE + 100
    ctx.args = [name, 12345]
    put(ctx, 100, b"\xee" * 16)
    assert s.snprintf(ctx, buf, 8, fmt) == 11
    assert ctx.mem.read(buf, 9) == b"count=1\0\xee"
    assert s.scnprintf(ctx, buf, 8, fmt) == 7
    assert s.scnprintf(ctx, buf, 100, fmt) == 11
    assert s.scnprintf(ctx, buf, 0, fmt) == 0
    put(ctx, 100, b"\xee")
    assert s.snprintf(ctx, buf, 0, fmt) == 11
    assert ctx.mem.read(buf, 1) == b"\xee"                        # size 0 writes nothing
    assert s.sprintf(ctx, buf, fmt) == 11
    assert ctx.mem.read(buf, 12) == b"count=12345\0"
    assert s.snprintf(ctx, buf, 2**31, fmt) == 0                  # size > INT_MAX is refused


def test_vsnprintf_takes_a_va_list(ctx):
    va, save = BASE + 3 * 4096, BASE + 3 * 4096 + 64
    ctx.mem.write_u32(va, 24)                     # buf, size, fmt used three registers
    ctx.mem.write_u64(va + 16, save)
    ctx.mem.write_u64(save + 24, 0x2A)
    assert s.vsnprintf(ctx, BASE + 100, 64, put(ctx, 0, b"<%x>\0"), va) == 4
    assert ctx.mem.read_cstr(BASE + 100) == b"<2a>"


def test_output_to_a_bad_buffer_faults(ctx):
    with pytest.raises(GuestFault):
        s.sprintf(ctx, 0x1000, put(ctx, 0, b"x\0"))


# -- kstrto* -------------------------------------------------------------------------

KSTRTO = {"kstrtoint": (32, True), "kstrtouint": (32, False), "_kstrtol": (64, True),
          "_kstrtoul": (64, False), "kstrtoll": (64, True), "kstrtoull": (64, False)}


def kstrto(ctx, name: str, text: bytes, base: int = 0) -> tuple[int, int]:
    """Call s.<name>; returns (return value, what is in *res, which starts as all ones)."""
    bits = KSTRTO[name][0]
    res = BASE + 512
    ctx.mem.write(res, b"\xff" * 8)
    ret = api.FUNCTIONS[name].impl(ctx, put(ctx, 0, text + b"\0"), base, res)
    raw = int.from_bytes(ctx.mem.read(res, bits // 8), "little")
    return ret, raw


@pytest.mark.parametrize("name, text, base, expected", [
    ("kstrtoint", b"-2147483648", 0, (0, 0x80000000)),
    ("kstrtoint", b"2147483648", 0, (-errno.ERANGE, 0xFFFFFFFF)),
    ("kstrtoint", b"0x7fffffff\n", 0, (0, 0x7FFFFFFF)),
    ("kstrtouint", b"4294967295", 10, (0, 0xFFFFFFFF)),
    ("kstrtouint", b"4294967296", 10, (-errno.ERANGE, 0xFFFFFFFF)),
    ("kstrtouint", b"-1", 10, (-errno.EINVAL, 0xFFFFFFFF)),
    ("_kstrtol", b"-1", 0, (0, U64)),
    ("_kstrtoul", b"ff", 16, (0, 255)),
    ("kstrtoll", b"010", 0, (0, 8)),
    ("kstrtoull", b"12 ", 0, (-errno.EINVAL, U64)),
    ("kstrtoull", b"", 0, (-errno.EINVAL, U64)),
])
def test_kstrto(ctx, name, text, base, expected):
    assert kstrto(ctx, name, text, base) == expected


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(sorted(KSTRTO)), st.integers(-2**65, 2**65), st.booleans())
def test_kstrto_agrees_with_python(space, name, value, newline):
    ctx = Ctx(mem=space)
    bits, signed = KSTRTO[name]
    ret, raw = kstrto(ctx, name, str(value).encode() + (b"\n" if newline else b""), 10)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if low <= value <= high:
        assert (ret, raw) == (0, value & ((1 << bits) - 1))
    else:
        assert ret in (-errno.ERANGE, -errno.EINVAL)        # "-5" for unsigned: EINVAL
        assert ret == (-errno.EINVAL if value < 0 and not signed else -errno.ERANGE)


def test_kstrtobool(ctx):
    res = BASE + 512
    for text, value in ((b"on", 1), (b"Off", 0), (b"yes", 1), (b"0", 0)):
        put(ctx, 512, b"\xee")
        assert s.kstrtobool(ctx, put(ctx, 0, text + b"\0"), res) == 0
        assert ctx.mem.read(res, 1) == bytes([value])
    put(ctx, 512, b"\xee")
    assert s.kstrtobool(ctx, put(ctx, 0, b"maybe\0"), res) == -errno.EINVAL
    assert s.kstrtobool(ctx, 0, res) == -errno.EINVAL
    assert ctx.mem.read(res, 1) == b"\xee"


# -- end to end: gcc-compiled callers, real va_lists -------------------------------------

STRINGS_C = r"""
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/kstrtox.h>
#include <linux/slab.h>
#include <linux/sprintf.h>
#include <linux/string.h>

static __printf(2, 3) int fmt_into(char *buf, const char *fmt, ...)
{
	va_list args;
	int n;

	va_start(args, fmt);
	n = vsnprintf(buf, 16, fmt, args);
	va_end(args);
	return n;
}

static __printf(1, 2) void log_it(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vprintk(fmt, args);
	va_end(args);
}

static int __init strings_init(void)
{
	char buf[32];
	char *copy;
	int value = 0, n;
	bool flag = false;

	n = fmt_into(buf, "%s-%d-%x-%lld-%c-%s-%d-%d", "ab", -7, 255, -1LL, 'z', "tail", 8, 9);
	pr_info("strings: vsnprintf=%d [%s]\n", n, buf);
	log_it("strings: vprintk %d %d %d %d %d %d %d %d\n", 1, 2, 3, 4, 5, 6, 7, 8);
	n = scnprintf(buf, 8, "%d", 123456789);
	pr_info("strings: scnprintf=%d [%s]\n", n, buf);
	pr_info("strings: strscpy=%zd big=%zd [%s]\n", strscpy(buf, "hello", sizeof(buf)),
		strscpy(buf, "hello world", 6), buf);
	n = kstrtoint("-0x10\n", 0, &value);
	pr_info("strings: kstrtoint=%d value=%d bad=%d range=%d\n", n, value,
		kstrtoint("12ab", 10, &value), kstrtoint("4294967296", 10, &value));
	n = kstrtobool("on", &flag);
	pr_info("strings: kstrtobool=%d flag=%d\n", n, flag);
	copy = kstrdup("duplicate", GFP_KERNEL);
	pr_info("strings: kstrdup=[%s] cmp=%d len=%zu chr=%s\n", copy, strcmp(copy, "duplicatf"),
		strlen(copy), strchr(copy, 'c'));
	kfree(copy);
	return 0;
}

module_init(strings_init);
MODULE_LICENSE("GPL");
"""


@pytest.mark.trio
async def test_a_real_module_calls_the_string_functions(tmp_path):
    import shutil

    if shutil.which("gcc") is None or shutil.which("ld") is None:
        pytest.skip("building a module needs gcc and ld")
    from kloaderd.build import build_module
    from kloaderd.kernel.kernel import Kernel

    (tmp_path / "strings.c").write_text(STRINGS_C)
    ko = build_module([tmp_path / "strings.c"], tmp_path / "strings.ko").read_bytes()
    kernel = Kernel()
    await kernel.init_module(ko, "")
    texts = [r.text for r in kernel.log.records() if r.module == "strings"]
    assert texts == [
        "strings: vsnprintf=22 [ab--7-ff--1-z-t]",
        "strings: vprintk 1 2 3 4 5 6 7 8",
        "strings: scnprintf=7 [1234567]",
        "strings: strscpy=5 big=-7 [hello]",
        "strings: kstrtoint=0 value=-16 bad=-22 range=-34",
        "strings: kstrtobool=0 flag=1",
        "strings: kstrdup=[duplicate] cmp=-1 len=9 chr=cate",
    ]
    assert kernel.slab.usage("strings") == (0, 0)
