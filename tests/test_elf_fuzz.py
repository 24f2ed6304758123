"""Bad bytes never crash the reader or the linker.

Real objects are mutated (bit flips, truncation, header and table field
edits, section size/offset lies, symbol and relocation index lies) and
random bytes are thrown in.  Every input must be accepted or refused with
KernelError (ENOEXEC; EFBIG for oversize; EBADMSG for a broken signature
trailer), and linking an accepted image may only fail with ENOEXEC or ENOENT.

~200 examples by default; set KLOADER_FUZZ_EXAMPLES for a long run, or run
the `slow`-marked test with KLOADER_FUZZ_LONG=1.
"""

from __future__ import annotations

import errno
import os
import struct
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import elfobjs
from kloaderd.config import MODULES_VADDR
from kloaderd.elf.defs import SHT_RELA, SHT_SYMTAB
from kloaderd.elf.image import parse
from kloaderd.errors import KernelError
from kloaderd.link import layout_sections, link

EXAMPLES = int(os.environ.get("KLOADER_FUZZ_EXAMPLES", "200"))
PARSE_ERRNOS = {errno.ENOEXEC, errno.EFBIG, errno.EBADMSG}
LINK_ERRNOS = {errno.ENOEXEC, errno.ENOENT}

EHDR = [(16, 2), (18, 2), (40, 8), (58, 2), (60, 2), (62, 2), (4, 1), (5, 1)]
SHDR = [(0, 4), (4, 4), (8, 8), (24, 8), (32, 8), (40, 4), (44, 4), (48, 8), (56, 8)]
SYM = [(0, 4), (4, 1), (6, 2), (8, 8), (16, 8)]
RELA = [(0, 8), (8, 4), (12, 4), (16, 8)]      # offset, type, symbol, addend


@lru_cache(maxsize=None)
def bases() -> tuple[bytes, ...]:
    tmp = Path(tempfile.mkdtemp(prefix="kloader-fuzz-"))
    return tuple(elfobjs.compile_c(tmp, name, src) for name, src in elfobjs.SOURCES.items())


def interesting(size: int, total: int) -> st.SearchStrategy[int]:
    top = (1 << (8 * size)) - 1
    special = [0, 1, 2, 3, 4, 8, 11, 24, 0xFF, 0xFFFF, 0xFFF1, 0xFFF2, 0xFFFFFFFF, 1 << 63, (1 << 64) - 1,
               total, total - 1, total + 1]
    return st.one_of(st.sampled_from([v & top for v in special]), st.integers(0, top))


def table(data: bytes, sh_type: int) -> list[tuple[int, int, int]]:
    """(offset, size, entry size) of the tables of one type in a valid base object."""
    return [(s.offset, s.size, s.entsize) for s in parse(data).sections if s.type == sh_type and s.size]


@st.composite
def mutated(draw) -> bytes:
    base = draw(st.sampled_from(bases()))
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
                at, size = draw(st.sampled_from(EHDR))
            elif kind == "shdr":
                shoff, = struct.unpack_from("<Q", data, 40)
                shnum, = struct.unpack_from("<H", data, 60)
                field, size = draw(st.sampled_from(SHDR))
                at = shoff + 64 * draw(st.integers(0, shnum - 1)) + field
            else:
                tables = table(base, SHT_SYMTAB if kind == "symbol" else SHT_RELA)
                off, tsize, esize = draw(st.sampled_from(tables))
                field, size = draw(st.sampled_from(SYM if kind == "symbol" else RELA))
                at = off + esize * draw(st.integers(0, tsize // esize - 1)) + field
            if at + size <= len(data):
                data[at:at + size] = draw(interesting(size, n)).to_bytes(size, "little")
    return bytes(data)


def check(data: bytes, resolve_all: bool) -> None:
    try:
        image = parse(data)
    except KernelError as e:
        assert e.errno in PARSE_ERRNOS, (e.errno, e.message)
        return
    layout = layout_sections(image)
    names = sorted(set(image.undefined))
    if not resolve_all:
        names = names[1:]
    externals = {name: 0xFFFFFFFF81000000 + 0x40 * i for i, name in enumerate(names)}
    try:
        link(image, layout, MODULES_VADDR, MODULES_VADDR + (64 << 20), externals)
    except KernelError as e:
        assert e.errno in LINK_ERRNOS, (e.errno, e.message)


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.data_too_large])


@FUZZ
@given(mutated(), st.booleans())
def test_mutated_objects_are_accepted_or_refused_cleanly(data, resolve_all):
    check(data, resolve_all)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_are_refused(data):
    with pytest.raises(KernelError) as exc:
        parse(data)
    assert exc.value.errno in PARSE_ERRNOS


def test_unmutated_bases_link():
    for data in bases():
        check(data, resolve_all=True)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("KLOADER_FUZZ_LONG"), reason="set KLOADER_FUZZ_LONG=1 for the long run")
@settings(max_examples=max(EXAMPLES, 20_000), deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated(), st.booleans())
def test_long_fuzz(data, resolve_all):
    check(data, resolve_all)
