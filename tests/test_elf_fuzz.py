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
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import elfobjs
from elfobjs import mutated
# test_fuzz_daemon.py imports these from here; they moved to elfobjs with the strategy.
from elfobjs import EHDR_FIELDS as EHDR, RELA_FIELDS as RELA, SHDR_FIELDS as SHDR  # noqa: F401
from elfobjs import SYM_FIELDS as SYM, interesting, table  # noqa: F401
from kloaderd.config import MODULES_VADDR
from kloaderd.elf.image import parse
from kloaderd.errors import KernelError
from kloaderd.link import layout_sections, link

EXAMPLES = int(os.environ.get("KLOADER_FUZZ_EXAMPLES", "200"))
PARSE_ERRNOS = {errno.ENOEXEC, errno.EFBIG, errno.EBADMSG}
LINK_ERRNOS = {errno.ENOEXEC, errno.ENOENT}


@lru_cache(maxsize=None)
def bases() -> tuple[bytes, ...]:
    """The objects to mutate, compiled once per process (they are needed at
    collection, before any tmp_path exists) in a directory removed at once."""
    with tempfile.TemporaryDirectory(prefix="kloader-fuzz-") as tmp:
        return tuple(elfobjs.compile_c(Path(tmp), name, src) for name, src in elfobjs.SOURCES.items())


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
@given(st.sampled_from(bases()).flatmap(mutated), st.booleans())
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
@given(st.sampled_from(bases()).flatmap(mutated), st.booleans())
def test_long_fuzz(data, resolve_all):
    check(data, resolve_all)
