"""The Debian kernels of the corpus, for tests: fetched once per machine,
skipped with the reason where they cannot be."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest


def corpus(flavour: str) -> tuple[Path, Path]:
    """(modules dir, build tree) of a Debian kernel, or skip saying why not."""
    from tools import kernel_corpus
    try:
        root = kernel_corpus.fetch(flavour)
    except kernel_corpus.Unavailable as exc:
        pytest.skip(f"Debian {flavour} kernel corpus unavailable: {exc}")
    return kernel_corpus.modules_dir(root), kernel_corpus.build_dir(root)


def read_module(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.suffix == ".xz" else data


def find_module(modules: Path, name: str) -> bytes:
    """The module file NAME.ko* under `modules`, decompressed."""
    return read_module(next(modules.rglob(f"{name}.ko*")))
