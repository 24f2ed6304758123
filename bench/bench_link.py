"""How fast kloader reads and links modules.

Parse + layout + link is pure computation on one thread, so it is measured
in CPU time (`time.process_time`): "relocations per second on one core",
which other processes on a busy machine do not change the way they change
wall time.  Figures:

* each built fixture (`fixtures/*.ko`): parse + layout + link, ms, target
  <= 1 ms for a hello-sized module;
* a gcc-compiled module with ~80,000 relocations of every common kind, and
  the biggest module of the Debian 6.1 corpus when its cache is present
  (`python tools/kernel_corpus.py`; nothing is downloaded here): relocations
  per second *including parse and layout*, target >= 1,000,000; and the rate
  of `link` alone, reported.

    python -m bench.bench_link [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import CACHE, Row, row, table, timed, unmeasured
from kloaderd.config import MODULES_VADDR
from kloaderd.elf.image import Image, parse
from kloaderd.errors import KernelError
from kloaderd.link import layout_sections, link

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
INIT_BASE = MODULES_VADDR + (256 << 20)
HELLO_SIZED = 64 * 1024          # bytes of ELF at most, for the 1 ms target
FUNCTIONS = 4650                 # of the generated module: ~17 relocations each, ~80,000 in all
RATE_TARGET = 1_000_000          # relocations/s, parse + layout + link
CPU = time.process_time


def externals_for(image: Image) -> dict[str, int]:
    return {name: 0xFFFFFFFF81000000 + 0x40 * i for i, name in enumerate(sorted(set(image.undefined)))}


def generated_source(functions: int) -> str:
    """A module whose size comes from relocations of every common kind."""
    lines = ["struct module { int state; void *list[2]; char name[56]; char pad[128]; };",
             "extern int kernel_fn(int); extern int other_fn(int, int); extern unsigned long jiffies;",
             f"int slots[{functions}];"]
    for i in range(functions):
        terms = " + ".join(f"other_fn(slots[{(i * k) % functions}], x)" for k in range(1, 8))
        lines.append(f"int gen_{i}(int x) {{ return kernel_fn(x) + {terms} + (int)jiffies; }}")
    lines.append("int (*const gen_table[])(int) = {" + ", ".join(f"gen_{i}" for i in range(functions)) + "};")
    lines.append('const char *const gen_names[] = {' + ", ".join(f'"n{i}"' for i in range(0, functions, 3)) + "};")
    lines.append('struct module __this_module __attribute__((section(".gnu.linkonce.this_module"))) = { .name = "bigmod" };')
    lines.append('static const char modname[] __attribute__((section(".modinfo"), used)) = "name=bigmod";')
    return "\n".join(lines) + "\n"


def build_generated(functions: int) -> bytes:
    """gcc -O2 takes seconds on this source, so the object is kept in the temp
    directory (bench.common.CACHE) under the hash of what produced it and rebuilt only when that changes."""
    source = generated_source(functions)
    cmd = ["gcc", "-c", "-mcmodel=kernel", "-fno-pic", "-mno-red-zone", "-ffreestanding", "-O2",
           "-fno-asynchronous-unwind-tables"]
    version = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([source, version, *cmd]).encode()).hexdigest()[:16]
    cached = CACHE / f"bigmod-{key}.o"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="kloader-bench-") as tmp:
            src, obj = Path(tmp) / "bigmod.c", Path(tmp) / "bigmod.o"
            src.write_text(source)
            subprocess.run([*cmd, str(src), "-o", str(obj)], check=True)
            obj.replace(cached)
    return cached.read_bytes()


def corpus_module() -> tuple[str, bytes] | str:
    """(label, image) of the biggest module of a cached 6.1 corpus, or why there is none."""
    from tools import kernel_corpus

    for root in sorted(kernel_corpus.cache_root().glob("6.1.*/")):
        if (root / ".complete").exists():
            biggest = max(kernel_corpus.modules_dir(root).rglob("*.ko"), key=lambda p: p.stat().st_size)
            return f"{biggest.name} (Debian {root.name})", biggest.read_bytes()
    return f"no 6.1 corpus in {kernel_corpus.cache_root()}: python tools/kernel_corpus.py"


def bench_module(label: str, data: bytes, repeats: int) -> list[Row]:
    image = parse(data)
    externals = externals_for(image)
    layout = layout_sections(image)

    def whole() -> None:
        im = parse(data)
        link(im, layout_sections(im), MODULES_VADDR, INIT_BASE, externals)

    whole()                                  # warm up
    ms = timed(whole, repeats, clock=CPU)
    relocs = link(image, layout, MODULES_VADDR, INIT_BASE, externals).relocations
    if relocs < 10_000:
        return [row(f"parse+link {label} ({relocs} relocs)", ms, "CPU ms",
                    1.0 if len(data) <= HELLO_SIZED else None)]
    link_s = timed(lambda: link(image, layout, MODULES_VADDR, INIT_BASE, externals), repeats,
                   scale=1.0, clock=CPU)
    return [row(f"parse+layout+link {label}, {relocs:,} relocs", [relocs / t * 1e3 for t in ms],
                "relocs/CPU-s", RATE_TARGET, higher_is_better=True),
            row(f"link alone {label}", [relocs / t for t in link_s], "relocs/CPU-s")]


def run(quick: bool) -> list[Row]:
    repeats = 5 if quick else 25
    rows: list[Row] = []
    for ko in sorted(FIXTURES.glob("*.ko")):
        try:
            rows += bench_module(ko.name, ko.read_bytes(), repeats * 4)
        except KernelError:
            continue            # fixtures that exist to be refused (e.g. common.ko)
    if shutil.which("gcc"):
        rows += bench_module("generated bigmod.o", build_generated(FUNCTIONS), repeats)
    else:
        rows.append(unmeasured("parse+layout+link, generated module", "gcc is not installed"))
    found = corpus_module()
    if isinstance(found, str):
        rows.append(unmeasured("parse+layout+link, biggest 6.1 corpus module", found))
    else:
        rows += bench_module(*found, repeats)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    print(table(run(parser.parse_args().quick)))
