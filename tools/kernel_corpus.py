#!/usr/bin/env python3
"""Fetch a Debian kernel's modules and build tree into a cache outside the tree.

Real modules are kloader's development corpus, but they are not ours to
commit (and are large), so tests, benchmarks and the survey find them here:

    python tools/kernel_corpus.py            # the 6.1 cloud kernel (the newest, once)
    python tools/kernel_corpus.py --flavour 6.12 --with-kmod

Each kernel lands in ``$KLOADER_CORPUS`` (default ``~/.cache/kloader/corpus``)
as ``RELEASE/`` holding the unpacked packages: ``lib/modules/RELEASE/`` (the
modules) and ``usr/src/linux-headers-RELEASE/`` (the build tree a kernel
profile reads).  A ``.complete`` marker makes a second call free: without
``--abi``, the newest kernel of the flavour already complete in the cache is
used, and the package lists are asked for the newest only when there is none
(``apt-cache`` costs ~0.6 s of CPU, and the test suite asks for a corpus ~30
times a run).  ``--abi`` fetches another.

Only Debian's own package tools are used (``apt-get download``,
``dpkg-deb -x``), so this works wherever the machine reaches Debian's
registry and needs no root install.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAVOURS = {
    # flavour -> (image package pattern, kbuild package pattern)
    "6.1": (r"^linux-image-(6\.1\.0-\d+)-cloud-amd64$", "linux-kbuild-6.1"),
    "6.12": (r"^linux-image-(6\.12\.\d+\+deb\d+)-cloud-amd64$", "linux-kbuild-{abi}"),
}


def cache_root() -> Path:
    return Path(os.environ.get("KLOADER_CORPUS", Path.home() / ".cache/kloader/corpus"))


class Unavailable(Exception):
    """The corpus cannot be had here: tests skip with this message."""


def _run(*argv: str, cwd: Path | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise Unavailable(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _abi_key(abi: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", abi)]


def _cached_abi(flavour: str, wanted: list[str]) -> str | None:
    """The newest ABI of `flavour` whose packages (and `wanted` extras) are complete in the cache."""
    pattern = FLAVOURS[flavour][0]
    found = []
    for marker in cache_root().glob("*-cloud-amd64/.complete"):
        m = re.match(pattern, f"linux-image-{marker.parent.name}")
        if m and {*packages(m.group(1), flavour), *wanted} <= set(marker.read_text().split()):
            found.append(m.group(1))
    return max(found, key=_abi_key, default=None)


def _newest_abi(flavour: str) -> str:
    pattern, _ = FLAVOURS[flavour]
    if shutil.which("apt-cache") is None:
        raise Unavailable("apt-cache is not installed (not a Debian machine)")
    names = _run("apt-cache", "pkgnames", "linux-image-").split()
    abis = [m.group(1) for n in names if (m := re.match(pattern, n))]
    if not abis:
        raise Unavailable(f"no {flavour} cloud kernel in the package lists (run apt-get update)")
    return max(abis, key=_abi_key)


def packages(abi: str, flavour: str) -> list[str]:
    release = f"{abi}-cloud-amd64"
    kbuild = FLAVOURS[flavour][1].format(abi=abi)
    return [f"linux-image-{release}", f"linux-headers-{release}", f"linux-headers-{abi}-common", kbuild]


def fetch(flavour: str = "6.1", abi: str | None = None, with_kmod: bool = False) -> Path:
    """Return the unpacked root of a kernel's packages, downloading once."""
    extras = ["kmod"] if with_kmod else []
    abi = (abi or os.environ.get("KLOADER_CORPUS_ABI") or _cached_abi(flavour, extras)
           or _newest_abi(flavour))
    release = f"{abi}-cloud-amd64"
    root = cache_root() / release
    wanted = packages(abi, flavour) + extras
    marker = root / ".complete"
    if marker.exists() and set(wanted) <= set(marker.read_text().split()):
        return root
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kloader-corpus-") as tmp:
        _run("apt-get", "download", *wanted, cwd=Path(tmp))
        for deb in sorted(Path(tmp).glob("*.deb")):
            _run("dpkg-deb", "-x", str(deb), str(root))
    marker.write_text("\n".join(wanted) + "\n")
    return root


def modules_dir(root: Path) -> Path:
    (tree,) = (root / "lib/modules").iterdir()
    return tree


def build_dir(root: Path) -> Path:
    return next((root / "usr/src").glob("linux-headers-*-cloud-amd64"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flavour", choices=sorted(FLAVOURS), default="6.1")
    ap.add_argument("--abi", help="a precise ABI, e.g. 6.1.0-57 (default: the newest cached, else the newest in the package lists)")
    ap.add_argument("--with-kmod", action="store_true", help="also unpack kmod's depmod/modprobe/modinfo")
    args = ap.parse_args(argv)
    try:
        root = fetch(args.flavour, args.abi, args.with_kmod)
    except Unavailable as e:
        print(f"kernel_corpus: {e}", file=sys.stderr)
        return 1
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
