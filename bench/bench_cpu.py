"""How fast the emulated CPU is: guest instructions per second, one kernel
call from module code, a kmalloc/kfree pair, and a task switch.

Guest code is real machine code linked at module addresses (gcc/as + ld, as
the CPU tests build it) and run through `Machine.call`.  Each figure is the
median of repeated runs; `spread` is the interquartile range.
`python bench/bench_cpu.py [--quick]` prints the table.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from guestcode import Kernel, build  # noqa: E402

from kloaderd.kernel.cpu import Machine  # noqa: E402
from kloaderd.kernel.oops import Oops  # noqa: E402

GUEST = r"""
struct completion { unsigned int done; int pad[7]; };
int completion_done(struct completion *);
void schedule(void);
struct completion c;

/* 3 instructions an iteration; the asm keeps gcc from folding the loop. */
long compute(long n)
{
    long acc = 0;
    __asm__ volatile("1: add %1, %0\n\tdec %1\n\tjnz 1b" : "+r"(acc), "+r"(n));
    return acc;
}
/* 6 instructions an iteration, a load and a store among them. */
long table[512];
long memory(long n)
{
    long acc = 0;
    __asm__ volatile("1: mov %1, %%rdx\n\tand $511, %%rdx\n\tadd (%2,%%rdx,8), %0\n\t"
                     "mov %0, (%2,%%rdx,8)\n\tdec %1\n\tjnz 1b"
                     : "+r"(acc), "+r"(n) : "r"(table) : "rdx", "memory");
    return acc;
}
long kernel_calls(long n) { long s = 0; while (n--) s += completion_done(&c); return s; }
long spin(void) { for (;;) __asm__ volatile(""); }
long yields(long n) { while (n--) schedule(); return 0; }
"""

# Run on the real kernel: its slab allocator, with GFP_KERNEL as Linux 6.6 spells it.
SLAB_GUEST = r"""
void *__kmalloc(unsigned long size, unsigned int flags);
void kfree(const void *p);
long kmalloc_pairs(long n) { while (n--) kfree(__kmalloc(64, 0xcc0)); return 0; }
"""


def _row(metric: str, samples: list[float], unit: str, target: str, ok: bool | None) -> dict:
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return {"metric": metric, "median": statistics.median(samples), "spread": q[2] - q[0],
            "unit": unit, "target": target, "ok": ok}


async def _measure(quick: bool) -> list[dict]:
    machine = Machine(Kernel(), watchdog=60.0)
    g = build(machine, GUEST)
    repeats = 3 if quick else 7

    n = 3_000_000 if quick else 30_000_000
    ips = []
    for _ in range(repeats):
        t = time.perf_counter()
        await machine.call(g["compute"], n)
        ips.append(3 * n / (time.perf_counter() - t) / 1e6)

    mem_ips = []
    for _ in range(repeats):
        t = time.perf_counter()
        await machine.call(g["memory"], n)
        mem_ips.append(6 * n / (time.perf_counter() - t) / 1e6)

    n = 5_000 if quick else 50_000
    call_us = []
    for _ in range(repeats):
        t = time.perf_counter()
        await machine.call(g["kernel_calls"], n)
        call_us.append((time.perf_counter() - t) / n * 1e6)

    from kloaderd.kernel.kernel import Kernel as RealKernel
    real = RealKernel()
    pairs = build(real.machine, SLAB_GUEST)["kmalloc_pairs"]
    pair_us = []
    for _ in range(repeats):
        t = time.perf_counter()
        await real.machine.call(pairs, n)
        pair_us.append((time.perf_counter() - t) / n * 1e6)

    n = 500 if quick else 5_000
    switch_us = []
    for _ in range(repeats):
        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(machine.call, g["yields"], n)
            nursery.start_soon(machine.call, g["yields"], n)
        switch_us.append((time.perf_counter() - t) / (2 * n) * 1e6)

    # The daemon must keep answering while module code spins: how late does
    # a 5 ms timer of another trio task fire?
    late_ms: list[float] = []
    spinner = Machine(Kernel(), watchdog=0.5 if quick else 2.0)
    spin = build(spinner, GUEST)["spin"]

    async def spin_until_lockup() -> None:
        try:
            await spinner.call(spin)
        except Oops:
            pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(spin_until_lockup)
        await trio.sleep(0.05)
        while spinner.sched.tasks:
            t = time.perf_counter()
            await trio.sleep(0.005)
            late_ms.append((time.perf_counter() - t - 0.005) * 1e3)

    ips_med = statistics.median(ips)
    mem_med = statistics.median(mem_ips)
    call_med = statistics.median(call_us)
    return [
        _row("guest instructions per second (compute loop)", ips, "M instr/s", ">= 20", ips_med >= 20),
        _row("guest instructions per second (loads and stores)", mem_ips, "M instr/s", ">= 20",
             mem_med >= 20),
        _row("kernel call round trip from module code", call_us, "µs", "<= 10", call_med <= 10),
        _row("kmalloc(64) + kfree pair from module code", pair_us, "µs", "<= 20",
             statistics.median(pair_us) <= 20),
        _row("event loop lateness while guest code spins (max)", [max(late_ms)], "ms", "<= 50",
             max(late_ms) <= 50),
        _row("task switch (schedule() between two tasks)", switch_us, "µs", "-", None),
    ]


def run(quick: bool) -> list[dict]:
    return trio.run(_measure, quick)


def main() -> None:
    rows = run("--quick" in sys.argv[1:])
    print(f"{'metric':52} {'median':>10} {'spread':>9} {'unit':10} {'target':>7}  ok")
    for r in rows:
        ok = "-" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        print(f"{r['metric']:52} {r['median']:10.2f} {r['spread']:9.2f} {r['unit']:10} {r['target']:>7}  {ok}")


if __name__ == "__main__":
    main()
