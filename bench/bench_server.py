"""How fast kloaderd answers: round trips, pipelined references, a whole
load/unload, a waiting removal's wake-up, and 50 clients at once.

Runs a real `kloaderd` process and real clients on this machine.  Each figure
is the median of repeated runs; `spread` is the interquartile range.
`python -m bench.bench_server [--quick]` prints the table.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import msgpack
import trio

from bench.common import FIXTURES, daemon, row, table
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
    """`clients` connections at once, each making `requests` calls: latency µs, and requests/s."""
    latencies: list[float] = []

    async def one() -> None:
        async with AsyncClient(path) as client:
            for _ in range(requests):
                t = time.perf_counter()
                await client.status()
                latencies.append((time.perf_counter() - t) * 1e6)

    async def all_of_them() -> float:
        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(one)
        return clients * requests / (time.perf_counter() - t)

    return latencies, trio.run(all_of_them)


def run(quick: bool) -> list[dict[str, Any]]:
    scale: Callable[[int], int] = (lambda n: max(3, n // 10)) if quick else (lambda n: n)
    with daemon() as (path, _):
        rows = [
            row("round trip of a trivial request (p50)", round_trip(path, scale(3000)), "µs", 100),
            row("pipelined try_module_get/module_put pairs", pipelined_pairs(path, scale(10) * 1000, 5),
                 "pairs/s", 20_000, higher_is_better=True),
            row("hello loaded and removed via the client", load_unload(path, scale(100)), "ms", 3),
            row("last module_put → waiting delete_module returns", wake_up(path, scale(100)), "ms", 2),
        ]
        latencies, throughput = concurrent_clients(path, 50, scale(200))
        rows.append(row("50 concurrent clients: request latency (p50)", latencies, "µs", 5000))
        rows.append(row("50 concurrent clients: requests served", [throughput], "req/s", 5000,
                         higher_is_better=True))
    return rows


if __name__ == "__main__":
    print(table(run(quick="--quick" in sys.argv)))
