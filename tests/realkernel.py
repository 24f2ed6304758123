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


def load_then_remove(build: Path, images: list[bytes], after_load=None):
    """Under `build`'s profile: load each image in order (an init that fails
    is recorded: {index: errno}), call `after_load(kernel)` if given, remove
    the loaded in reverse, shut down.  Returns (kernel, errors)."""
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
        if after_load is not None:
            after_load(kernel)
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


def with_dependencies(modules: Path, name: str) -> list[bytes]:
    """NAME.ko* and every module its `.modinfo` `depends=` names, transitively,
    each after what it depends on (the order modprobe loads them in)."""
    import re
    order: list[str] = []

    def visit(mod: str) -> bytes:
        image = find_module(modules, mod)
        found = re.search(rb"\0depends=([^\0]*)\0", image)
        for dep in (found.group(1).decode().split(",") if found and found.group(1) else []):
            if dep not in order:
                visit(dep)
        if mod not in order:
            order.append(mod)
        return image
    visit(name)
    return [find_module(modules, mod) for mod in order]


def load_in_order(build: Path, images: list[bytes]):
    """Under `build`'s profile: load `images` in order, stopping at the first
    whose init fails (an oops leaves it holding what it took, so nothing is
    removed); shut down.  Returns (kernel, how many loaded)."""
    import trio

    from kloaderd.errors import KernelError
    from kloaderd.kernel.kernel import Kernel, KernelOptions
    kernel = Kernel(KernelOptions(kernel=str(build)))
    loaded = 0

    async def main() -> None:
        nonlocal loaded
        try:
            for image in images:
                await kernel.init_module(image)
                loaded += 1
        except KernelError:
            pass
        await kernel.shutdown()
    trio.run(main)
    return kernel, loaded


def died_in(kernel) -> list[str]:
    """The kernel functions tasks died in, by the oopses' RIP lines."""
    import re
    return [m.group(1) for r in kernel.log.records() if (m := re.match(r"RIP: 0010:([\w.]+)\+", r.text))]


def assert_gets_past(flavour: str, name: str, functions: set[str]) -> None:
    """The real module NAME (after its dependencies) no longer dies in any of
    `functions`: it loads, or what stops it is another kernel function."""
    modules, build = corpus(flavour)
    images = with_dependencies(modules, name)
    kernel, loaded = load_in_order(build, images)
    assert loaded >= len(images) - 1                   # its dependencies load
    assert not set(died_in(kernel)) & functions
    assert loaded == len(images) or died_in(kernel)
