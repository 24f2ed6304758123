"""How fast kloaderd answers, and how little one client can stall the others.

Runs real `kloaderd` processes and real clients on this machine.  Rows with a
natural floor are judged by their ratio to it, measured in the same run and
interleaved (`bench.common.ratio_row`): the round trip against a minimal trio
msgpack echo server, sequential reference pairs against 1/(2·echo RTT), a
connection's cost with N modules loaded against 0, an image upload against a
socketpair copy of the same bytes, 50 concurrent clients against 50 on the
echo server.  The stall rows (issue 13: a huge `modinfo`, a huge
`init_module`, a flood of pipelined `dmesg`) report what a second client, a
process of its own probing with `status` all the while, waited.
`python -m bench.bench_server [--quick]` prints the table.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import msgpack
import trio

from bench.common import (_BUILT, FIXTURES, daemon, fixture_image, interleaved, ratio_row, renamed, row,
                          table, timing)
from kloader_client import AsyncClient, Client


def round_trip(path: str, n: int) -> list[float]:
    """One trivial request (`modules` of an empty kernel), answered: µs."""
    with Client(path) as client:
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            client.modules()
            samples.append((time.perf_counter() - t) * 1e6)
    return samples


def pipelined_pairs(path: str, pairs: int, repeats: int, batch: int = 500) -> list[float]:
    """try_module_get/module_put pairs per second on one connection, sent in batches."""
    samples = []
    with Client(path) as loader:
        loader.init_module((FIXTURES / "hello.ko").read_bytes())
        with Client(path) as client:
            sock, decoder = client._sock, msgpack.Unpacker(raw=False)
            frame = b"".join(msgpack.packb({"op": op, "id": i, "name": "hello"})
                             for i, op in enumerate(["try_module_get", "module_put"] * batch))
            for _ in range(repeats):
                t = time.perf_counter()
                for _ in range(pairs // batch):
                    sock.sendall(frame)
                    got = 0
                    while got < 2 * batch:
                        decoder.feed(sock.recv(1 << 16))
                        for reply in decoder:
                            assert "result" in reply, reply
                            got += 1
                samples.append(pairs // batch * batch / (time.perf_counter() - t))
        loader.delete_module("hello")
    return samples


def load_unload(path: str, n: int) -> list[float]:
    """hello loaded and removed through the client: ms."""
    data = (FIXTURES / "hello.ko").read_bytes()
    samples = []
    with Client(path) as client:
        for _ in range(n):
            t = time.perf_counter()
            client.init_module(data)
            client.delete_module("hello")
            samples.append((time.perf_counter() - t) * 1e3)
    return samples


def wake_up(path: str, n: int) -> list[float]:
    """From sending the last module_put to a waiting delete_module's return: ms."""
    data = (FIXTURES / "hello.ko").read_bytes()
    samples = []
    with Client(path) as holder, Client(path) as remover:
        for _ in range(n):
            holder.init_module(data)
            holder.try_module_get("hello")
            rid = remover._send("delete_module", None, name="hello", wait=True)
            while holder.module("hello")["state"] != "going":
                pass
            t = time.perf_counter()
            holder.module_put("hello")
            remover._receive(rid)
            samples.append((time.perf_counter() - t) * 1e3)
    return samples


def concurrent_clients(path: str, clients: int, requests: int) -> tuple[list[float], float]:
    """`clients` connections at once, each making `requests` trivial calls
    (`modules` of an empty kernel, the request the echo floor mimics):
    latency µs, and requests/s."""
    latencies: list[float] = []

    async def one() -> None:
        async with AsyncClient(path) as client:
            for _ in range(requests):
                t = time.perf_counter()
                await client.modules()
                latencies.append((time.perf_counter() - t) * 1e6)

    async def all_of_them() -> float:
        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(one)
        return clients * requests / (time.perf_counter() - t)

    return latencies, trio.run(all_of_them)


def concurrent_rows(path: str, echo: str, clients: int, requests: int, rounds: int) -> list[dict[str, Any]]:
    """`clients` at once against the echo floor's `clients` at once, interleaved:
    the absolute figures move with the host's load (each request costs the
    bench's clients about as much CPU as the daemon), their ratios do not."""
    runs: dict[str, list[tuple[list[float], float]]] = {"kloaderd": [], "echo": []}

    def measure(name: str, where: str) -> Callable[[], float]:
        def once() -> float:
            runs[name].append(concurrent_clients(where, clients, requests))
            return runs[name][-1][1]
        return once

    interleaved(rounds, kloaderd=measure("kloaderd", path), echo=measure("echo", echo))
    # The warm-up run of each is not a sample.
    ours, floor = runs["kloaderd"][1:], runs["echo"][1:]
    return [
        ratio_row(f"{clients} concurrent clients: request latency (p50)",
                  [statistics.median(lat) for lat, _ in ours], [statistics.median(lat) for lat, _ in floor],
                  "µs", 1.25, floor_name=f"trio msgpack echo, {clients} clients"),
        ratio_row(f"{clients} concurrent clients: requests served", [rate for _, rate in ours],
                  [rate for _, rate in floor], "req/s", 0.8, floor_name=f"trio msgpack echo, {clients} clients",
                  higher_is_better=True),
    ]


# -- floors ---------------------------------------------------------------------

ECHO = """
import socket, sys
import msgpack, trio

async def handle(stream):
    decoder = msgpack.Unpacker(raw=False)
    while data := await stream.receive_some(65536):
        decoder.feed(data)
        await stream.send_all(b"".join(msgpack.packb({"id": m.get("id"), "result": []}, use_bin_type=True)
                                       for m in decoder))

async def main(path):
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen(128)
    print(path, flush=True)
    await trio.serve_listeners(handle, [trio.SocketListener(sock)])

trio.run(main, sys.argv[1])
"""


@contextlib.contextmanager
def echo_server() -> Iterator[tuple[str, int]]:
    """The floor of a round trip: a minimal trio msgpack server answering every
    request with an empty result, in a process of its own as kloaderd is:
    (socket path, pid)."""
    with tempfile.TemporaryDirectory(prefix="kl-echo-") as tmp:
        path = os.path.join(tmp, "echo.sock")
        proc = subprocess.Popen([sys.executable, "-c", ECHO, path], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == path
            yield path, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()


def socketpair_round_trip(n: int) -> list[float]:
    """A 32-byte ping-pong over a socketpair to a thread: µs (shown, not judged)."""
    a, b = socket.socketpair()

    def pong() -> None:
        while data := b.recv(64):
            b.sendall(data)

    thread = threading.Thread(target=pong)
    thread.start()
    samples = []
    with a, b:
        for _ in range(n):
            t = time.perf_counter()
            a.sendall(b"x" * 32)
            a.recv(64)
            samples.append((time.perf_counter() - t) * 1e6)
        a.shutdown(socket.SHUT_WR)
        thread.join()
    return samples


def socketpair_copy(size: int) -> float:
    """Moving `size` bytes through a socketpair to a reader thread: ms."""
    a, b = socket.socketpair()
    data = bytes(size)

    def drain() -> None:
        left = size
        while left:
            left -= len(b.recv(1 << 20))

    thread = threading.Thread(target=drain)
    t = time.perf_counter()
    thread.start()
    with a, b:
        a.sendall(data)
        thread.join()
    return (time.perf_counter() - t) * 1e3


def daemon_cpu(pid: int, fn: Callable[[], Any]) -> Callable[[], float]:
    """A measure: the CPU time (µs) process `pid` spent while `fn` ran once
    (/proc/PID/schedstat: nanoseconds, not clock ticks)."""
    def on_cpu() -> int:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])

    def measure() -> float:
        before = on_cpu()
        fn()
        return (on_cpu() - before) / 1e3
    return measure


def per_call(fn: Callable[[], Any], calls: int) -> Callable[[], float]:
    """A measure: the mean µs of `calls` calls of `fn` (one sample, less noisy)."""
    def measure() -> float:
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - t) * 1e6 / calls
    return measure


# -- images made for the bench ------------------------------------------------------

BIG_SOURCE = """#include <linux/init.h>
#include <linux/module.h>

char big_blob[%d] __attribute__((used)) = { 1 };

static int __init big_init(void) { return *(volatile char *)big_blob - 1; }
static void __exit big_exit(void) { }
module_init(big_init);
module_exit(big_exit);
MODULE_LICENSE("GPL");
"""

CHATTY_SOURCE = """#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static int __init chatty_init(void)
{
	int i;

	for (i = 0; i < %d; i++)
		pr_info("line %%d of a log filled to its capacity, for the dmesg rows\\n", i);
	return 0;
}
module_init(chatty_init);
MODULE_LICENSE("GPL");
"""


def built(name: str, source: str) -> bytes:
    """A module compiled from `source` (cached with the bench's other builds)."""
    from kloaderd.build import build_module

    _BUILT.mkdir(exist_ok=True)
    output, c_file = _BUILT / f"{name}.ko", _BUILT / f"{name}.c"
    if not output.exists() or not c_file.exists() or c_file.read_text() != source:
        c_file.write_text(source)
        build_module([c_file], output)
    return output.read_bytes()


def big_image(mib: int) -> bytes:
    return built(f"big{mib}", BIG_SOURCE % (mib << 20))


# -- another client's view -------------------------------------------------------------

PROBE = """
import json, select, sys, time
from kloader_client import Client

client, samples = Client(sys.argv[1], client_name="prober"), []
while not select.select([sys.stdin], [], [], 0)[0]:
    t = time.perf_counter()
    client.status()
    samples.append((t, (time.perf_counter() - t) * 1e3))
    if len(samples) == 20:
        print("ready", flush=True)
print(json.dumps(samples))
"""


class Prober:
    """Another client calling `status` back to back, so a row can say how
    long others waited while one client did something big.

    A process of its own, as another client is: on a thread of the bench's
    process it waited for the bench's own GIL too (packing a 56 MiB request
    holds it tens of milliseconds), and reported that as the daemon's stall.
    `time.perf_counter` is CLOCK_MONOTONIC, one clock for both processes."""

    def __init__(self, path: str) -> None:
        self.path = path

    @contextlib.contextmanager
    def watching(self) -> Iterator[list[float]]:
        """Latencies (ms) of the probes that overlapped the body."""
        during: list[float] = []
        proc = subprocess.Popen([sys.executable, "-c", PROBE, self.path], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            start = time.perf_counter()
            try:
                yield during
            finally:
                end = time.perf_counter()
                time.sleep(0.02)
                out, _ = proc.communicate("stop\n", timeout=120)
            during += [ms for t, ms in json.loads(out) if t + ms / 1e3 >= start and t <= end]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) >= 2 else max(samples, default=0.0)


def peak_rss(pid: int) -> int:
    """VmHWM: the most the process has ever had resident, bytes."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def current_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


# -- the rows -----------------------------------------------------------------------------

@contextlib.contextmanager
def placed(client_cpu: int, server_cpu: int, servers: tuple[int, ...]) -> Iterator[None]:
    """This thread on `client_cpu`, every thread of each server process on
    `server_cpu`, for the duration; then everyone may run anywhere again."""
    def pin(pid: int, cpus: set[int]) -> None:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(int(tid), cpus)

    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {client_cpu})
    for pid in servers:
        pin(pid, {server_cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, everywhere)
        for pid in servers:
            pin(pid, everywhere)


def floor_rows(path: str, pid: int, echo: str, echo_pid: int, rounds: int) -> list[dict[str, Any]]:
    """Round trip and sequential reference pairs, judged against the echo floor.

    Shown beside the judged pairs row: the same pairs with the CPUs fixed,
    the daemon and the echo server placed alike, and the CPU each server
    spends per pair.  Left to the scheduler, a server keeps the CPU it last
    ran on, so the figure and its floor may sit in different placements for
    a whole run; and on a VM whose idle CPUs halt (guest_halt_poll_ns = 0) a
    wake-up across CPUs costs several times one on the same CPU.  A server
    that goes back to sleep sooner after replying pays that wake-up on more
    requests: the fixed rows and the CPU row tell the daemon's own cost apart
    from where the scheduler put it (docs/performance.md)."""
    with Client(path) as client, Client(echo) as floor:
        rtt = interleaved(rounds, kloaderd=per_call(client.modules, 50), echo=per_call(floor.modules, 50))
        client.init_module((FIXTURES / "hello.ko").read_bytes())

        def pair() -> None:
            client.try_module_get("hello")
            client.module_put("hello")

        def two_echoes() -> None:
            floor.modules()
            floor.modules()

        def pairs() -> dict[str, list[float]]:
            return interleaved(rounds, kloaderd=per_call(pair, 50), echo=per_call(two_echoes, 50))

        free = pairs()
        cpu = interleaved(rounds, kloaderd=daemon_cpu(pid, per_call(pair, 50)),
                          echo=daemon_cpu(echo_pid, per_call(two_echoes, 50)))
        cpus = sorted(os.sched_getaffinity(0))
        fixed = {}
        if len(cpus) >= 2:
            for name, server_cpu in (("one CPU", cpus[0]), ("separate CPUs", cpus[1])):
                with placed(cpus[0], server_cpu, (pid, echo_pid)):
                    fixed[name] = pairs()
        client.delete_module("hello")

    def pair_row(what: str, measured: dict[str, list[float]], target: float | None) -> dict[str, Any]:
        return ratio_row(what, [1e6 / s for s in measured["kloaderd"]], [1e6 / s for s in measured["echo"]],
                         "pairs/s", target, floor_name="1/(2·echo RTT)", higher_is_better=True)

    return [ratio_row("round trip: modules() p50", rtt["kloaderd"], rtt["echo"], "µs", 1.25,
                      floor_name="trio msgpack echo"),
            row("round trip: raw socketpair ping-pong (shown)", socketpair_round_trip(rounds * 50), "µs"),
            pair_row("sequential try_module_get+module_put pairs", free, 0.9),
            *(pair_row(f"sequential pairs, client and servers on {name} (shown)", measured, None)
              for name, measured in fixed.items()),
            ratio_row("server CPU per get+put pair (shown)", [c / 50 for c in cpu["kloaderd"]],
                      [c / 50 for c in cpu["echo"]], "µs", floor_name="echo CPU per two requests")]


def scale_rows(modules: int, rounds: int) -> list[dict[str, Any]]:
    """A connection's cost and the GC with `modules` loaded, against none."""
    hello = fixture_image("hello")
    with daemon() as (empty, empty_proc), daemon() as (full, full_proc):
        with Client(full) as loader:
            for i in range(modules):
                loader.init_module(renamed(hello, f"h{i:04d}"))
        connect = interleaved(rounds, loaded=per_call(lambda: Client(full).close(), 20),
                              empty=per_call(lambda: Client(empty).close(), 20))
        with Client(full) as client, Client(empty) as none:
            gc_stats = client.status()["server"]["gc"]
            # modules() with every module listed against none, one of each
            # per round: what each loaded module adds to the round trip
            # (built by the daemon, packed, sent, unpacked by the client).
            listing = interleaved(rounds * 10, loaded=per_call(client.modules, 1),
                                  empty=per_call(none.modules, 1))
            rtts = listing["loaded"]
            # The daemon's own CPU for the same (what load inflates least).
            cpu = interleaved(rounds, loaded=daemon_cpu(full_proc.pid, client.modules),
                              empty=daemon_cpu(empty_proc.pid, none.modules))
            # Garbage made and modules churned: the collections happen now, if ever.
            churn = []
            for i in range(rounds * 5):
                t = time.perf_counter()
                client.init_module(renamed(hello, "churn"))
                client.delete_module("churn")
                churn.append((time.perf_counter() - t) * 1e3)
            gc_after = client.status()["server"]["gc"]
    return [
        ratio_row(f"connect + hello + close, {modules} loaded", connect["loaded"], connect["empty"], "µs",
                  1.2, floor_name="0 loaded"),
        row(f"longest GC pause while {modules} modules were loaded and churned",
            [max(gc_stats["longest_pause_ms"], gc_after["longest_pause_ms"])], "ms", 100),
        row(f"insmod+rmmod p99 with {modules} loaded (GC pauses show here)", [p99(churn)], "ms", 20),
        row(f"modules() round trip per loaded module, {modules} : 0 loaded",
            [(full_us - empty_us) / modules for full_us, empty_us in zip(rtts, listing["empty"])], "µs"),
        row(f"modules(): daemon CPU per loaded module, {modules} : 0 loaded",
            [(full_us - empty_us) / modules for full_us, empty_us in zip(cpu["loaded"], cpu["empty"])], "µs"),
        row(f"modules() round trip p99 with {modules} loaded", [p99(rtts) / 1e3], "ms"),
    ]


def big_image_rows(mib: int) -> list[dict[str, Any]]:
    """A big init_module and a big modinfo: others' stall, peak memory, upload vs a copy."""
    data = big_image(mib)
    rows = []
    with daemon() as (path, proc):
        with Client(path) as client:
            client.status()
            baseline = current_rss(proc.pid)
            with Prober(path).watching() as stalls:
                t = time.perf_counter()
                client.init_module(data)
                load_ms = (time.perf_counter() - t) * 1e3
            growth = (peak_rss(proc.pid) - baseline) / len(data)
            client.delete_module(f"big{mib}")
            rows += [
                row(f"other clients' p99 while a {mib} MiB image loads", [p99(stalls)], "ms", 20),
                row(f"other clients' longest wait: huge init_module ({mib} MiB)", [max(stalls)], "ms", 100),
                row(f"peak RSS growth loading a {mib} MiB image", [growth], "× image", 2),
                ratio_row(f"init_module of {mib} MiB", [load_ms], [socketpair_copy(len(data))], "ms",
                          floor_name="socketpair copy"),
            ]
            with Prober(path).watching() as stalls:
                client.modinfo(data)
            rows.append(row(f"other clients' longest wait: huge modinfo ({mib} MiB)", [max(stalls)], "ms", 100))
    return rows


def dmesg_rows(records: int, flood: int) -> list[dict[str, Any]]:
    """A full log: the first page, and a flood of pipelined dmesg against another client."""
    with daemon() as (path, _):
        with Client(path) as client:
            client.init_module(built(f"chatty{records}", CHATTY_SOURCE % records))
            first_page = [per_call(lambda: client.dmesg_page(0), 1)() / 1e3 for _ in range(30)]
            full = len(client.dmesg())
        with Prober(path).watching() as stalls:
            flood_dmesg(path, flood)
    return [row(f"full-log dmesg, first page ({full} records kept)", first_page, "ms", 5),
            row(f"other clients' longest wait: {flood} pipelined dmesg", [max(stalls)], "ms", 100)]


def flood_dmesg(path: str, count: int) -> None:
    """`count` whole-log dmesg requests sent at once on one connection, the
    replies read by a second thread as they come."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    frames = b"".join(msgpack.packb({"op": "dmesg", "id": i}) for i in range(count))

    def read() -> None:
        decoder, got = msgpack.Unpacker(raw=False), 0
        while got < count:
            decoder.feed(sock.recv(1 << 20))
            got += sum(1 for _ in decoder)

    reader = threading.Thread(target=read)
    reader.start()
    with sock:
        sock.sendall(frames)
        reader.join()


def run(quick: bool) -> list[dict[str, Any]]:
    scale: Callable[[int], int] = (lambda n: max(3, n // 10)) if quick else (lambda n: n)
    rounds = 5 if quick else 30
    with daemon() as (path, proc), echo_server() as (echo, echo_pid):
        rows = floor_rows(path, proc.pid, echo, echo_pid, rounds)
        rows += [
            row("pipelined try_module_get/module_put pairs", pipelined_pairs(path, scale(10) * 1000, 5),
                 "pairs/s", 20_000, higher_is_better=True),
            row("hello loaded and removed via the client", load_unload(path, scale(100)), "ms", 3),
            row("last module_put → waiting delete_module returns", wake_up(path, scale(100)), "ms", 2),
        ]
        rows += concurrent_rows(path, echo, 50, scale(40), rounds=3 if quick else 7)
    rows += scale_rows(scale(3000), rounds)
    rows += big_image_rows(8 if quick else 56)
    rows += dmesg_rows(scale(20000), scale(2000))
    return rows


if __name__ == "__main__":
    print(table(run(quick="--quick" in sys.argv)))
