#!/usr/bin/env python3
"""Rank the core kernel's exports by how many modules of a corpus need them.

Which kernel function kloader should emulate next is decided by evidence
(DESIGN.md §9): the number of real modules that link against it.  Only
symbols `Module.symvers` attributes to `vmlinux` count (a symbol another
module exports is that module's business), and each module counts once per
symbol.

    python tools/symbol_ranking.py [--flavour 6.1] [--top 60] [--emulated]

`--emulated` marks which of them kloader implements today.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kloaderd.elf.image import parse                      # noqa: E402
from tools import kernel_corpus                            # noqa: E402


def vmlinux_exports(symvers: Path) -> set[str]:
    """Names Module.symvers says the core kernel exports (CRC, name, module, kind, ns)."""
    names = set()
    for line in symvers.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[2] == "vmlinux":
            names.add(fields[1])
    return names


def rank(root: Path) -> tuple[Counter[str], int]:
    """(modules needing each core-kernel symbol, number of modules)."""
    core = vmlinux_exports(kernel_corpus.build_dir(root) / "Module.symvers")
    counts: Counter[str] = Counter()
    modules = sorted(kernel_corpus.modules_dir(root).rglob("*.ko"))
    for path in modules:
        image = parse(path.read_bytes())
        counts.update({name for name in image.undefined if name in core})
    return counts, len(modules)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flavour", default="6.1")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--emulated", action="store_true",
                        help="mark the symbols kloader implements")
    args = parser.parse_args(argv)
    counts, total = rank(kernel_corpus.fetch(args.flavour))
    emulated: set[str] = set()
    if args.emulated:
        from kloaderd.kernel import api
        api.load_all()
        emulated = set(api.FUNCTIONS) | set(api.OBJECTS)
    print(f"{total} modules, {len(counts)} distinct core-kernel symbols")
    for place, (name, n) in enumerate(counts.most_common(args.top), 1):
        mark = " *" if name in emulated else ""
        print(f"{place:4d} {n:5d} {100 * n / total:5.1f}%  {name}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
