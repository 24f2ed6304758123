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


def load_then_remove(build: Path, images: list[bytes]):
    """Under `build`'s profile: load each image in order (an init that fails
    is recorded: {index: errno}), remove the loaded in reverse, shut down.
    Returns (kernel, errors)."""
    import trio

    from kloaderd.errors import KernelError
    from kloaderd.kernel.kernel import Kernel, KernelOptions
    kernel = Kernel(KernelOptions(kernel=str(build)))
    errors: dict[int, int] = {}

    async def main() -> None:
        names = []
        for i, image in enumerate(images):
            try:
                names.append(await kernel.init_module(image))
            except KernelError as exc:
                errors[i] = exc.errno
        for name in reversed(names):
            await kernel.delete_module(name)
        await kernel.shutdown()
    trio.run(main)
    return kernel, errors


def run_kbuilt(tmp_path: Path, name: str, source: str, flavour: str = "6.1"):
    """Build `source` as NAME.ko with the Debian tree's kbuild (6.1 unless
    `flavour` says), load it and remove it; (kernel, the module's own log
    lines but the taint notice)."""
    from test_kbuild import kmodbuild
    _, build = corpus(flavour)
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    ko = tmp_path / f"{name}.ko"
    done = kmodbuild("--kernel", str(build), str(src), "-o", str(ko))
    assert done.returncode == 0, done.stderr
    kernel, errors = load_then_remove(build, [ko.read_bytes()])
    assert not errors, errors
    return kernel, [r.text for r in kernel.log.records()
                    if r.text.startswith(f"{name}: ") and "taints" not in r.text]
