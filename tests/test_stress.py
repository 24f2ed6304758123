"""Many clients at once, some killed mid-way, and module code misbehaving at
scale: afterwards the FAQ's invariants hold and nothing is left behind.

Fifty clients — trio tasks and separate processes, some of which are
SIGKILLed — load, get, put and remove (waiting and not) at random for a
bounded time.  Then: no count below zero, no reference of a dead client, the
use lists agree, every module can be removed, and the kernel's footprint is
back where it started.  Also: a hundred oopsing inits in a row, a module that
allocates until refused, and one whose init sleeps forever.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
from collections import Counter

import pytest
import trio

import kloaderd
from conftest import FIXTURES
from kloader_client import AsyncClient
from kloaderd.kernel.module import ModuleState, OwnerKind

DURATION = float(os.environ.get("KLOADER_STRESS_SECONDS", "3"))
TASK_CLIENTS = 40
PROCESS_CLIENTS = 10           # half of them are SIGKILLed mid-way
# name -> load parameters; user needs exporter's symbols, getter symbol_get()s them,
# sleepy stays COMING a while so loads and removals meet it mid-init.
MODULES = {"hello": "", "exporter": "", "user": "", "getter": "", "params": "", "sleepy": "sleep_ms=30"}
IMAGES = {name: (FIXTURES / f"{name}.ko").read_bytes() for name in MODULES}

EXERCISED = ("load", "get", "put", "delete")     # each must succeed at least once in a run
# What each operation may answer when others race it: anything else is a bug.
ALLOWED = {
    "load": {errno.EEXIST, errno.EBUSY, errno.ENOENT},
    "get": {errno.ENOENT, errno.EBUSY},
    "delete": {errno.ENOENT, errno.EWOULDBLOCK, errno.EBUSY, errno.ETIMEDOUT},
}

# A client in another process: the same random work, until killed or done.
PROCESS_CLIENT = r"""
import random, sys, time
from kloader_client import Client
path, seed, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rng = random.Random(seed)
names = ["hello", "exporter", "user", "getter", "params", "sleepy"]
with Client(path) as c:
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        name = rng.choice(names)
        roll = rng.random()
        try:
            if roll < 0.5:
                c.try_module_get(name)          # some held until the process ends or is killed
            elif roll < 0.8:
                c.module_put(name)
            else:
                c.delete_module(name, wait=rng.random() < 0.5, timeout=0.05)
        except OSError:
            pass
"""


def footprint(kernel) -> dict[str, object]:
    return {"modules": sorted(kernel.loaded), "module memory": kernel.module_memory,
            "heap": kernel.slab.total, "symbols": len(kernel.symbols),
            "kallsyms": len(kernel.ksyms.all())}


async def random_client(path: str, seed: int, stats: Counter[str]) -> None:
    rng = random.Random(seed)
    held: Counter[str] = Counter()
    async with AsyncClient(path) as client:
        end = trio.current_time() + DURATION
        # For DURATION, and on until every kind of operation has succeeded once:
        # on a busy host a few seconds may hold only a handful of operations.
        # Past DURATION no new reference is taken (once one has been), so the
        # ones held drain and a removal succeeds, however slow the host.
        while (running := trio.current_time() < end) or not all(stats[op] for op in EXERCISED):
            name = rng.choice(list(MODULES))
            taking = running or not stats["get"]
            op = rng.choices(["load", "get", "put", "delete", "look"], [3, 4 * taking, 4, 2, 1])[0]
            try:
                if op == "load":
                    await client.init_module(IMAGES[name], MODULES[name])
                elif op == "get":
                    await client.try_module_get(name)
                    held[name] += 1
                elif op == "put" and held[name]:
                    # A reference we hold is ours to drop, whatever state the module is in.
                    await client.module_put(name)
                    held[name] -= 1
                elif op == "delete":
                    wait = rng.random() < 0.5
                    await client.delete_module(name, wait=wait, timeout=rng.uniform(0.01, 0.2))
                else:
                    for info in await client.modules():
                        assert info["refcnt"] >= 0, info
                stats[op] += 1
            except OSError as exc:
                assert exc.errno in ALLOWED.get(op, ()), (op, name, exc)
                stats[f"{op} {errno.errorcode[exc.errno]}"] += 1
        # Leave about half of the clients' references for the disconnect to drop.
        if rng.random() < 0.5:
            for name, count in held.items():
                for _ in range(count):
                    await client.module_put(name)


async def process_clients(path: str, stats: Counter[str]) -> None:
    """Clients in their own processes; half are SIGKILLed halfway through."""
    procs = []
    for i in range(PROCESS_CLIENTS):
        procs.append(await trio.lowlevel.open_process(
            [sys.executable, "-c", PROCESS_CLIENT, path, str(1000 + i), str(DURATION)],
            stdout=subprocess.PIPE))
    for proc in procs:
        assert (await proc.stdout.receive_some(16)).startswith(b"ready")
    await trio.sleep(DURATION / 2)
    for proc in procs[::2]:
        proc.send_signal(signal.SIGKILL)
        stats["killed"] += 1
    for proc in procs:
        await proc.wait()
        await proc.stdout.aclose()


def check_invariants(kernel) -> None:
    """The FAQ's bookkeeping, read straight from the kernel."""
    for mod in kernel.loaded.values():
        assert mod.state is ModuleState.LIVE, (mod.name, mod.state)
        assert all(count > 0 for count in mod.refs.values()), (mod.name, mod.refs)
        # Every client is gone: so is every reference a client held.
        assert not [o for o in mod.refs if o.kind is OwnerKind.SESSION], (mod.name, mod.refs)
        for used in mod.uses:
            assert mod in used.holders and used.refs[mod.dependency_owner] == 1
        for holder in mod.holders:
            assert mod in holder.uses


async def remove_all(client: AsyncClient) -> None:
    """Every module can go, users before what they use."""
    while names := [m["name"] for m in await client.modules()]:
        progress = False
        for name in names:
            try:
                await client.delete_module(name)
                progress = True
            except BlockingIOError:     # still used by a module not yet removed
                pass
        assert progress, f"no module of {names} can be removed"


@pytest.mark.trio
async def test_fifty_clients_some_killed_then_the_invariants_hold():
    async with kloaderd.serve(on_problems="ignore") as daemon:
        kernel = daemon.kernel
        pristine = footprint(kernel)
        stats: Counter[str] = Counter()
        with trio.fail_after(DURATION * 10 + 300):    # a hang fails, it does not block CI
            async with trio.open_nursery() as nursery:
                nursery.start_soon(process_clients, daemon.socket_path, stats)
                for seed in range(TASK_CLIENTS):
                    nursery.start_soon(random_client, daemon.socket_path, seed, stats)
            async with AsyncClient(daemon.socket_path) as checker:
                while (await checker.status())["server"]["sessions"] > 1:
                    await trio.sleep(0.01)
                check_invariants(kernel)
                await remove_all(checker)
        assert footprint(kernel) == pristine
        # The run did what it says: loads, references and removals happened, and clients died.
        assert all(stats[op] for op in EXERCISED), stats
        assert stats["killed"] == PROCESS_CLIENTS // 2
        print(f"\nstress: {TASK_CLIENTS + PROCESS_CLIENTS} clients for {DURATION:g} s, "
              f"{stats['killed']} killed; " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())))


@pytest.mark.trio
async def test_a_hundred_oopsing_inits_in_a_row():
    kinds = ["null", "rodata", "bug", "div0", "stack"]
    async with kloaderd.serve(on_problems="ignore") as daemon:
        pristine = footprint(daemon.kernel)
        async with AsyncClient(daemon.socket_path) as client:
            for i in range(100):
                with pytest.raises(OSError) as exc:
                    await client.init_module(IMAGES_FAULTS, f"kind={kinds[i % len(kinds)]}")
                assert exc.value.errno == errno.EFAULT and "oopsed" in exc.value.strerror
            assert footprint(daemon.kernel) == pristine
            # The kernel is tainted but perfectly usable.
            assert await client.init_module(IMAGES["hello"]) == "hello"
            await client.delete_module("hello")
            assert "D" in (await client.status())["taints"]
        # One report per oops (a stack overflow adds a second head line).
        assert len(daemon.find_problems().oopses) >= 100


IMAGES_FAULTS = (FIXTURES / "faults.ko").read_bytes()


@pytest.mark.trio
async def test_a_module_that_allocates_until_refused():
    limit = 4 << 20
    async with kloaderd.serve(on_problems="ignore", module_heap_limit=limit) as daemon:
        pristine = footprint(daemon.kernel)
        async with AsyncClient(daemon.socket_path) as client:
            assert await client.init_module((FIXTURES / "leaky.ko").read_bytes(), "hog=1") == "leaky"
            lines = [r["text"] for r in await client.dmesg()]
            refused = next(line for line in lines if "kmalloc failed after" in line)
            chunks = int(refused.split("after ")[1].split()[0])
            assert chunks == (limit - 1024) // (64 << 10)     # 1000 + 24 bytes already leaked
            assert "leaky: freed all" in "\n".join(lines)
            await client.delete_module("leaky")
        assert footprint(daemon.kernel) == pristine
        assert daemon.find_problems().leaks == ("leaky: leaked 1024 bytes in 2 allocations",)


def test_an_init_that_sleeps_forever_cannot_be_removed_but_shutdown_completes(tmp_path):
    """A real kloaderd process, so that a shutdown that never completes is a
    failure we can see (and kill), not a test run that never ends."""
    path = str(tmp_path / "k.sock") if len(str(tmp_path)) < 90 else f"/tmp/kl-forever-{os.getpid()}.sock"
    daemon = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "kloaderd"),
                               "--socket", path, "--log-level", "emerg"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout.readline().strip() == path

        async def main() -> None:
            async with AsyncClient(path) as loader, AsyncClient(path) as remover:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(loader.init_module, (FIXTURES / "forever.ko").read_bytes())
                    while (await remover.status())["modules"] == 0 or \
                            (await remover.module("forever"))["state"] != "coming":
                        await trio.sleep(0.01)
                    with pytest.raises(OSError) as exc:
                        await remover.delete_module("forever")
                    assert exc.value.errno == errno.EBUSY
                    daemon.send_signal(signal.SIGTERM)     # shutdown, with init still asleep
                    await trio.to_thread.run_sync(daemon.wait, 3)

        with pytest.raises((OSError, ExceptionGroup)):    # the loader's connection ends
            trio.run(main)
    except subprocess.TimeoutExpired:
        pytest.fail("kloaderd did not finish shutting down in 3 s with an init asleep")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        daemon.stdout.close()
    assert daemon.returncode == 0
