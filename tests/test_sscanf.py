"""sscanf/vsscanf (kloaderd/lib/vsscanf.py) and reciprocal_value
(kloaderd/lib/reciprocal_div.py), what bonding's init calls after tls
loads: Linux's scanner rules, checked in Python and through a module built
by 6.1's and 6.12's kbuild."""

from __future__ import annotations

import pytest

from kloaderd.lib.reciprocal_div import reciprocal
from kloaderd.lib.vsscanf import scan
from realkernel import run_kbuilt


def stored(buf: bytes, fmt: bytes) -> list[object]:
    return [s.data if s.data else ("n", s.value) if s.size == -1 else (s.size, s.value)
            for s in scan(buf, fmt)]


@pytest.mark.parametrize("buf, fmt, expected", [
    (b"123", b"%llu", [(8, 123)]),
    (b"  bond0 x", b"%32s", [b"bond0\0"]),
    (b"bond-too-long", b"%4s", [b"bond\0"]),
    (b"-42 0x1f 077 abc", b"%d %x %o %s", [(4, 2**32 - 42), (4, 31), (4, 63), b"abc\0"]),
    (b"0x1f 010 9", b"%i %i %i", [(4, 31), (4, 8), (4, 9)]),
    (b"12345", b"%3d%d", [(4, 123), (4, 45)]),
    (b"-12345", b"%3d", [(4, 2**32 - 12)]),                  # the '-' counts in the width
    (b"00:0a:95", b"%2[^:]:%2[^:]:%2[^:]", [b"00\0", b"0a\0", b"95\0"]),
    (b"ab", b"%c%n", [b"a", ("n", 1)]),
    (b"300", b"%hhu", [(1, 44)]),
    (b"5\n", b"%hd\n", [(2, 5)]),
    (b"7 8", b"%*d %d", [(4, 8)]),
    (b"x", b"%d", []),                                      # no digit: the scan ends
    (b"1 2", b"%d,%d", [(4, 1)]),                            # a literal that does not match
    (b"1", b"%0d", []),                                     # a zero width ends it
    (b"12", b"%q", []),                                     # an unknown conversion ends it
    (b"50%", b"%d%%", [(4, 50)]),
])
def test_the_scan_follows_linux(buf, fmt, expected):
    assert stored(buf, fmt) == expected


@pytest.mark.parametrize("d", [1, 2, 3, 7, 10, 1000, 2**31, 2**32 - 1])
def test_reciprocal_divide_agrees_with_division(d):
    m, sh1, sh2 = reciprocal(d)
    for a in (0, 1, 5, d - 1, d, 2**32 - 1, 123456789):
        t = (a * m) >> 32
        assert (t + ((a - t) >> sh1)) >> sh2 == a // d


SCAN = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/reciprocal_div.h>
MODULE_LICENSE("GPL");

static int vscan(const char *buf, const char *fmt, ...)
{
	va_list args;
	int n;

	va_start(args, fmt);
	n = vsscanf(buf, fmt, args);
	va_end(args);
	return n;
}

static int __init scan_init(void)
{
	unsigned long long big = 0;
	char name[33] = "", tail[8] = "";
	short h = 0;
	int d = 0, x = 0, used = 0, n;
	struct reciprocal_value r = reciprocal_value(7);

	n = sscanf(" 18446744073709551615 bond0", "%llu %32s%n", &big, name, &used);
	pr_info("scan: %d %llu %s %d\n", n, big, name, used);
	n = vscan("-3,ff rest", "%hd,%x %7s", &h, &x, tail);
	pr_info("scan: %d %d %d %s\n", n, h, x, tail);
	n = sscanf("abc", "%d", &d);
	pr_info("scan: %d\n", n);
	pr_info("scan: %u %u %u\n", reciprocal_divide(100, r), reciprocal_divide(6, r),
		reciprocal_divide(4294967295U, r));
	return 0;
}
static void __exit scan_exit(void)
{
}
module_init(scan_init);
module_exit(scan_exit);
"""


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_a_module_scans_and_divides(tmp_path, flavour):
    _, lines = run_kbuilt(tmp_path, "scan", SCAN, flavour)
    assert lines == ["scan: 2 18446744073709551615 bond0 27",   # %n is not counted
                     "scan: 3 -3 255 rest",
                     "scan: 0",
                     f"scan: 14 0 {4294967295 // 7}"]
