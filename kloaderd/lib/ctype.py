"""lib/ctype.c: `_ctype`, the character class table `isalpha()`,
`isdigit()`, `isspace()` and the rest of <linux/ctype.h> index inline.

256 bytes of class bits, Linux's: ASCII as C's "C" locale, and the upper
half as ISO 8859-1 (Latin-1), which Linux has always classified (0xa0 a
space, 0xc0-0xde upper case but for 0xd7, 0xdf-0xff lower case but for
0xf7).  Read-only, as Linux's `const` table.
"""

from __future__ import annotations

from ..kernel.kdata import DataExport, export_data

# include/linux/ctype.h's bits
_U, _L, _D, _C, _P, _S, _X, _SP = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80


def _klass(c: int) -> int:
    if c < 0x20 or c == 0x7F:
        return _C | (_S if 0x09 <= c <= 0x0D else 0)
    if c in (0x20, 0xA0):
        return _S | _SP
    if 0x80 <= c < 0xA0:
        return 0
    if 0x30 <= c <= 0x39:
        return _D
    if 0x41 <= c <= 0x5A:
        return _U | (_X if c <= 0x46 else 0)
    if 0x61 <= c <= 0x7A:
        return _L | (_X if c <= 0x66 else 0)
    if 0xC0 <= c <= 0xDE and c != 0xD7:
        return _U
    if c >= 0xDF and c != 0xF7:
        return _L
    return _P


CTYPE = bytes(_klass(c) for c in range(256))

export_data("_ctype", DataExport(lambda _profile: len(CTYPE), lambda _profile, _base, _layouts: CTYPE,
                                 writable=False))
