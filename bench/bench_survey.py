"""kloader-survey over a whole distribution kernel's modules (issue 10's row).

The command as a user runs it, `kloader-survey TREE --kernel BUILD --jobs 2
--json FILE`, on the cached Debian 6.1 cloud corpus (1,121 modules): its
wall time against the target (<= 120 s on a 2-core machine), the CPU time
of the survey and its workers (user + sys, which other load on the machine
does not inflate, unlike the wall time), and the share of modules that load
and unload cleanly (the issue's >= 50 %).  One survey is one sample: it
takes tens of seconds.  The load average before and after goes in the row's
note, since a busy machine stretches the wall time.  `--quick` skips it
(a whole survey is not a CI smoke test); without the corpus the rows say
how to get it.

    python -m bench --only survey
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Row, row, unmeasured
from tools.kernel_corpus import build_dir, cache_root, modules_dir

TARGET_SECONDS = 120.0
TARGET_CLEAN = 50.0
JOBS = 2
METRIC = f"kloader-survey of the 6.1 corpus, --jobs {JOBS}"


def _cached_root() -> Path | None:
    """The 6.1 corpus named by KLOADER_CORPUS_ABI, else the first one cached."""
    abi = os.environ.get("KLOADER_CORPUS_ABI")
    pattern = f"{abi}-cloud-amd64/.complete" if abi else "6.1.*/.complete"
    return next((marker.parent for marker in sorted(cache_root().glob(pattern))), None)


def _survey_command() -> list[str]:
    beside = Path(sys.executable).parent / "kloader-survey"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "kloaderd.survey"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run(quick: bool) -> list[Row]:
    if quick:
        return [unmeasured(METRIC, "skipped with --quick: a whole survey takes tens of seconds")]
    root = _cached_root()
    if root is None:
        return [unmeasured(METRIC, "corpus not cached: python tools/kernel_corpus.py")]
    tree, build = modules_dir(root), build_dir(root)
    with tempfile.TemporaryDirectory(prefix="kloader-bench-survey-") as tmp:
        out = Path(tmp) / "survey.json"
        load_before, cpu_before = _load(), _children_cpu()
        started = time.perf_counter()
        subprocess.run([*_survey_command(), str(tree), "--kernel", str(build), "--jobs", str(JOBS),
                        "--json", str(out)], check=True, capture_output=True)
        wall = time.perf_counter() - started
        cpu = _children_cpu() - cpu_before
        verdicts = json.loads(out.read_text())
    clean = sum(v["class"] == "clean" for v in verdicts.values())
    note = f"{tree.name}, {len(verdicts)} modules; load average {load_before} before, {_load()} after"
    return [
        {**row(f"{METRIC}: wall time", [wall], "s", TARGET_SECONDS), "note": note},
        {**row(f"{METRIC}: CPU time (user+sys, workers included)", [cpu], "s"), "note": note},
        row(f"{METRIC}: clean ({clean} of {len(verdicts)})", [100 * clean / len(verdicts)], "%",
            TARGET_CLEAN, higher_is_better=True),
    ]


if __name__ == "__main__":
    from bench.common import table
    print(table(run(False)))
