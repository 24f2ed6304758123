"""`python -m bench --quick` — the command CI and people run — produces the
whole table and the JSON file.  Nothing here judges a figure: speed is the
table's business, not a test's."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from conftest import REPO

KEYS = {"bench", "metric", "median", "spread", "unit", "target", "ok"}


def test_quick_run_prints_the_table_and_writes_the_json(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr

    report = json.loads(out.read_text())
    assert report["quick"] is True
    assert report["machine"]["cpus"] >= 1 and report["machine"]["python"]
    rows = report["rows"]
    assert {r["bench"] for r in rows} == {"link", "cpu", "server", "scale"}
    for r in rows:
        assert KEYS <= r.keys(), r
        # A figure is measured, or the row says why it is not.
        assert (r["median"] is not None and math.isfinite(r["median"])) or r.get("note"), r

    scale = {r["metric"]: r for r in rows if r["bench"] == "scale"}
    assert all(r["median"] is not None for r in scale.values()), scale
    assert any(m.startswith("insmod latency ratio") and r["target"] == "<= 1.2"
               for m, r in scale.items())
    assert any(m.startswith("daemon RSS") for m in scale)
    assert any(m.startswith("modules() with") for m in scale)

    header, rule, *lines = proc.stdout.splitlines()[1:-1]
    assert header.split() == ["area", "metric", "median", "spread", "unit", "target", "result"]
    assert set(rule) <= {"-", " "}
    assert len(lines) == len(rows)
    for line, r in zip(lines, rows):
        assert line.startswith(r["bench"]) and r["metric"] in line
    assert proc.stdout.splitlines()[-1] == f"results written to {out}"
