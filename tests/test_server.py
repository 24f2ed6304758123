"""The daemon through real sockets: sessions, pipelining, fd passing,
disconnects, privilege, and the `kloaderd` process's start and shutdown.

Everything here runs the real kernel and the fixture modules.  In-process
tests serve the kernel from the test's own trio loop; process tests start the
`kloaderd` command and talk to it as users do.
"""

from __future__ import annotations

import array
import errno
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import msgpack
import pytest
import trio

from kloader_client import AsyncClient, Client
from kloaderd.errors import KernelError
from kloaderd.kernel.kernel import Kernel, KernelOptions
from kloaderd.server.server import serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def image(name: str) -> bytes:
    return (FIXTURES / f"{name}.ko").read_bytes()


def command(name: str) -> str:
    """An installed console script, next to this interpreter as pip puts it."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


# ---------------------------------------------------------------- in-process


@pytest.fixture
async def served(nursery, tmp_path):
    kernel = Kernel(KernelOptions())
    path = await nursery.start(serve, kernel, str(tmp_path / "k.sock"))
    return kernel, path


class Raw:
    """A connection speaking the protocol by hand, to control what is sent when."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.decoder = msgpack.Unpacker(raw=False)
        self.ready: list[dict] = []

    @classmethod
    async def connect(cls, path: str) -> Raw:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.connect(path)
        return cls(sock)

    async def send(self, *requests: dict, fds: list[int] = ()) -> None:
        data = b"".join(msgpack.packb(r, use_bin_type=True) for r in requests)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
        view = memoryview(data)
        view = view[await self.sock.sendmsg([view], anc):]
        while view:
            view = view[await self.sock.send(view):]

    async def receive(self) -> dict:
        with trio.fail_after(10):
            while not self.ready:
                chunk = await self.sock.recv(65536)
                assert chunk, "the daemon closed the connection"
                self.decoder.feed(chunk)
                self.ready.extend(self.decoder)
        return self.ready.pop(0)

    def close(self) -> None:
        self.sock.close()


async def until(predicate, what: str) -> None:
    """Wait for something the daemon does after a connection closes (no timing asserted)."""
    with trio.fail_after(10):
        while not predicate():
            await trio.sleep(0.001)


def state(kernel: Kernel, name: str) -> str | None:
    mod = kernel.find_module(name)
    return None if mod is None else mod.state.value


@pytest.mark.trio
async def test_load_inspect_and_remove_over_the_socket(served):
    kernel, path = served
    async with AsyncClient(path, client_name="t") as client:
        assert await client.init_module(image("hello")) == "hello"
        info = await client.module("hello")
        assert (info["name"], info["state"], info["refcnt"], info["holders"]) == ("hello", "live", 0, [])
        assert [m["name"] for m in await client.modules()] == ["hello"]
        assert any("Hello, world" in r["line"] for r in await client.dmesg())
        assert (await client.status())["modules"] == 1
        await client.delete_module("hello")
        assert await client.modules() == []
        assert any("Goodbye, world" in r["text"] for r in await client.dmesg())


@pytest.mark.trio
async def test_a_waiting_delete_does_not_hold_up_the_put_sent_after_it(served):
    kernel, path = served
    await kernel.init_module(image("hello"))
    raw = await Raw.connect(path)
    await raw.send({"op": "try_module_get", "id": 1, "name": "hello"},
                   {"op": "delete_module", "id": 2, "name": "hello", "wait": True},
                   {"op": "module", "id": 3, "name": "hello"})
    assert (await raw.receive()) == {"id": 1, "result": None}
    going = await raw.receive()
    assert going["id"] == 3 and going["result"]["state"] == "going"
    await raw.send({"op": "module_put", "id": 4, "name": "hello"})
    # The put completes although the delete sent before it is still waiting;
    # the delete then completes because of it.
    assert (await raw.receive()) == {"id": 4, "result": None}
    assert (await raw.receive()) == {"id": 2, "result": None}
    assert state(kernel, "hello") is None
    raw.close()


@pytest.mark.trio
async def test_a_pipelined_read_lets_other_tasks_run_between_its_batches_of_replies(served, monkeypatch):
    """A read full of pipelined inline requests is served in batches of
    `REPLY_FLUSH` bytes of replies with a scheduling point after each, even
    when the socket takes every batch without blocking: others run meanwhile.

    Ordering, not timing, shows it: the pipeline's first request drops the
    last reference another connection's `delete_module --wait` waits for,
    and every later one asks for the module.  Served in one go, each of them
    would see the removal still waiting ("going", EBUSY); with the loop let
    in between batches, the removal finishes while the pipeline is still
    being served, and the rest of it sees the module gone (ENOENT)."""
    from kloaderd.server import session as session_module

    # Small batches, so a few hundred short replies make many of them while
    # staying far below what the socket buffers: a send that blocked would
    # itself let the others in, and prove nothing.
    monkeypatch.setattr(session_module, "REPLY_FLUSH", 1024)
    kernel, path = served
    await kernel.init_module(image("hello"))
    holder, remover = await Raw.connect(path), await Raw.connect(path)
    await holder.send({"op": "try_module_get", "id": 0, "name": "hello"})
    assert (await holder.receive()) == {"id": 0, "result": None}
    await remover.send({"op": "delete_module", "id": "rm", "name": "hello", "wait": True},
                       {"op": "module", "id": "look", "name": "hello"})
    assert (await remover.receive())["result"]["state"] == "going"   # the removal waits

    gets = 300
    await holder.send({"op": "module_put", "id": 0, "name": "hello"},
                      *({"op": "try_module_get", "id": i, "name": "hello"} for i in range(1, gets + 1)))
    assert (await holder.receive()) == {"id": 0, "result": None}
    errnos = []
    for i in range(1, gets + 1):
        reply = await holder.receive()
        assert reply["id"] == i
        errnos.append(reply["error"]["errno"])
    assert (await remover.receive()) == {"id": "rm", "result": None}
    assert state(kernel, "hello") is None
    # A run of "still going", then "gone" to the end: the removal completed
    # between two batches of the same read.
    first_gone = errnos.index("ENOENT") if "ENOENT" in errnos else gets
    assert errnos[:first_gone] == ["EBUSY"] * first_gone
    assert errnos[first_gone:] == ["ENOENT"] * (gets - first_gone)
    assert first_gone < gets, "the whole pipelined read was served before the removal could run"
    holder.close()
    remover.close()


def test_a_session_polls_only_for_a_quick_peer_and_only_while_nothing_else_runs():
    from kloaderd.server.session import LOOP_GAP, POLL, RequestLoop

    loop = RequestLoop()
    assert not loop.looping                       # a new peer is not polled for
    loop.waiting(10.0)
    loop.arrived(10.0 + 2 * LOOP_GAP)             # a pause: not in a loop
    assert not loop.looping
    loop.waiting(20.0)
    loop.arrived(20.0 + LOOP_GAP / 2)             # asked again at once
    assert loop.looping
    loop.waiting(30.0)
    assert loop.keep_polling(30.0 + POLL / 2, others_runnable=0)
    assert not loop.keep_polling(30.0 + POLL / 2, others_runnable=1)
    assert not loop.keep_polling(30.0 + 2 * POLL, others_runnable=0)


@pytest.mark.trio
async def test_a_client_in_a_request_loop_is_polled_for_and_an_occasional_one_is_not(served, monkeypatch):
    """Polling yields the CPU before each try (a client on the same CPU
    runs); counting those yields tells whether the session polled.  The
    thresholds are set so the verdict does not depend on timing."""
    from kloaderd.server import session as session_module

    kernel, path = served
    await kernel.init_module(image("hello"))
    client = await Raw.connect(path)

    async def get_and_put(times: int) -> None:
        for i in range(times):
            await client.send({"op": "try_module_get", "id": i, "name": "hello"})
            assert (await client.receive()) == {"id": i, "result": None}
            await client.send({"op": "module_put", "id": i, "name": "hello"})
            assert (await client.receive()) == {"id": i, "result": None}

    yields: list[int] = []
    monkeypatch.setattr(os, "sched_yield", lambda: yields.append(1))
    monkeypatch.setattr(session_module, "LOOP_GAP", 0.0)      # never quick enough
    await get_and_put(10)
    assert not yields
    monkeypatch.setattr(session_module, "LOOP_GAP", math.inf)  # always quick
    monkeypatch.setattr(session_module, "POLL", math.inf)
    await get_and_put(10)
    assert yields
    assert kernel.find_module("hello").refcount == 0
    client.close()


@pytest.mark.trio
async def test_a_slow_load_holds_up_no_one(served):
    kernel, path = served
    # sleepy's init sleeps until the test wakes it, not for a time that a
    # busy host could let run out before the test looks.
    asleep, awake = trio.Event(), trio.Event()

    async def sleeping() -> None:
        asleep.set()
        await awake.wait()

    kernel.provide("msleep", lambda ctx, msecs: sleeping(), nargs=1)
    async with AsyncClient(path) as loader, AsyncClient(path) as other, trio.open_nursery() as nursery:
        nursery.start_soon(loader.init_module, image("sleepy"))
        await asleep.wait()
        # Another connection is answered while the load sleeps in init, and
        # the FAQ's rule holds: a module still initialising cannot be entered.
        assert [m["state"] for m in await other.modules()] == ["coming"]
        with pytest.raises(OSError) as info:
            await other.try_module_get("sleepy")
        assert info.value.errno == errno.EBUSY
        awake.set()
    assert state(kernel, "sleepy") == "live"


@pytest.mark.trio
async def test_a_load_outlives_the_connection_that_asked_for_it(served):
    kernel, path = served
    raw = await Raw.connect(path)
    await raw.send({"op": "init_module", "id": 1, "image": image("sleepy"), "params": "sleep_ms=50"})
    raw.close()  # like insmod killed during init: the module still arrives
    await until(lambda: state(kernel, "sleepy") == "live", "load finished")


@pytest.mark.trio
async def test_finit_module_loads_from_the_passed_descriptor(served, tmp_path):
    kernel, path = served
    raw = await Raw.connect(path)
    fd = os.open(FIXTURES / "hello.ko", os.O_RDONLY)
    try:
        await raw.send({"op": "finit_module", "id": 1}, fds=[fd])
    finally:
        os.close(fd)  # the daemon has its own copy now
    assert (await raw.receive()) == {"id": 1, "result": "hello"}
    assert state(kernel, "hello") == "live"
    # What the client cannot read, the daemon does not read for it.
    wronly = os.open(tmp_path / "w.ko", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        await raw.send({"op": "finit_module", "id": 2}, fds=[wronly])
    finally:
        os.close(wronly)
    assert (await raw.receive())["error"]["errno"] == "EBADF"
    raw.close()


@pytest.mark.trio
async def test_closing_a_connection_drops_its_references(served):
    kernel, path = served
    await kernel.init_module(image("hello"))
    async with AsyncClient(path, client_name="holder") as holder:
        await holder.try_module_get("hello")
        await holder.try_module_get("hello")
        info = await holder.module("hello")
        assert info["refcnt"] == 2
        assert [(r["owner"], r["count"]) for r in info["references"]] == [(f"session holder[{os.getpid()}]", 2)]
        async with AsyncClient(path) as other:
            with pytest.raises(BlockingIOError):
                await other.delete_module("hello")
            with pytest.raises(OSError) as info:
                await other.module_put("hello")  # not its reference to drop
            assert info.value.errno == errno.EINVAL
    await until(lambda: kernel.find_module("hello").refcount == 0, "references dropped")
    await kernel.delete_module("hello")


@pytest.mark.trio
async def test_closing_a_connection_gives_up_its_waiting_removal(served):
    kernel, path = served
    await kernel.init_module(image("hello"))
    async with AsyncClient(path) as holder:
        await holder.try_module_get("hello")
        remover = await Raw.connect(path)
        await remover.send({"op": "delete_module", "id": 1, "name": "hello", "wait": True})
        await until(lambda: state(kernel, "hello") == "going", "removal waiting")
        remover.close()
        await until(lambda: state(kernel, "hello") == "live", "removal given up")
        # Still usable: the stop was reversible.
        await holder.try_module_get("hello")
        assert (await holder.module("hello"))["refcnt"] == 2


@pytest.mark.trio
async def test_cancel_gives_up_a_waiting_removal(served):
    kernel, path = served
    await kernel.init_module(image("hello"))
    raw = await Raw.connect(path)
    await raw.send({"op": "try_module_get", "id": "get", "name": "hello"},
                   {"op": "delete_module", "id": "rm", "name": "hello", "wait": True})
    assert (await raw.receive())["id"] == "get"
    await until(lambda: state(kernel, "hello") == "going", "removal waiting")
    await raw.send({"op": "cancel", "id": "c", "target": "rm"})
    replies = {r["id"]: r for r in [await raw.receive(), await raw.receive()]}
    assert replies["c"]["result"] is True
    assert replies["rm"]["error"]["errno"] == "ECANCELED"
    assert state(kernel, "hello") == "live"
    raw.close()


@pytest.mark.trio
async def test_a_waiting_removal_times_out_and_the_module_stays(served):
    kernel, path = served
    await kernel.init_module(image("hello"))
    async with AsyncClient(path) as client:
        await client.try_module_get("hello")
        with pytest.raises(TimeoutError):
            await client.delete_module("hello", wait=True, timeout=0.01)
        assert (await client.module("hello"))["state"] == "live"


@pytest.mark.trio
async def test_dmesg_follow_streams_records_until_cancelled(served):
    kernel, path = served
    raw = await Raw.connect(path)
    last = kernel.log.records()[-1].seq if kernel.log.records() else 0
    await raw.send({"op": "dmesg", "id": 1, "follow": True, "since": last})
    await kernel.init_module(image("hello"))
    while True:
        message = await raw.receive()
        assert message["id"] == 1 and "event" in message
        if "Hello, world" in message["event"]["text"]:
            break
    assert message["event"]["line"].endswith("Hello, world")
    await raw.send({"op": "cancel", "id": 2, "target": 1})
    ends = {m["id"]: m for m in [await raw.receive(), await raw.receive()] if "event" not in m}
    assert ends[1]["error"]["errno"] == "ECANCELED" and ends[2]["result"] is True
    raw.close()


@pytest.mark.trio
async def test_modinfo_of_an_image_needs_no_load(served):
    kernel, path = served
    async with AsyncClient(path) as client:
        info = await client.modinfo(image("hello"))
        assert info["name"] == "hello"
        assert ["license", "GPL"] in info["modinfo"]
        with pytest.raises(OSError) as bad:
            await client.modinfo(b"not an elf")
        assert bad.value.errno == errno.ENOEXEC
    assert kernel.modules() == []


PEER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from kloader_client import Client
    image = open(sys.argv[2], "rb").read()
    os.setgid(65534); os.setuid(65534)   # connect as nobody: SO_PEERCRED says so
    results = {}
    with Client(sys.argv[1]) as client:
        for name, call in [("init_module", lambda: client.init_module(image)),
                           ("delete_module", lambda: client.delete_module("hello")),
                           ("param_set", lambda: client.param_set("hello", "x", "1")),
                           ("try_module_get", lambda: client.try_module_get("hello")),
                           ("module_put", lambda: client.module_put("hello"))]:
            try:
                call()
                results[name] = "ok"
            except OSError as exc:
                results[name] = [type(exc).__name__, exc.errno, exc.strerror]
    print(json.dumps(results))
""")


@pytest.mark.trio
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")
async def test_another_uid_may_look_but_not_change_the_kernel(nursery):
    import json

    kernel = Kernel(KernelOptions())
    await kernel.init_module(image("hello"))
    # A socket reachable by nobody, for this test only.
    directory = tempfile.mkdtemp(prefix="kloaderd-perm-")
    try:
        os.chmod(directory, 0o755)
        path = await nursery.start(serve, kernel, os.path.join(directory, "k.sock"))
        os.chmod(path, 0o666)
        done = await trio.run_process([sys.executable, "-c", PEER_SCRIPT, path, str(FIXTURES / "hello.ko")],
                                      capture_stdout=True, capture_stderr=True, check=False)
        assert done.returncode == 0, done.stderr.decode()
        results = json.loads(done.stdout)
        for op in ("init_module", "delete_module", "param_set"):
            kind, code, message = results[op]
            assert (kind, code) == ("PermissionError", errno.EPERM)
            assert "Operation not permitted" in message and "uid 65534" in message
        assert results["try_module_get"] == results["module_put"] == "ok"
        assert state(kernel, "hello") == "live"
    finally:
        nursery.cancel_scope.cancel()
        shutil.rmtree(directory, ignore_errors=True)    # the server may not have unlinked its socket yet


# ---------------------------------------------------------------- the kloaderd process


class Daemon:
    """`kloaderd` as a user starts it: a process printing its socket path.

    Its stderr (the console log) goes to a file, so a chatty daemon can never
    block on a full pipe.
    """

    def __init__(self, path: str, *args: str) -> None:
        self.path = path
        self.stderr = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([command("kloaderd"), "--socket", path, *args],
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        line = self.proc.stdout.readline().strip()
        assert line == path, f"kloaderd said {line!r}; stderr: {self.console()}"

    def console(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        return self.proc.returncode, self.console()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()


@pytest.fixture
def daemon(tmp_path):
    started: list[Daemon] = []

    def start(*args: str, path: str | None = None) -> Daemon:
        started.append(Daemon(path or str(tmp_path / "kloaderd.sock"), *args))
        return started[-1]

    yield start
    for d in started:
        d.kill()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory):
    """One `kloaderd` for a whole test module (test_client, test_commands)."""
    d = Daemon(str(tmp_path_factory.mktemp("daemon") / "kloaderd.sock"))
    yield d.path
    d.kill()


@pytest.fixture
def daemon_socket(shared_daemon):
    """The shared daemon's socket, with no module left loaded after the test."""
    yield shared_daemon
    with Client(shared_daemon) as client:
        for module in client.modules():  # newest first: users before what they use
            client.delete_module(module["name"], force=True)


def test_sigterm_gives_up_waiters_runs_exits_and_removes_the_socket(daemon):
    d = daemon()
    assert os.stat(d.path).st_mode & 0o777 == 0o600
    holder = Client(d.path)
    holder.init_module(image("exporter"))
    holder.init_module(image("user"))
    holder.init_module(image("hello"))
    holder.try_module_get("hello")
    waiter = Client(d.path)
    waiter._send("delete_module", None, name="hello", wait=True)  # left waiting
    code, err = d.stop(signal.SIGTERM)
    assert code == 0, err
    assert not os.path.exists(d.path)
    # Every exit ran, users before what they use.
    assert "Goodbye, world" in err
    assert "user: unloaded" in err and err.index("user: unloaded") < err.index("exporter: unloaded")
    with pytest.raises(ConnectionError):
        waiter._receive(0)
    holder.close()
    waiter.close()


def test_sigint_shuts_down_the_same_way(daemon):
    d = daemon()
    with Client(d.path) as client:
        client.init_module(image("hello"))
    code, err = d.stop(signal.SIGINT)
    assert code == 0 and "Goodbye, world" in err and not os.path.exists(d.path)


def test_a_second_daemon_on_a_live_socket_refuses_and_a_stale_socket_is_replaced(daemon, tmp_path):
    first = daemon()
    second = subprocess.run([command("kloaderd"), "--socket", first.path], capture_output=True, text=True,
                            timeout=30)
    assert second.returncode == 1
    assert second.stderr.strip() == f"kloaderd: another kloaderd is already listening on {first.path}"
    with Client(first.path) as client:  # the first is untouched
        assert client.modules() == []
    first.kill()  # SIGKILL: the socket file stays behind
    assert os.path.exists(first.path)
    replacement = daemon()
    with Client(replacement.path) as client:
        assert client.status()["server"]["pid"] == replacement.proc.pid


def test_kernel_options_become_daemon_flags(daemon):
    d = daemon("--max-image-size", "1000", "--log-level", "err")
    with Client(d.path) as client:
        assert client.server["max_frame"] == 1000 + (1 << 20)
        with pytest.raises(OSError) as info:
            client.init_module(image("hello"))
        assert info.value.errno == errno.EFBIG
    code, err = d.stop()
    assert code == 0


def test_bad_options_are_refused_before_listening(tmp_path):
    done = subprocess.run([command("kloaderd"), "--socket", str(tmp_path / "s"), "--log-level", "loud"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "unknown log level 'loud'" in done.stderr
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------- issue 13: defects through the socket


def renamed(name: bytes) -> bytes:
    """hello.ko whose .modinfo says `name=NAME`: the description and author
    entries give way to it, so the section keeps its size."""
    data = image("hello")
    old = b"description=Says hello on load and goodbye on unload\x00author=kloader\x00"
    entry = b"name=" + name + b"\x00"
    assert len(entry) <= len(old)
    return data.replace(old, entry + b"\x00" * (len(old) - len(entry)))


def run_command(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([command(name), *args], capture_output=True, text=True, timeout=60)


def test_a_nan_timeout_is_einval(daemon_socket):
    with Client(daemon_socket) as client:
        client.init_module(image("hello"))
        with pytest.raises(OSError) as info:
            client.delete_module("hello", wait=True, timeout=float("nan"))
        assert info.value.errno == errno.EINVAL and "timeout" in info.value.strerror
        assert client.module("hello")["state"] == "live"


@pytest.mark.parametrize("opener, code", [
    (lambda: os.open(FIXTURES / "hello.ko", os.O_PATH), errno.EBADF),
    (lambda: os.open("/proc/self/mem", os.O_RDONLY), errno.EINVAL),
])
def test_finit_module_refuses_what_kernel_read_file_refuses(daemon_socket, opener, code):
    fd = opener()
    try:
        with Client(daemon_socket) as client:
            with pytest.raises(OSError) as info:
                client.finit_module(fd)
            assert info.value.errno == code, info.value
            assert client.modules() == []
    finally:
        os.close(fd)


def test_a_module_name_longer_than_module_name_len_is_refused(daemon_socket):
    with Client(daemon_socket) as client:
        with pytest.raises(OSError) as info:
            client.init_module(renamed(b"n" * 62))
        assert info.value.errno == errno.ENOEXEC and "at most 55" in info.value.strerror
        assert client.init_module(renamed(b"n" * 55)) == "n" * 55     # the longest Linux allows
        client.delete_module("n" * 55)


def test_control_characters_in_a_name_cannot_forge_output(daemon):
    daemon_socket = daemon().path            # a fresh kernel: the taint line names the module
    evil = "h\x1b[2J"         # "clear the screen" in the module's name
    with Client(daemon_socket) as client:
        assert client.init_module(renamed(evil.encode())) == evil
    lsmod = run_command("klsmod", "--socket", daemon_socket)
    assert lsmod.returncode == 0 and "\x1b" not in lsmod.stdout
    assert "h\\x1b[2J" in lsmod.stdout.splitlines()[1]
    long_form = run_command("klsmod", "-l", "--socket", daemon_socket)
    assert "\x1b" not in long_form.stdout and "h\\x1b[2J" in long_form.stdout
    dmesg = run_command("kdmesg", "--socket", daemon_socket)
    assert "\x1b" not in dmesg.stdout and "h\\x1b[2J: loading out-of-tree module" in dmesg.stdout


def test_dmesg_replies_are_paged_and_the_client_reads_every_page(daemon_socket):
    from kloaderd import uapi

    with Client(daemon_socket) as client:
        # A first load into a fresh shared daemon also logs the taint line:
        # let it come before `since`, so each load below logs exactly two.
        client.init_module(image("hello"))
        client.delete_module("hello")
        before = client.dmesg()
        since = before[-1]["seq"]
        for _ in range(uapi.DMESG_PAGE):          # two pages' worth of records
            client.init_module(image("hello"))
            client.delete_module("hello")
        page = client._call("dmesg", since=since, limit=10 * uapi.DMESG_PAGE)
        assert len(page) == uapi.DMESG_PAGE       # one reply is one page at most
        records = client.dmesg(since)
        assert len(records) == 2 * uapi.DMESG_PAGE
        assert [r["seq"] for r in records] == sorted({r["seq"] for r in records})
        assert records[:uapi.DMESG_PAGE] == page


@pytest.mark.trio
async def test_dmesg_follow_streams_are_bounded(served):
    from kloaderd.server.ops import MAX_FOLLOWS

    kernel, path = served
    raw = await Raw.connect(path)
    await raw.send(*({"op": "dmesg", "id": i, "follow": True} for i in range(MAX_FOLLOWS + 1)))
    refused = await raw.receive()
    assert refused["id"] == MAX_FOLLOWS and refused["error"]["errno"] == "EMFILE"
    await raw.send({"op": "cancel", "id": "c", "target": 0})
    while (reply := await raw.receive())["id"] != 0:
        pass
    assert reply["error"]["errno"] == "ECANCELED"
    await raw.send({"op": "dmesg", "id": "again", "follow": True})   # a slot is free again
    kernel.log.emit(6, "after")
    while (event := await raw.receive()).get("id") != "again" or event["event"]["text"] != "after":
        assert "error" not in event, event
    raw.close()


@pytest.mark.trio
async def test_queued_descriptors_are_bounded_across_connections(nursery, monkeypatch, tmp_path):
    from kloaderd.server import server as server_module

    monkeypatch.setattr(server_module, "MAX_QUEUED_FDS_TOTAL", 3)
    path = await nursery.start(serve, Kernel(KernelOptions()), str(tmp_path / "k.sock"))
    first, second = await Raw.connect(path), await Raw.connect(path)
    fds = [os.open(FIXTURES / "hello.ko", os.O_RDONLY) for _ in range(3)]
    try:
        await first.send({"op": "hello", "id": 0}, fds=fds)
        assert "result" in await first.receive()
        await second.send({"op": "finit_module", "id": 1}, fds=[fds[0]])
        reply = await second.receive()           # the daemon holds 3 already: this one was closed
        assert reply["error"]["errno"] == "EBADF", reply
        await first.send({"op": "finit_module", "id": 2})
        assert (await first.receive())["result"] == "hello"
    finally:
        for fd in fds:
            os.close(fd)
        first.close()
        second.close()


def test_the_default_socket_lives_in_a_private_directory(tmp_path, monkeypatch):
    from kloaderd import uapi
    from kloaderd.server.server import make_private_dir

    private = tmp_path / "kloaderd-priv"
    monkeypatch.delenv("KLOADERD_SOCKET", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(uapi, "private_socket_dir", lambda: str(private))
    assert uapi.default_socket_path() == str(private / "kloaderd.sock")
    make_private_dir(str(private))
    assert private.stat().st_mode & 0o777 == 0o700 and private.stat().st_uid == os.geteuid()
    make_private_dir(str(private))                  # ours already: accepted
    private.chmod(0o755)
    with pytest.raises(KernelError) as info:
        make_private_dir(str(private))
    assert info.value.errno == errno.EPERM and "mode 0755" in info.value.message
    private.rmdir()
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    private.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KernelError) as info:
        make_private_dir(str(private))
    assert "not a directory" in info.value.message


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own a directory as another uid")
def test_a_squatted_private_directory_is_refused_naming_its_owner(tmp_path, monkeypatch):
    squatted = tmp_path / "kloaderd-squat"
    squatted.mkdir(mode=0o700)
    os.chown(squatted, 65534, 65534)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import kloaderd.uapi, kloaderd.server.main, sys
        kloaderd.uapi.private_socket_dir = lambda: {str(squatted)!r}
        sys.exit(kloaderd.server.main.main([]))
        """)], capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ("KLOADERD_SOCKET", "XDG_RUNTIME_DIR")})
    assert done.returncode == 1
    assert f"{squatted} belongs to uid 65534" in done.stderr and "Traceback" not in done.stderr


IMPOSTOR = textwrap.dedent("""
    import os, socket, sys
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(sys.argv[1])
    os.setgid(65534); os.setuid(65534)    # SO_PEERCRED is who called listen()
    sock.listen(1)
    print("ready", flush=True)
    while True:
        sock.accept()[0].close()
""")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to listen as another uid")
def test_clients_refuse_a_daemon_run_by_another_user(tmp_path):
    path = str(tmp_path / "k.sock")
    impostor = subprocess.Popen([sys.executable, "-c", IMPOSTOR, path], stdout=subprocess.PIPE, text=True)
    try:
        assert impostor.stdout.readline().strip() == "ready"
        from kloader_client import UntrustedDaemon
        with pytest.raises(UntrustedDaemon) as info:
            Client(path)
        assert info.value.errno == errno.EPERM and "served by uid 65534 (nobody" in info.value.strerror
        lsmod = run_command("klsmod", "--socket", path)
        assert lsmod.returncode == 1 and "Traceback" not in lsmod.stderr
        assert lsmod.stderr.startswith("klsmod: ERROR: the socket") and "uid 65534" in lsmod.stderr
    finally:
        impostor.kill()
        impostor.wait()
        impostor.stdout.close()


def test_a_refused_command_prints_emfile_not_a_traceback(daemon):
    d = daemon("--max-connections-per-uid", "1")
    with Client(d.path):                      # holds the one slot
        done = run_command("klsmod", "--socket", d.path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("klsmod: ERROR: too many connections to kloaderd from uid")


def test_connections_stay_within_the_descriptor_table(tmp_path):
    """Under a small RLIMIT_NOFILE the daemon admits what its table can hold
    and tells the rest EMFILE; nobody hangs unanswered."""
    import resource

    path = str(tmp_path / "k.sock")

    def small_table() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    proc = subprocess.Popen([command("kloaderd"), "--socket", path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=small_table)
    clients, answers = [], []
    try:
        assert proc.stdout.readline().strip() == path
        for _ in range(150):
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(20)
            sock.connect(path)
            try:
                sock.sendall(msgpack.packb({"op": "hello", "id": 1}))
            except (BrokenPipeError, ConnectionResetError):
                pass                              # refused already: its frame is waiting
            decoder = msgpack.Unpacker(raw=False)
            while not (messages := list(decoder)):
                chunk = sock.recv(65536)
                assert chunk, "closed without a word"
                decoder.feed(chunk)
            answers.append(messages[0])
            clients.append(sock)
        admitted = [a for a in answers if "result" in a]
        refused = [a for a in answers if "error" in a]
        assert admitted and refused and len(admitted) + len(refused) == 150
        assert {a["error"]["errno"] for a in refused} == {"EMFILE"}
    finally:
        for sock in clients:
            sock.close()
        proc.terminate()
        proc.communicate(timeout=30)


def test_the_daemon_freezes_what_it_keeps_and_reports_its_gc(daemon):
    """Issue 14: a full collection with thousands of modules loaded walked
    them all (300+ ms); the daemon freezes start-up objects and each loaded
    module's, and `status` shows the longest pause."""
    d = daemon()
    with Client(d.path) as client:
        before = client.status()["server"]["gc"]
        assert before["freezes"] > 0
        client.init_module(image("hello"))
        after = client.status()["server"]["gc"]
        assert after["freezes"] > before["freezes"]
        assert after["longest_pause_ms"] >= 0 and after["collections"] >= before["collections"]
