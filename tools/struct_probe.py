#!/usr/bin/env python3
"""Measure struct layouts of a real kernel with its own kbuild: the oracle
for the offsets kloader's emulation reads out of module memory.

kloader reads `struct crypto_alg`, `struct notifier_block`, `struct
pci_driver`, … out of real modules' data.  Their offsets are not a matter of
opinion: this compiles a probe object against the kernel's build tree (`make
-C COMMON O=BUILD M=TMP probe.o`, the way Debian's split headers build
out-of-tree modules) whose initialised data are the requested
`offsetof`/`sizeof` values, and reads them back from the object's symbols.

    python tools/struct_probe.py 'struct crypto_alg' cra_name cra_module

Tests call `probe(build_dir, headers, {name: expression})`, and skip when
the corpus or make/gcc is absent.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from elftools.elf.elffile import ELFFile                  # noqa: E402
from tools import kernel_corpus                            # noqa: E402


class Unavailable(Exception):
    """The build tree, make or the kernel's compiler is missing."""


def _source_tree(build: Path) -> Path:
    """Debian's arch build dir includes the -common tree by absolute path;
    find it beside the build dir (an unpacked corpus) or where it says."""
    makefile = (build / "Makefile").read_text()
    match = re.search(r"^include\s+(\S+)/Makefile", makefile, re.M)
    if match is None:
        return build                   # a full tree: build there directly
    named = Path(match.group(1))
    beside = build.parent / named.name
    return beside if beside.is_dir() else named


def probe(build: Path, headers: list[str], values: dict[str, str]) -> dict[str, int]:
    """{name: value of the C constant expression} compiled against `build`."""
    if shutil.which("make") is None:
        raise Unavailable("make is not on PATH")
    source = _source_tree(build)
    if not (source / "Makefile").is_file():
        raise Unavailable(f"no kernel source Makefile at {source}")
    with tempfile.TemporaryDirectory(prefix="kloader-probe-") as tmp:
        work = Path(tmp)
        lines = [f"#include <{h}>" for h in ["linux/module.h", *headers]]
        lines += [f"const unsigned long probe_{name} = {expr};" for name, expr in values.items()]
        lines.append('MODULE_LICENSE("GPL");')
        (work / "probe.c").write_text("\n".join(lines) + "\n")
        (work / "Makefile").write_text("obj-m := probe.o\n")
        run = subprocess.run(["make", "-s", "-C", str(source), f"O={build}", f"M={work}",
                              "probe.o"], capture_output=True, text=True)
        if run.returncode:
            raise Unavailable(f"kbuild failed: {run.stderr.strip()[-2000:]}")
        with open(work / "probe.o", "rb") as f:
            elf = ELFFile(f)
            out = {}
            for sym in elf.get_section_by_name(".symtab").iter_symbols():
                if sym.name.startswith("probe_") and sym["st_size"] == 8:
                    data = elf.get_section(sym["st_shndx"]).data()
                    out[sym.name[6:]] = int.from_bytes(data[sym["st_value"]:sym["st_value"] + 8],
                                                       "little")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("struct", help="e.g. 'struct crypto_alg'")
    parser.add_argument("members", nargs="*")
    parser.add_argument("--include", action="append", default=[])
    parser.add_argument("--flavour", default="6.1")
    args = parser.parse_args(argv)
    build = kernel_corpus.build_dir(kernel_corpus.fetch(args.flavour))
    values = {"sizeof": f"sizeof({args.struct})"}
    values.update({m.replace(".", "_"): f"offsetof({args.struct}, {m})" for m in args.members})
    for name, value in probe(build, args.include, values).items():
        print(f"{name} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
