"""How costs grow with the number of modules loaded, and what they cost in memory.

A kernel with a thousand modules must load the thousand-and-first about as
fast as the first: insmod latency is measured with 0, 100 and 1,000 small
modules loaded (the ratio 1,000 : 0 should stay under 1.2), with the time
`modules()` takes to list them, the daemon's resident memory with them all
loaded, and how much it grows as modules come and go.  The modules are one
build of `hello` renamed (`m0000`, `m0001`, ...), so a thousand cost one
compiler run.

`python -m bench.bench_scale [--quick]` prints the table.
"""

from __future__ import annotations

import sys
import time
from statistics import median
from typing import Any

from kloader_client import Client

from bench.common import Row, daemon, fixture_image, renamed, row, rss_bytes, table, timed

FULL_COUNTS = (0, 100, 1000)
QUICK_COUNTS = (0, 10, 50)
INSMOD_RATIO_TARGET = 1.2


def _insmod(client: Client, probe: bytes) -> float:
    """One insmod of the probe module (its removal is not timed): ms."""
    [ms] = timed(lambda: client.init_module(probe), 1)
    client.delete_module("probe")
    return ms


def run(quick: bool) -> list[Row]:
    counts = QUICK_COUNTS if quick else FULL_COUNTS
    repeats = 5 if quick else 30
    base = fixture_image("hello")
    probe = renamed(base, "probe")
    fillers = [renamed(base, f"m{i:04d}") for i in range(counts[-1])]
    rows: list[Row] = []
    insmod: dict[int, list[float]] = {}
    rss: dict[int, int] = {}
    with daemon() as (path, proc), Client(path) as client:
        loaded = 0
        for count in counts:
            while loaded < count:
                client.init_module(fillers[loaded])
                loaded += 1
            _insmod(client, probe)               # warm caches before timing
            insmod[count] = [_insmod(client, probe) for _ in range(repeats)]
            listing = timed(client.modules, repeats)
            assert len(client.modules()) == count
            rss[count] = rss_bytes(proc.pid)
            rows.append(row(f"insmod latency, {count} modules loaded", insmod[count], "ms"))
            rows.append(row(f"modules() with {count} modules loaded", listing, "ms"))
    low, high = counts[0], counts[-1]
    ratio = median(insmod[high]) / median(insmod[low])
    rows.append(row(f"insmod latency ratio {high:,} : {low} modules", [ratio], "×",
                    INSMOD_RATIO_TARGET))
    rows.append(row("daemon RSS, no modules loaded", [rss[low] / 2**20], "MiB"))
    rows.append(row(f"daemon RSS, {high:,} small modules loaded", [rss[high] / 2**20], "MiB"))
    if high:
        rows.append(row("daemon RSS per small module", [(rss[high] - rss[low]) / high / 1024],
                        "KiB"))
    rows.append(_growth(probe, cycles=50 if quick else 2000))
    rows += kallsyms_rows(quick)
    return rows


def _growth(probe: bytes, cycles: int) -> Row:
    """A fresh daemon's RSS growth over `cycles` loads and removals: what
    a long-lived daemon leaks per module that came and went."""
    with daemon() as (path, proc), Client(path) as client:
        for _ in range(cycles // 10):               # let caches and the log ring fill first
            client.init_module(probe)
            client.delete_module("probe")
        before = rss_bytes(proc.pid)
        for _ in range(cycles):
            client.init_module(probe)
            client.delete_module("probe")
        grown = rss_bytes(proc.pid) - before
    return row(f"daemon RSS growth over {cycles:,} insmod+rmmod", [grown / 1024], "KiB")


def kallsyms_rows(quick: bool) -> list[Row]:
    """insmod+rmmod of printfmt (its init prints %pS, so it symbolises
    through kallsyms) in a kernel with N modules loaded against one with
    none, interleaved in one process: a load must not re-sort every symbol."""
    import trio

    from bench.common import ainterleaved, ratio_row
    from kloaderd.kernel.kernel import Kernel

    count = 300 if quick else 3000
    base, probe = fixture_image("hello"), fixture_image("printfmt")

    async def measure() -> dict[str, list[float]]:
        empty, full = Kernel(), Kernel()
        for i in range(count):
            await full.init_module(renamed(base, f"m{i:04d}"))

        def cycle(kernel: Kernel) -> Any:
            async def one() -> float:
                start = time.perf_counter()
                await kernel.init_module(probe)
                elapsed = time.perf_counter() - start
                await kernel.delete_module("printfmt")
                return elapsed * 1e3
            return one

        return await ainterleaved(10 if quick else 40, full=cycle(full), empty=cycle(empty))

    samples = trio.run(measure)
    return [ratio_row(f"insmod of a %pS-printing module, {count:,} : 0 modules loaded",
                      samples["full"], samples["empty"], "ms", INSMOD_RATIO_TARGET,
                      floor_name="0 modules")]


def main(argv: list[str]) -> Any:
    print(table(run(quick="--quick" in argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
