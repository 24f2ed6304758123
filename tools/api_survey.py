#!/usr/bin/env python3
"""How far the corpus gets under a kernel profile: a development measure of
the kernel API's coverage (issue 10), until `kloader-survey` replaces it.

    python tools/api_survey.py [--flavour 6.1] [--json FILE] [--top 30]

One kernel, every module of the corpus loaded unforced in dependency order
(dependencies from the modules' own exports: Debian ships no modules.dep),
then all removed in reverse.  A module is *clean* when its init returned 0,
its exit ran, and nothing it did logged an oops, a not-emulated call or a
leak.  A module whose dependency failed is counted as `dep`.  Printed: the
summary, the not-emulated functions that stopped modules (most first), and
the failed modules that block the most others.
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kloaderd.elf.image import parse                      # noqa: E402
from kloaderd.errors import KernelError                   # noqa: E402
from kloaderd.kernel.kernel import Kernel, KernelOptions  # noqa: E402
from tools import kernel_corpus                            # noqa: E402

_NOT_EMULATED = re.compile(r"kernel function (\S+) is not emulated")
_TROUBLE = ("leaked", "not emulated", "invalid opcode", "BUG", "Oops", "general protection")


def dependency_order(modules: Path) -> tuple[list[str], dict[str, list[str]]]:
    provider: dict[str, str] = {}
    undefined: dict[str, tuple[str, ...]] = {}
    for path in sorted(modules.rglob("*.ko")):
        rel = str(path.relative_to(modules))
        image = parse(path.read_bytes())
        for export in image.exports:
            provider.setdefault(export.name, rel)
        undefined[rel] = image.undefined
    deps = {rel: sorted({provider[n] for n in names if n in provider and provider[n] != rel})
            for rel, names in undefined.items()}
    order: list[str] = []
    seen: set[str] = set()

    def visit(rel: str) -> None:
        if rel not in seen:
            seen.add(rel)
            for dep in deps[rel]:
                visit(dep)
            order.append(rel)
    for rel in sorted(deps):
        visit(rel)
    return order, deps


def _verdict(text: str) -> str:
    found = _NOT_EMULATED.search(text)
    return f"not-emulated:{found.group(1)}" if found else text[:100]


async def survey(modules: Path, build: Path, timeout: float = 10.0
                 ) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Every module's verdict; an init or exit still sleeping after
    `timeout` seconds is given up (and counted as such)."""
    order, deps = dependency_order(modules)
    kernel = Kernel(KernelOptions(kernel=str(build)))
    result: dict[str, str] = {}
    names: dict[str, str] = {}
    for rel in order:
        if any(result.get(dep) != "loaded" for dep in deps[rel]):
            result[rel] = "dep"
            continue
        result[rel] = f"init:still sleeping after {timeout:g} s"
        with trio.move_on_after(timeout):
            try:
                names[rel] = await kernel.init_module((modules / rel).read_bytes())
                result[rel] = "loaded"
            except KernelError as exc:
                result[rel] = "init:" + _verdict(exc.message)
    for rel in reversed(order):
        if result[rel] != "loaded":
            continue
        records = kernel.log.records()
        since = records[-1].seq if records else 0
        result[rel] = f"exit:still sleeping after {timeout:g} s"
        with trio.move_on_after(timeout):
            try:
                await kernel.delete_module(names[rel])
                result[rel] = "removed"
            except KernelError as exc:
                result[rel] = "exit:" + _verdict(exc.message)
        if result[rel] != "removed":
            continue
        trouble = [r.text for r in kernel.log.records(since) if any(t in r.text for t in _TROUBLE)]
        result[rel] = "exit:" + _verdict(trouble[0]) if trouble else "clean"
    return result, deps


def report(result: dict[str, str], deps: dict[str, list[str]], top: int) -> None:
    total = len(result)
    kinds = collections.Counter(v.split(":")[0] for v in result.values())
    print(f"{total} modules: clean {kinds['clean']} ({100 * kinds['clean'] / total:.1f} %), "
          f"init failed {kinds['init']}, exit unclean {kinds['exit']}, "
          f"dependency failed {kinds['dep']}")
    stopped = collections.Counter(v.split("not-emulated:")[1] for v in result.values()
                                  if "not-emulated:" in v)
    print("\nnot-emulated functions that stopped modules:")
    for name, count in stopped.most_common(top):
        print(f"{count:5d}  {name}")
    blame: collections.Counter[str] = collections.Counter()

    def roots(rel: str, found: set[str]) -> set[str]:
        for dep in deps[rel]:
            if result[dep] == "dep":
                roots(dep, found)
            elif result[dep].startswith("init"):
                found.add(dep)
        return found
    for rel, verdict in result.items():
        if verdict == "dep":
            blame.update(roots(rel, set()))
    print("\nfailed modules blocking the most others:")
    for rel, count in blame.most_common(top):
        print(f"{count:5d}  {Path(rel).name}: {result[rel][5:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flavour", default="6.1")
    parser.add_argument("--json", type=Path, help="write {module: verdict} here")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds an init or exit may sleep before it is given up")
    args = parser.parse_args(argv)
    root = kernel_corpus.fetch(args.flavour)
    result, deps = trio.run(survey, kernel_corpus.modules_dir(root), kernel_corpus.build_dir(root),
                            args.timeout)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True))
    report(result, deps, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
