"""`python -m bench --quick` — the command CI and people run — produces the
whole table and the JSON file; `bench.common`'s floors and ratios judge what
they say they judge.  Nothing here judges a figure: speed is the table's
business, not a test's."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from conftest import REPO

from bench.common import interleaved, ratio_row, row, table

KEYS = {"bench", "metric", "median", "spread", "unit", "floor", "floor_name", "ratio",
        "ratio_spread", "target", "ok"}


@pytest.mark.slow          # every benchmark area, small counts: about a minute, more on a busy host
def test_quick_run_prints_the_table_and_writes_the_json(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr

    report = json.loads(out.read_text())
    assert report["quick"] is True
    assert report["machine"]["cpus"] >= 1 and report["machine"]["python"]
    rows = report["rows"]
    assert {r["bench"] for r in rows} == {"link", "cpu", "server", "scale", "kmod", "survey"}
    for r in rows:
        assert KEYS <= r.keys(), r
        # A figure is measured, or the row says why it is not.
        assert (r["median"] is not None and math.isfinite(r["median"])) or r.get("note"), r

    scale = {r["metric"]: r for r in rows if r["bench"] == "scale"}
    assert all(r["median"] is not None for r in scale.values()), scale
    assert any("insmod" in m and r["target"].startswith("<= 1.2") for m, r in scale.items())
    assert any(m.startswith("daemon RSS") for m in scale)
    assert any(m.startswith("modules() with") for m in scale)

    header, rule, *lines = proc.stdout.splitlines()[1:-1]
    assert header.split() == ["area", "metric", "median", "spread", "unit", "floor", "ratio",
                              "ratio", "spread", "target", "result"]
    assert set(rule) <= {"-", " "}
    assert len(lines) == len(rows)
    for line, r in zip(lines, rows):
        assert line.startswith(r["bench"]) and r["metric"] in line
    assert proc.stdout.splitlines()[-1] == f"results written to {out}"


def test_interleaved_takes_one_sample_of_each_per_round_in_rotating_order():
    calls: list[str] = []

    def measure(name: str, value: float):
        def sample() -> float:
            calls.append(name)
            return value
        return sample

    samples = interleaved(4, a=measure("a", 1.0), b=measure("b", 2.0), c=measure("c", 3.0))
    assert samples == {"a": [1.0] * 4, "b": [2.0] * 4, "c": [3.0] * 4}
    warm_up, rounds = calls[:3], calls[3:]
    assert warm_up == ["a", "b", "c"]
    assert [rounds[i:i + 3] for i in range(0, 12, 3)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]


def test_a_ratio_row_is_judged_on_the_ratio_not_the_absolute_figure():
    # A loaded machine: the figure is slow in absolute terms, but so is its floor.
    slow = [10.0, 12.0, 30.0, 11.0]
    floor = [9.0, 10.0, 25.0, 10.0]
    judged = ratio_row("round trip", slow, floor, "µs", 1.25, floor_name="echo")
    assert judged["ok"] is True and judged["target"] == "<= 1.25×"
    assert judged["median"] == 11.5 and judged["floor"] == 10.0
    assert 1.1 <= judged["ratio"] <= 1.2        # median of the per-round ratios
    assert judged["ratio_spread"] > 0
    assert ratio_row("round trip", [20.0] * 4, floor, "µs", 1.25, floor_name="echo")["ok"] is False
    rate = ratio_row("pairs", [85.0], [100.0], "pairs/s", 0.9, floor_name="1/(2·RTT)",
                     higher_is_better=True)
    assert rate["ok"] is False and rate["target"] == ">= 0.9×"
    printed = table([judged, row("absolute", [1.0, 2.0, 3.0], "ms", 5)])
    assert "round trip vs echo" in printed and "<= 1.25×" in printed and "<= 5 " in printed + " "
