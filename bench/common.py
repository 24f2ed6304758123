"""What the benchmarks share: rows, floors and ratios, the table, fixture
images, a daemon.

A benchmark's `run(quick)` returns rows.  Every row carries the median of
repeated samples (one noisy run must not decide a figure) and, as its spread,
the interquartile range (`summarize`), with the unit and the target it is
judged against.  There are two kinds:

* `row(metric, samples, unit, target)` — judged on the absolute figure.  Use
  it only where nothing on the machine sets a natural floor.
* `ratio_row(metric, samples, floor, unit, target, floor_name=...)` — judged
  on the ratio of the figure to a *floor* measured in the same run (a raw
  `emu_start` for guest entry, a minimal trio msgpack echo for a round trip,
  the 0-modules case for an N-modules case).  The absolute figures are still
  shown, but the verdict is the ratio's, so it does not change with the
  machine's load: a busy host slows the figure and its floor alike.

To make the two sample lists see the same load, measure them *interleaved*:
`interleaved(rounds, figure=..., floor=...)` (or `ainterleaved` under trio)
calls each measure once a round, in an order that rotates every round, and
returns the samples paired by round; `ratio_row` then judges the median of
the per-round ratios, and its spread is their interquartile range.  A
measure is any callable returning one sample; `timing(fn)` makes one that
times a call of `fn`.  Never measure a figure and its floor in two
sequential runs: that is what made the 1,000:0 insmod ratio read 2.3 on a
busy host while interleaved measurement said 0.98.

Every row has the keys `metric, median, spread, unit, floor, floor_name,
ratio, ratio_spread, target, ok` (`floor…`/`ratio…` are None for absolute
rows).  `ok` is None where there is nothing to judge (a figure reported, not
targeted) or the figure could not be measured.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"

Row = dict[str, Any]
Measure = Callable[[], float]
NO_FLOOR: Row = {"floor": None, "floor_name": None, "ratio": None, "ratio_spread": None}
"""The ratio keys of a row judged on its absolute figure."""


def summarize(samples: list[float]) -> tuple[float, float]:
    """(median, interquartile range) of the samples."""
    median = statistics.median(samples)
    if len(samples) < 2:
        return median, 0.0
    q1, _, q3 = statistics.quantiles(samples, n=4)
    return median, q3 - q1


def _judge(value: float, target: float | None, higher_is_better: bool,
           suffix: str = "") -> tuple[str, bool | None]:
    if target is None:
        return "", None
    ok = value >= target if higher_is_better else value <= target
    shown = f"{target:,.0f}" if target >= 1000 and target == int(target) else f"{target:g}"
    return f"{'>=' if higher_is_better else '<='} {shown}{suffix}", ok


def row(metric: str, samples: list[float], unit: str, target: float | None = None, *,
        higher_is_better: bool = False) -> Row:
    """One figure judged on its absolute value against `target` (if any)."""
    median, spread = summarize(samples)
    shown, ok = _judge(median, target, higher_is_better)
    return {"metric": metric, "median": median, "spread": spread, "unit": unit, **NO_FLOOR,
            "target": shown, "ok": ok}


def ratio_row(metric: str, samples: list[float], floor: list[float], unit: str,
              target: float | None = None, *, floor_name: str,
              higher_is_better: bool = False) -> Row:
    """One figure judged on its ratio to a floor measured in the same run.

    `samples` and `floor` are in the same unit.  When they are paired (as
    `interleaved` returns them: the same length, one of each per round) the
    ratio is the median of the per-round ratios and its spread their IQR;
    otherwise it is the ratio of the medians (spread not known: 0).
    `target` applies to the ratio, e.g. 1.25 for "within 1.25× the floor"
    or, with `higher_is_better`, 0.9 for "at least 90 % of the floor".
    """
    median, spread = summarize(samples)
    floor_median, floor_spread = summarize(floor)
    if len(samples) == len(floor) and all(floor):
        ratio, ratio_spread = summarize([s / f for s, f in zip(samples, floor)])
    else:
        ratio, ratio_spread = median / floor_median, 0.0
    shown, ok = _judge(ratio, target, higher_is_better, "×")
    return {"metric": metric, "median": median, "spread": spread, "unit": unit,
            "floor": floor_median, "floor_name": floor_name, "ratio": ratio,
            "ratio_spread": ratio_spread, "target": shown, "ok": ok}


def timing(fn: Callable[[], Any], scale: float = 1e3,
           clock: Callable[[], float] = time.perf_counter) -> Measure:
    """A measure that times one call of `fn`: milliseconds unless `scale` says
    otherwise (1e6 for µs); wall time unless `clock` says otherwise
    (`time.process_time` for pure computation, as the link figures)."""
    def measure() -> float:
        start = clock()
        fn()
        return (clock() - start) * scale
    return measure


def _rotations(rounds: int, names: list[str]) -> Iterator[list[str]]:
    for r in range(rounds):
        k = r % len(names)
        yield names[k:] + names[:k]


def interleaved(rounds: int, **measures: Measure) -> dict[str, list[float]]:
    """`rounds` samples of each measure, taken one of each per round in an
    order that rotates every round, so that load, frequency scaling and
    caches weigh on all of them alike.  Sample i of every list comes from
    round i: pass two of them to `ratio_row` as a pair.  Each measure is
    called once first, unrecorded, to warm up."""
    samples: dict[str, list[float]] = {name: [] for name in measures}
    for measure in measures.values():
        measure()
    for order in _rotations(rounds, list(measures)):
        for name in order:
            samples[name].append(measures[name]())
    return samples


async def ainterleaved(rounds: int, **measures: Callable[[], Awaitable[float]]
                       ) -> dict[str, list[float]]:
    """`interleaved` for measures that are coroutines (trio)."""
    samples: dict[str, list[float]] = {name: [] for name in measures}
    for measure in measures.values():
        await measure()
    for order in _rotations(rounds, list(measures)):
        for name in order:
            samples[name].append(await measures[name]())
    return samples


def unmeasured(metric: str, why: str) -> Row:
    """A row for a figure that could not be measured, saying why, so a table
    never silently lacks a line."""
    return {"metric": metric, "median": None, "spread": None, "unit": "", **NO_FLOOR,
            "target": "", "ok": None, "note": why}


def timed(fn: Callable[[], Any], repeats: int, scale: float = 1e3,
          clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """`repeats` timings of `fn()`, as `timing` takes them."""
    measure = timing(fn, scale, clock)
    return [measure() for _ in range(repeats)]


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("pass" if ok else "FAIL")


def table(rows: list[Row], *, markdown: bool = False) -> str:
    """The rows as one aligned table (or a Markdown one), with the area each
    comes from when rows carry one (`bench`).  A ratio row also shows its
    floor (in the row's unit, named in the metric), the ratio it is judged
    by and that ratio's IQR."""
    header = ("area", "metric", "median", "spread", "unit", "floor", "ratio", "ratio spread",
              "target", "result")
    lines = [(r.get("bench", ""),
              r["metric"] + (f" vs {r['floor_name']}" if r.get("floor_name") else "")
              + (f" ({r['note']})" if r.get("note") else ""),
              _number(r["median"]), _number(r["spread"]), r["unit"],
              *(_number(r[k]) if r.get(k) is not None else ""
                for k in ("floor", "ratio", "ratio_spread")),
              r["target"], _verdict(r["ok"])) for r in rows]
    if not any(cells[0] for cells in lines):
        header, lines = header[1:], [cells[1:] for cells in lines]
    right = {header.index(h) for h in ("median", "spread", "floor", "ratio", "ratio spread")}
    if markdown:
        out = ["| " + " | ".join(header) + " |",
               "|" + "|".join("--:" if i in right else "---" for i in range(len(header))) + "|"]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(cells[i]) for cells in lines)) if lines else len(h)
              for i, h in enumerate(header)]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([fmt(header), fmt(tuple("-" * w for w in widths))] + [fmt(c) for c in lines])


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    import unicorn

    return {"cpu": cpu, "cpus": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "unicorn": unicorn.__version__}


# -- fixture images -------------------------------------------------------------

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kloader" / "bench"
"""Where built benchmark inputs are kept between runs (never in the tree, never in /tmp)."""
_BUILT = CACHE


@lru_cache(maxsize=None)
def fixture_image(name: str) -> bytes:
    """The committed `fixtures/NAME.ko`, or one built from `fixtures/src/NAME.c`
    (against the exporter's symbols, as the fixture set is built) and cached."""
    committed = FIXTURES / f"{name}.ko"
    if committed.exists():
        return committed.read_bytes()
    output = _BUILT / f"{name}.ko"
    source = FIXTURES / "src" / f"{name}.c"
    if not output.exists() or output.stat().st_mtime < source.stat().st_mtime:
        from kloaderd.build import build_module

        _BUILT.mkdir(parents=True, exist_ok=True)
        extra = []
        if name != "exporter":
            fixture_image("exporter")
            extra = [FIXTURES / "exporter.ko" if (FIXTURES / "exporter.ko").exists()
                     else _BUILT / "exporter.ko"]
        build_module([source], output, include_dirs=[FIXTURES / "include"], extra_symbols=extra)
    return output.read_bytes()


THIS_MODULE_NAME_OFFSET = 24      # offsetof(struct module, name)


def renamed(image: bytes, new: str) -> bytes:
    """The same module under another name of the same length.

    A module's name lives twice in its image: `name=` in `.modinfo` and
    `struct module.name` in `.gnu.linkonce.this_module`.  Rewriting both in
    place, with a name of equal length, keeps every offset valid, so one
    build serves as a thousand distinct modules.
    """
    from kloaderd.elf.image import parse

    parsed = parse(image)
    old = parsed.name
    if len(new) != len(old):
        raise ValueError(f"{new!r} must be as long as {old!r}")
    data = bytearray(image)
    modinfo = parsed.section(".modinfo")
    this_module = parsed.section(".gnu.linkonce.this_module")
    entry = f"name={old}\0".encode()
    at = data.find(entry, modinfo.offset, modinfo.offset + modinfo.size)
    name_at = this_module.offset + THIS_MODULE_NAME_OFFSET
    if at < 0 or data[name_at:name_at + len(old) + 1] != old.encode() + b"\0":
        raise ValueError(f"cannot find the name {old!r} in the image")
    data[at:at + len(entry)] = f"name={new}\0".encode()
    data[name_at:name_at + len(new)] = new.encode()
    return bytes(data)


# -- a daemon of our own ----------------------------------------------------------

def kloaderd_command() -> list[str]:
    beside = Path(sys.executable).parent / "kloaderd"
    return [str(beside) if beside.exists() else "kloaderd"]


@contextmanager
def daemon(*options: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A `kloaderd` process on a private socket: (socket path, process).

    A real process, not an embedded one, so that its memory is its own to
    measure and the clients' costs include the socket.
    """
    with tempfile.TemporaryDirectory(prefix="kl-bench-", dir="/tmp") as tmp:
        path = os.path.join(tmp, "k.sock")
        proc = subprocess.Popen(kloaderd_command() + ["--socket", path, "--log-level", "emerg",
                                                      *options],
                                stdout=subprocess.PIPE, text=True)
        try:
            if proc.stdout is None or proc.stdout.readline().strip() != path:
                raise RuntimeError(f"kloaderd did not start (exit status {proc.poll()})")
            yield path, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
