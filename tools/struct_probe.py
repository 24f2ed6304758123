#!/usr/bin/env python3
"""Measure struct layouts of a real kernel with its own kbuild: the oracle
for the offsets kloader's emulation reads out of module memory.

kloader reads `struct file_operations`, `struct platform_driver`, … out of
real modules' data.  Their offsets are not a matter of opinion: this
compiles a probe object against the kernel's build tree (its kbuild, the way
a module is built) whose initialised data are the requested
`offsetof`/`sizeof` values, and reads them back from the object's symbols
(kloaderd/kernel/layouts.py does the measuring).

    python tools/struct_probe.py 'struct crypto_alg' cra_name cra_module
    python tools/struct_probe.py --write          # regenerate kloaderd/include/layouts/

`--write` measures every structure the emulation declares for both corpus
trees (6.1 and 6.12) and for kloader's own headers, and writes the tables
kloader ships.  Tests call `probe(build_dir, headers, {name: expression})`,
and skip when the corpus or make/gcc is absent.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kloaderd.kernel import layouts                         # noqa: E402
from kloaderd.kernel.profile import KernelProfile           # noqa: E402
from tools import kernel_corpus                             # noqa: E402

Unavailable = layouts.Unmeasurable
FLAVOURS = ("6.1", "6.12")


def probe(build: Path, headers: list[str], values: dict[str, str]) -> dict[str, int]:
    """{name: value of the C constant expression} compiled against `build`
    (raises Unavailable when kbuild cannot run or an expression is wrong)."""
    out = layouts.measure_values(headers, values, layouts.kbuild_compiler(KernelProfile(build)))
    if set(out) != set(values):
        raise Unavailable(f"did not compile: {sorted(set(values) - set(out))}")
    return out


def corpus_trees() -> list[Path]:
    """The build trees of every kernel unpacked in the corpus cache (each
    6.1 and 6.12 ABI fetched: tests take the newest, surveys may use others)."""
    for flavour in FLAVOURS:
        kernel_corpus.fetch(flavour)
    return sorted(kernel_corpus.build_dir(root) for root in kernel_corpus.cache_root().iterdir()
                  if (root / ".complete").exists())


def write_tables() -> None:
    """Measure every declared structure for the corpus trees and kloader's
    headers, and write kloaderd/include/layouts/."""
    from kloaderd.kernel.api import load_all
    load_all()
    wanted = list(layouts.STRUCTS.values())
    for old in layouts.TABLES.glob("*.json"):
        old.unlink()
    tables = {}
    for build in corpus_trees():
        profile = KernelProfile(build)
        structs = layouts.measure_with_kbuild(profile, wanted)
        digest = layouts.config_digest((profile.tree / ".config").read_text(errors="replace"))
        layouts.write_table(layouts.TABLES / f"{profile.release}.json", profile.release, digest, structs)
        print(f"{profile.release}: {sum(map(len, structs.values()))} values")
        tables[profile.version] = structs
    own = layouts.measure(wanted, layouts.kloader_compiler())
    # What kloader's headers do not declare is Linux 6.1's, as their comments say.
    base = tables[(6, 1)]
    merged = {name: {**base.get(name, {}), **own.get(name, {})} for name in base}
    layouts.write_table(layouts.TABLES / f"{layouts.KLOADER}.json", layouts.KLOADER, "", merged)
    print(f"kloader: {sum(map(len, own.values()))} values from its headers, the rest 6.1's")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("struct", nargs="?", help="e.g. 'struct crypto_alg'")
    parser.add_argument("members", nargs="*")
    parser.add_argument("--include", action="append", default=[])
    parser.add_argument("--flavour", default="6.1")
    parser.add_argument("--write", action="store_true",
                        help="regenerate kloader's tables (kloaderd/include/layouts/)")
    args = parser.parse_args(argv)
    if args.write:
        write_tables()
        return 0
    if args.struct is None:
        parser.error("give a struct, or --write")
    build = kernel_corpus.build_dir(kernel_corpus.fetch(args.flavour))
    values = {"sizeof": f"sizeof({args.struct})"}
    values.update({m.replace(".", "_"): f"offsetof({args.struct}, {m})" for m in args.members})
    for name, value in probe(build, args.include, values).items():
        print(f"{name} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
