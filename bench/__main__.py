"""`python -m bench [--quick] [--json FILE] [--markdown] [--only NAME ...]`: every
benchmark, one table, one JSON file.

Each area has its own module with `run(quick) -> rows` (made with
`bench.common`'s `row` or, where a floor exists, `ratio_row`; see
docs/performance.md): `bench_link` (parse
and link), `bench_cpu` (guest code and kernel calls), `bench_server` (the
socket and the client), `bench_scale` (costs as modules accumulate, memory),
`bench_kmod` (kdepmod against kmod's depmod on the real-kernel corpus),
`bench_survey` (kloader-survey over the whole real-kernel corpus).
A module that is absent or fails costs its own rows, which say so — never
the whole report.  `--quick` (CI) runs small counts: the table and the JSON
are complete, but its figures are too few to judge, so the exit status says
nothing about targets; a full run exits 1 if a target was missed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

from bench.common import NO_FLOOR, REPO, Row, machine, table, unmeasured

BENCHMARKS = ("link", "cpu", "server", "scale", "kmod", "survey")
DEFAULT_JSON = REPO / "bench" / "results.json"


def run_one(name: str, quick: bool) -> list[Row]:
    """The rows of `bench_NAME`, or one row saying why there are none."""
    module_name = f"bench.bench_{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return [unmeasured(f"{name} benchmarks", f"missing: no {module_name}")]
    try:
        return module.run(quick)
    except Exception as exc:
        traceback.print_exc()
        return [unmeasured(f"{name} benchmarks", f"failed: {type(exc).__name__}: {exc}")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small counts, few repetitions (CI); targets are not judged")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="FILE",
                   help=f"where to write the results (default: {DEFAULT_JSON.relative_to(REPO)})")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS),
                   metavar="NAME", help=f"run only these ({', '.join(BENCHMARKS)})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    rows: list[Row] = []
    for name in args.only:
        print(f"bench: {name}...", file=sys.stderr, flush=True)
        rows += [{"bench": name, **NO_FLOOR, **r} for r in run_one(name, args.quick)]
    report = {"machine": machine(), "quick": args.quick,
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
              "seconds": round(time.time() - started, 1), "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    m = report["machine"]
    print(f"{m['cpu']} ({m['cpus']} CPUs), {m['system']}, Python {m['python']}, "
          f"Unicorn {m['unicorn']}{', quick run' if args.quick else ''}")
    print(table(rows, markdown=args.markdown))
    print(f"results written to {args.json}")
    missed = [r for r in rows if r["ok"] is False]
    return 1 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
