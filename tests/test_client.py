"""The Python client against a running `kloaderd`: every method, and every
failure as the `OSError` subclass a system call would raise."""

from __future__ import annotations

import contextlib
import errno
import os
import socket

import pytest
import trio

from kloader_client import AsyncClient, Client, DaemonNotRunning, default_socket_path
from test_server import FIXTURES, daemon, daemon_socket, image, shared_daemon  # noqa: F401 (fixtures)


@pytest.fixture
def path(daemon_socket):
    return daemon_socket


def test_load_list_inspect_remove(path):
    with Client(path) as client:
        assert client.server["version"] == 1
        assert client.init_module(image("hello")) == "hello"
        modules = client.modules()
        assert [m["name"] for m in modules] == ["hello"]
        info = client.module("hello")
        for key in ("name", "state", "refcnt", "holders", "size", "taints", "params"):
            assert key in info
        assert info["state"] == "live" and info["refcnt"] == 0 and info["size"] > 0
        client.delete_module("hello")
        assert client.modules() == []


def test_failures_raise_the_oserror_subclass_of_their_errno(path):
    with Client(path) as client:
        with pytest.raises(FileNotFoundError, match="not currently loaded"):
            client.delete_module("nosuch")
        with pytest.raises(FileNotFoundError):
            client.module("nosuch")
        client.init_module(image("hello"))
        with pytest.raises(FileExistsError):
            client.init_module(image("hello"))
        client.try_module_get("hello")
        with pytest.raises(BlockingIOError, match="in use"):
            client.delete_module("hello")
        with pytest.raises(TimeoutError):
            client.delete_module("hello", wait=True, timeout=0.01)
        assert client.module("hello")["state"] == "live"
        client.module_put("hello")
        with pytest.raises(OSError) as info:
            client.module_put("hello")
        assert type(info.value) is OSError and info.value.errno == errno.EINVAL
        with pytest.raises(OSError) as info:
            client.init_module(b"\x7fELF but not really")
        assert info.value.errno == errno.ENOEXEC


def test_an_unknown_symbol_is_enoent_and_the_log_names_it(path):
    with Client(path) as client:
        with pytest.raises(FileNotFoundError):
            client.init_module(image("unknownsym"))
        assert any("Unknown symbol" in r["text"] for r in client.dmesg())
        assert client.modules() == []


def test_dependencies_show_as_holders_and_block_removal(path):
    with Client(path) as client:
        client.init_module(image("exporter"))
        client.init_module(image("user"))
        assert client.module("exporter")["holders"] == ["user"]
        with pytest.raises(BlockingIOError, match="in use by: user"):
            client.delete_module("exporter")


def test_force_loads_a_module_with_the_wrong_vermagic(path):
    with Client(path) as client:
        with pytest.raises(OSError) as info:
            client.init_module(image("badmagic"))
        assert info.value.errno == errno.ENOEXEC
        assert client.init_module(image("badmagic"), force_vermagic=True, force_modversion=True) == "badmagic"


def test_parameters_at_load_and_after(path):
    with Client(path) as client:
        client.init_module(image("params"), "pint=7")
        assert client.param_get("params", "pint") == "7"
        assert client.module("params")["params"]["pint"] == "7"
        client.param_set("params", "pint", "9")
        assert client.param_get("params", "pint") == "9"
        with pytest.raises(FileNotFoundError):
            client.param_get("params", "nosuch")


def test_finit_module_sends_a_descriptor_not_bytes(path, tmp_path):
    with Client(path) as client:
        assert client.finit_module(FIXTURES / "hello.ko") == "hello"
        client.delete_module("hello")
        with open(FIXTURES / "hello.ko", "rb") as f:
            assert client.finit_module(f.fileno()) == "hello"


def test_kallsyms_has_kernel_and_module_symbols(path):
    with Client(path) as client:
        client.init_module(image("exporter"))
        symbols = client.kallsyms()
        by_name = {s["name"]: s for s in symbols}
        assert (by_name["_printk"]["type"], by_name["_printk"]["module"]) == ("T", None)
        assert by_name["exp_add"]["module"] == "exporter"
        assert by_name["exp_add"]["type"] == "T"
        assert by_name["exp_add"]["address"] >= 0xFFFFFFFFA0000000


def test_dmesg_and_follow_dmesg(path):
    with Client(path) as client:
        since = client.dmesg()[-1]["seq"] if client.dmesg() else 0
        client.init_module(image("hello"))
        lines = [r["line"] for r in client.dmesg(since)]
        assert any(line.endswith("Hello, world") for line in lines)
        stream = client.follow_dmesg(since)
        first = next(stream)
        assert first["seq"] > since
        stream.close()
        # The connection is back in step after the stream ends.
        assert client.module("hello")["state"] == "live"


def test_following_the_log_of_a_daemon_that_dies_ends_with_one_error_and_closes_quietly(daemon):
    """The stream's end is the lost connection, said once: closing it sent a
    `cancel` on the dead connection and raised a second ConnectionResetError
    from inside the first."""
    d = daemon()
    with Client(d.path) as client:
        client.init_module(image("hello"))      # a line to follow
        stream = client.follow_dmesg()
        next(stream)
        d.kill()
        with pytest.raises(ConnectionResetError) as info:
            for _ in stream:
                pass
        assert info.value.__context__ is None
    d = daemon(path=d.path + "2")
    with Client(d.path) as client:
        client.init_module(image("hello"))
        stream = client.follow_dmesg()
        next(stream)
        d.kill()
        stream.close()              # the client has not noticed yet: still quiet


def test_a_missing_daemon_is_one_clear_error(tmp_path, monkeypatch):
    missing = str(tmp_path / "none.sock")
    with pytest.raises(DaemonNotRunning) as info:
        Client(missing)
    assert isinstance(info.value, ConnectionError)
    assert missing in str(info.value) and "kloaderd" in str(info.value)
    # A socket file nobody listens on is the same thing.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "stale.sock"))
    stale.close()
    with pytest.raises(DaemonNotRunning):
        Client(str(tmp_path / "stale.sock"))
    monkeypatch.setenv("KLOADERD_SOCKET", missing)
    assert default_socket_path() == missing
    with pytest.raises(DaemonNotRunning):
        Client()


async def pipelined_calls_fd_passing_errors_and_follow(path: str, tmp_path) -> None:
    """The AsyncClient's whole surface, written in the event loop's own terms only
    where the loop is the test's business (anyio speaks both)."""
    import anyio

    async with AsyncClient(path) as client:
        assert await client.init_module(image("hello")) == "hello"
        await client.try_module_get("hello")
        removed = anyio.Event()

        async def remove() -> None:
            await client.delete_module("hello", wait=True)
            removed.set()

        async with anyio.create_task_group() as group:
            group.start_soon(remove)
            with anyio.fail_after(10):
                while (await client.module("hello"))["state"] != "going":
                    await anyio.sleep(0.001)
            assert not removed.is_set()
            await client.module_put("hello")  # same connection, not held up
        assert removed.is_set()
        with pytest.raises(FileNotFoundError):
            await client.module("hello")
        assert await client.finit_module(FIXTURES / "hello.ko") == "hello"   # the fd rides along
        async with contextlib.aclosing(client.follow_dmesg()) as records:
            async for record in records:
                assert record["seq"] >= 1
                break
        assert (await client.status())["modules"] == 1
        await client.delete_module("hello")
    with pytest.raises(FileNotFoundError):       # as itself, not in an ExceptionGroup
        async with AsyncClient(path) as client:
            await client.delete_module("nosuch")
    with pytest.raises(DaemonNotRunning):
        async with AsyncClient(str(tmp_path / "none.sock")):
            pass


def test_async_client_under_asyncio(path, tmp_path):
    import asyncio

    asyncio.run(pipelined_calls_fd_passing_errors_and_follow(path, tmp_path))


def test_async_client_under_trio(path, tmp_path):
    trio.run(pipelined_calls_fd_passing_errors_and_follow, path, tmp_path)


def test_client_errors_keep_the_daemons_words(path):
    with Client(path) as client:
        with pytest.raises(FileNotFoundError) as info:
            client.delete_module("nosuch")
        assert info.value.strerror == "Module nosuch is not currently loaded"
        assert os.strerror(errno.ENOENT) not in str(info.value)


def test_the_client_depends_only_on_the_wire_contract():
    """Issue 15: nothing under client/ imports the daemon's server or kernel,
    statically or at run time, so the client stands alone on kloaderd.uapi."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    import kloader_client

    root = Path(kloader_client.__file__).parent
    for source in root.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(("kloaderd.server", "kloaderd.kernel")), f"{source}: {name}"
    modules = ["kloader_client"] + [f"kloader_client.commands.{p.stem}" for p in (root / "commands").glob("k*.py")]
    loaded = subprocess.run([sys.executable, "-c", f"import sys\nfor m in {modules!r}: __import__(m)\n"
                             "print(' '.join(sorted(m for m in sys.modules if m.startswith(('kloaderd', 'trio')))))"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert not [m for m in loaded if m.startswith(("kloaderd.server", "kloaderd.kernel", "trio"))], loaded
    assert "kloaderd.uapi" in loaded
