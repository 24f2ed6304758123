"""Every module a distribution ships parses, lays out and links; a sample of
them links to the same bytes as GNU ld at the same addresses.

The modules are Debian's cloud kernels, 6.1 (`.ko`) and 6.12 (`.ko.xz`,
decompressed here with Python's lzma), fetched once by
`python tools/kernel_corpus.py [--flavour 6.12]` into a cache outside the
tree.  Without the corpus (no Debian package tools, no network) the tests skip
and say so.  Linking all ~2,300 modules takes tens of seconds, so both tests
are `slow`: CI runs them in their own step.
"""

from __future__ import annotations

import lzma
import random
import shutil
import sys
from pathlib import Path

import pytest

from kloaderd.config import MODULES_VADDR
from kloaderd.elf.image import parse
from kloaderd.link import layout_sections, link
from test_ld_oracle import INIT_BASE, PERCPU_BASE, compare_with_ld, fake_externals, ld_link

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import kernel_corpus  # noqa: E402

pytestmark = pytest.mark.slow

FLAVOURS = ("6.1", "6.12")
LD_SAMPLE = 40          # random modules per corpus compared with ld, besides the biggest three


def corpus_modules(flavour: str) -> list[Path]:
    try:
        root = kernel_corpus.fetch(flavour)
    except kernel_corpus.Unavailable as e:
        pytest.skip(f"the {flavour} kernel corpus is unavailable: {e}")
    tree = kernel_corpus.modules_dir(root)
    modules = sorted([*tree.rglob("*.ko"), *tree.rglob("*.ko.xz")])
    assert len(modules) > 500, f"only {len(modules)} modules under {tree}"
    return modules


def image_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.suffix == ".xz" else data


def linked(data: bytes):
    image = parse(data)
    externals = fake_externals(image)
    return image, externals, link(image, layout_sections(image), MODULES_VADDR, INIT_BASE, externals,
                                  percpu_base=PERCPU_BASE)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_module_of_the_corpus_links(flavour):
    failed: dict[str, str] = {}
    for path in corpus_modules(flavour):
        try:
            image, _, result = linked(image_bytes(path))
            laid_out = sum(r.count for r in image.rela if r.target in result.section_addr)
            assert result.relocations == laid_out
        except Exception as e:          # collected, so one report names every module that fails
            failed[path.name] = f"{type(e).__name__}: {e}"
    assert not failed, f"{len(failed)} modules failed: " + "; ".join(
        f"{name}: {why}" for name, why in sorted(failed.items())[:20])


@pytest.mark.skipif(shutil.which("ld") is None, reason="GNU ld not installed")
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_sample_of_the_corpus_links_as_ld_does(flavour, tmp_path):
    modules = corpus_modules(flavour)
    biggest = sorted(modules, key=lambda p: p.stat().st_size)[-3:]
    sample = random.Random(flavour).sample(modules, LD_SAMPLE) + biggest
    for path in sample:
        image, externals, result = linked(image_bytes(path))
        work = tmp_path / path.name
        work.mkdir()
        out = ld_link(work, image, result.section_addr, externals)
        assert compare_with_ld(image, result, out) == len(result.section_addr) > 0, path.name
        shutil.rmtree(work)
