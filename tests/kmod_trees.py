"""Module trees for the depmod/modprobe tests: fixtures laid out as a distribution's.

`fixture_tree(base, variant)` makes BASE/lib/modules/RELEASE from
`fixtures/*.ko` and returns that directory.  The "full" variant has what
depmod's order and priority rules act on: a `modules.order` naming some
modules out of alphabetical order (the rest keep depmod's hash order), a
module under `updates/` that shadows one in `kernel/`, an xz-compressed
module, `modules.builtin` and `modules.builtin.modinfo` with aliases.
"""

from __future__ import annotations

import lzma
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tools.depmod_corpus import OUTPUTS, kmod_command
from tools.kernel_corpus import Unavailable

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
RELEASE = "6.6.0-kloader"
BROKEN = {"badmagic"}            # loads nowhere; depmod reads it like any other
FS = {"fsalias"}


def fixture_tree(base: Path, variant: str = "full", release: str = RELEASE) -> Path:
    tree = base / "lib" / "modules" / release
    for ko in sorted(FIXTURES.glob("*.ko")):
        sub = "kernel/fs" if ko.stem in FS else "kernel/misc"
        (tree / sub).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ko, tree / sub / ko.name)
    if variant == "full":
        (tree / "updates").mkdir()
        shutil.copyfile(FIXTURES / "hello.ko", tree / "updates" / "hello.ko")
        (tree / "kernel/extra").mkdir()
        (tree / "kernel/extra/hello-xz.ko.xz").write_bytes(
            lzma.compress((FIXTURES / "hello.ko").read_bytes(), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32))
        order = ["kernel/misc/user.ko", "kernel/misc/exporter.ko", "kernel/fs/fsalias.ko",
                 "kernel/misc/hello.ko", "kernel/extra/hello-xz.ko", "kernel/misc/nosuch.ko",
                 "kernel/misc/requester.ko", "kernel/misc/sleepy_user.ko", "kernel/misc/sleepy.ko"]
        (tree / "modules.order").write_text("".join(line + "\n" for line in order))
        (tree / "modules.builtin").write_text("kernel/fs/ext4/ext4.ko\nkernel/crypto/crc32c-generic.ko\n")
        (tree / "modules.builtin.modinfo").write_bytes(
            b"ext4.alias=fs-ext4\0ext4.license=GPL\0ext4.alias=ext3\0crc32c_generic.alias=crypto-crc32c\0"
            b"crc32c_generic.description=CRC32c\0")
    return tree


def symvers(path: Path, wrong: str = "_printk") -> Path:
    """A Module.symvers of kloader's kernel exports; `wrong`'s CRC complemented (a mismatch)."""
    from kloaderd.kernel import api
    api.load_all()
    lines = []
    for name in sorted({*api.FUNCTIONS, *api.OBJECTS}):
        crc = api.symbol_crc(name) ^ (0xFFFFFFFF if name == wrong else 0)
        gpl = (api.FUNCTIONS.get(name) or api.OBJECTS[name]).gpl
        lines.append(f"0x{crc:08x}\t{name}\tvmlinux\tEXPORT_SYMBOL{'_GPL' if gpl else ''}\t\n")
    path.write_text("".join(lines))
    return path


def kmod(name: str) -> list[str]:
    """kmod's own tool, or skip the test saying how to get it."""
    try:
        return list(kmod_command(name))
    except Unavailable as exc:
        pytest.skip(str(exc))


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, **kwargs)


def outputs(tree: Path) -> dict[str, bytes]:
    return {name: (tree / name).read_bytes() for name in OUTPUTS if (tree / name).exists()}


def normalised(stderr: str, base: Path) -> list[str]:
    """Warnings without the program's name and with the tree's base path as BASE."""
    return [line.split(": ", 1)[-1].replace(os.fspath(base), "BASE") for line in stderr.splitlines()]
