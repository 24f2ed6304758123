#!/usr/bin/env python3
"""kdepmod against kmod's depmod on a distribution kernel's module tree.

    python tools/depmod_corpus.py [--flavour 6.1|6.12] [--runs N]

Mirrors the corpus's `lib/modules/RELEASE` twice (hard links, or symbolic
ones across file systems) in a temporary directory, runs kmod's depmod on one
and `kdepmod` on the other with the same arguments (`-E Module.symvers -e`),
and compares every file they write byte for byte and their warnings line for
line (program name aside).  Then it times both, alternating, and prints the
medians and the ratio.  Exit status 1 if any file differs.

kmod's depmod is the installed one (`/sbin/depmod`, Debian package kmod) or
else the one in the corpus (`--with-kmod`), run under the name `depmod`.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.kernel_corpus import Unavailable, build_dir, fetch, modules_dir  # noqa: E402

OUTPUTS = ("modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin", "modules.softdep",
           "modules.symbols", "modules.symbols.bin", "modules.builtin.bin", "modules.builtin.alias.bin",
           "modules.devname")


@functools.lru_cache(maxsize=None)
def kmod_command(name: str, corpus_root: Path | None = None) -> list[str]:
    """argv for kmod's `name` (depmod, modprobe): installed, else the corpus's kmod binary.

    Cached: finding the corpus asks apt for the newest kernel, which takes seconds."""
    for directory in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        path = Path(directory) / name
        if path.exists() and os.access(path, os.X_OK):
            return [str(path)]
    if corpus_root is None:
        try:
            corpus_root = fetch(with_kmod=True)
        except Unavailable as exc:
            raise Unavailable(f"kmod's {name} is not installed (apt-get install kmod) and the corpus "
                              f"cannot provide it: {exc}") from None
    kmod = corpus_root / "bin" / "kmod"
    if not kmod.exists():
        raise Unavailable(f"kmod's {name} is not installed and {kmod} is missing "
                          f"(python tools/kernel_corpus.py --with-kmod)")
    # kmod picks its personality from argv[0]; `exec -a` gives it the name.
    return ["bash", "-c", f'exec -a {name} "$0" "$@"', str(kmod)]



def kdepmod_command() -> list[str]:
    return [sys.executable, "-m", "kloaderd.kmod.depmod"]


def mirror(tree: Path, base: Path) -> Path:
    """BASE/lib/modules/RELEASE holding `tree`'s files as links; returns that directory."""
    dest = base / "lib" / "modules" / tree.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(tree, dest, copy_function=os.link, symlinks=True)
    except OSError:
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(tree, dest, copy_function=os.symlink, symlinks=True)
    for name in OUTPUTS:
        (dest / name).unlink(missing_ok=True)
    return dest


def run(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    return time.perf_counter() - start, done


def compare(flavour: str = "6.1", runs: int = 5, out=sys.stdout) -> dict:
    """Both depmods on the corpus: the differing files, the timings, the ratio."""
    root = fetch(flavour, with_kmod=True)
    tree = modules_dir(root)
    symvers = build_dir(root) / "Module.symvers"
    depmod = kmod_command("depmod", root)
    with tempfile.TemporaryDirectory(prefix="kloader-depmod-") as tmp:
        a, b = Path(tmp) / "kmod", Path(tmp) / "kloader"
        da, db = mirror(tree, a), mirror(tree, b)
        args = ["-E", str(symvers), "-e", tree.name]
        _, ra = run([*depmod, "-b", str(a), *args])
        _, rb = run([*kdepmod_command(), "-b", str(b), *args])
        differ = [n for n in OUTPUTS if not (da / n).exists() or not (db / n).exists()
                  or (da / n).read_bytes() != (db / n).read_bytes()]
        warn_a = [line.split(": ", 1)[-1].replace(str(a), "BASE") for line in ra.stderr.splitlines()]
        warn_b = [line.split(": ", 1)[-1].replace(str(b), "BASE") for line in rb.stderr.splitlines()]
        kmod_times, ours = [], []
        for _ in range(runs):
            kmod_times.append(run([*depmod, "-b", str(a), *args])[0])
            ours.append(run([*kdepmod_command(), "-b", str(b), *args])[0])
        modules = sum(1 for line in (da / "modules.dep").read_text().splitlines() if line)
    result = {
        "release": tree.name, "modules": modules, "files": len(OUTPUTS), "differ": differ,
        "status": (ra.returncode, rb.returncode), "warnings_equal": warn_a == warn_b,
        "warnings": len(warn_a), "depmod_s": statistics.median(kmod_times),
        "kdepmod_s": statistics.median(ours),
    }
    result["ratio"] = result["kdepmod_s"] / result["depmod_s"]
    print(f"{result['release']}: {modules} modules, {len(OUTPUTS) - len(differ)}/{len(OUTPUTS)} files "
          f"byte-identical{' (differ: ' + ', '.join(differ) + ')' if differ else ''}, "
          f"{result['warnings']} warnings {'identical' if result['warnings_equal'] else 'DIFFERENT'}, "
          f"exit status {ra.returncode}/{rb.returncode}", file=out)
    print(f"depmod {result['depmod_s']:.3f} s, kdepmod {result['kdepmod_s']:.3f} s "
          f"(median of {runs}): ratio {result['ratio']:.2f}", file=out)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--flavour", default="6.1", choices=("6.1", "6.12"))
    p.add_argument("--runs", type=int, default=5, help="timed runs of each (default 5)")
    args = p.parse_args(argv)
    try:
        result = compare(args.flavour, args.runs)
    except Unavailable as exc:
        print(f"depmod_corpus: {exc}", file=sys.stderr)
        return 2
    ok = not result["differ"] and result["warnings_equal"] and result["status"][0] == result["status"][1]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
