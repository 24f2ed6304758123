"""The embedding API: `kloaderd.serve()` in the caller's trio run and
`kloaderd.run_in_thread()` for everyone else, through real sockets, a real
kernel and real modules."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import warnings
from pathlib import Path

import pytest

import kloaderd
from kloader_client import AsyncClient, Client
from kloaderd.embed import KernelProblems, KernelProblemWarning, Problems
from kloaderd.errors import KernelError
from kloaderd.kernel.printk import LogBuffer, Problem

LEAKY_C = r"""
#include <linux/module.h>
#include <linux/errno.h>
#include <linux/slab.h>
static void *kept;
static int __init leaky_init(void)
{
	kept = kmalloc(100, GFP_KERNEL);
	pr_info("leaky: kept %d bytes\n", kept ? 100 : 0);
	return kept ? 0 : -ENOMEM;
}
static void __exit leaky_exit(void) { pr_info("leaky: forgetting to free\n"); }
module_init(leaky_init);
module_exit(leaky_exit);
MODULE_LICENSE("GPL");
"""

NULLDEREF_C = r"""
#include <linux/module.h>
static int __init nullderef_init(void)
{
	return *(volatile int *)0;
}
module_init(nullderef_init);
MODULE_LICENSE("GPL");
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Images of two modules that misbehave on purpose, built once."""
    from kloaderd.build import build_module

    directory = tmp_path_factory.mktemp("embed-modules")
    images = {}
    for name, source in (("leaky", LEAKY_C), ("nullderef", NULLDEREF_C)):
        (directory / f"{name}.c").write_text(source)
        images[name] = build_module([directory / f"{name}.c"], directory / f"{name}.ko").read_bytes()
    return images


def image(fixture_ko, name: str) -> bytes:
    return fixture_ko(name).read_bytes()


def log_text(daemon: kloaderd.Daemon) -> str:
    return "\n".join(daemon.dmesg())


# -- serve(): a daemon in this trio run ----------------------------------------

@pytest.mark.trio
async def test_serve_listens_on_a_private_socket_and_exposes_the_kernel(fixture_ko):
    async with kloaderd.serve() as daemon:
        socket_path = Path(daemon.socket_path)
        assert socket_path.is_socket()
        assert len(os.fsencode(daemon.socket_path)) < 108
        assert socket_path.parent.stat().st_mode & 0o077 == 0
        async with AsyncClient(daemon.socket_path) as client:
            assert await client.init_module(image(fixture_ko, "hello")) == "hello"
        # What no socket shows: the kernel object itself.
        assert daemon.kernel.find_module("hello").state.value == "live"
        assert daemon.running
    assert not daemon.running
    assert not socket_path.exists() and not socket_path.parent.exists()
    assert "Goodbye, world" in log_text(daemon), "leaving the context runs exit functions"
    assert daemon.kernel.modules() == []
    assert not daemon.problems


@pytest.mark.trio
async def test_leaving_removes_users_before_what_they_use(fixture_ko):
    async with kloaderd.serve() as daemon:
        async with AsyncClient(daemon.socket_path) as client:
            await client.init_module(image(fixture_ko, "exporter"))
            await client.init_module(image(fixture_ko, "user"))
            await client.init_module(image(fixture_ko, "hello"))
    lines = daemon.dmesg()
    user_gone = next(i for i, line in enumerate(lines) if line.endswith("user: unloaded"))
    exporter_gone = next(i for i, line in enumerate(lines) if line.endswith("exporter: unloaded"))
    assert user_gone < exporter_gone


@pytest.mark.trio
async def test_serve_on_an_explicit_path(tmp_path):
    path = tmp_path / "k.sock"
    async with kloaderd.serve(path) as daemon:
        assert daemon.socket_path == str(path)
        assert path.is_socket()
    assert not path.exists()
    assert tmp_path.exists(), "a directory the caller chose is not the daemon's to remove"


@pytest.mark.trio
async def test_an_error_in_the_body_comes_out_as_itself_and_the_daemon_stops():
    with pytest.raises(KernelError) as caught:
        async with kloaderd.serve() as daemon:
            await daemon.kernel.delete_module("nosuchmodule")
    assert caught.value.errno == errno.ENOENT
    assert not daemon.running
    assert not Path(daemon.socket_path).exists()


@pytest.mark.trio
async def test_kernel_options_reach_the_kernel_and_bad_ones_are_refused():
    async with kloaderd.serve(watchdog=0.5, try_get_coming=True) as daemon:
        assert daemon.kernel.options.watchdog == 0.5
        assert daemon.kernel.options.try_get_coming is True
    with pytest.raises(TypeError, match="no_such_option"):
        async with kloaderd.serve(no_such_option=1):
            pass
    with pytest.raises(ValueError, match="on_problems"):
        async with kloaderd.serve(on_problems="explode"):
            pass


@pytest.mark.trio
async def test_a_second_daemon_on_a_live_socket_is_refused(tmp_path):
    path = tmp_path / "k.sock"
    async with kloaderd.serve(path):
        with pytest.raises(KernelError) as caught:
            async with kloaderd.serve(path):
                pass
        assert caught.value.errno == errno.EADDRINUSE
        assert path.is_socket(), "the refused daemon must not remove the live one's socket"


# -- leaks and oopses on leaving ------------------------------------------------

@pytest.mark.trio
async def test_a_leak_is_warned_about_on_leaving(built):
    with pytest.warns(KernelProblemWarning, match=r"leaky: leaked 100 bytes in 1 allocation"):
        async with kloaderd.serve() as daemon:
            async with AsyncClient(daemon.socket_path) as client:
                await client.init_module(built["leaky"])
    assert len(daemon.problems.leaks) == 1
    assert not daemon.problems.oopses


@pytest.mark.trio
async def test_on_problems_raise_and_ignore(built):
    with pytest.raises(KernelProblems) as caught:
        async with kloaderd.serve(on_problems="raise") as daemon:
            async with AsyncClient(daemon.socket_path) as client:
                await client.init_module(built["leaky"])
    assert caught.value.problems is daemon.problems
    assert "leaky: leaked" in str(caught.value)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with kloaderd.serve(on_problems="ignore") as daemon:
            async with AsyncClient(daemon.socket_path) as client:
                await client.init_module(built["leaky"])
    assert daemon.problems.leaks


@pytest.mark.trio
async def test_an_oops_is_reported_with_its_taint(built):
    with pytest.warns(KernelProblemWarning, match="NULL pointer dereference"):
        async with kloaderd.serve() as daemon:
            async with AsyncClient(daemon.socket_path) as client:
                with pytest.raises(OSError) as failed:
                    await client.init_module(built["nullderef"])
                assert failed.value.errno == errno.EFAULT
            assert daemon.find_problems().oopses, "seen as soon as it happens, not only on exit"
    problems = daemon.problems
    assert problems.oopses == ("BUG: kernel NULL pointer dereference, address: 0000000000000000",)
    assert "D" in problems.taints and problems.tainted.startswith("Tainted:")


@pytest.mark.trio
async def test_problems_never_hide_the_callers_own_error(built):
    with pytest.warns(KernelProblemWarning), pytest.raises(LookupError):
        async with kloaderd.serve(on_problems="raise") as daemon:
            async with AsyncClient(daemon.socket_path) as client:
                await client.init_module(built["leaky"])
            raise LookupError("the test's own failure")


def test_problems_are_the_reports_the_kernel_made_not_text_that_looks_like_one():
    """Each report's summary line carries its Problem, set by the code that
    reports it (report_oops, the slab, WARN(), the sanitizer): the embedder
    collects those events; look-alike text (a module's own printk) is none."""
    log = LogBuffer()
    log.emit(6, "hello: loading out-of-tree module taints kernel.")
    log.emit(1, "BUG: unable to handle page fault for address: ffffffffa0001000", problem=Problem.OOPS)
    log.emit(1, "#PF: supervisor write access in kernel mode")
    log.emit(1, "Oops: 0003 [#1] PREEMPT SMP NOPTI")
    log.emit(0, "watchdog: BUG: soft lockup - CPU#0 stuck for 5s! [insmod:7]", problem=Problem.OOPS)
    log.emit(3, "faults: leaked 64 bytes in 2 allocations", problem=Problem.LEAK)
    log.emit(4, "WARNING: module_put: hello refcount underflow (put by module hello)", problem=Problem.WARNING)
    log.emit(3, "BUG: golden rule: call into module a without a reference in b+0x1/0x2",
             problem=Problem.SANITIZER)
    log.printk(b"\x013BUG: hello's own words, not a report\n", "hello")
    log.emit(3, "WARNING: a line of a report whose summary is elsewhere")
    problems = Problems.from_log(log.records(), {"D", "L", "W", "O"}, "Tainted: G  D W  O  L")
    assert problems.oopses == ("BUG: unable to handle page fault for address: ffffffffa0001000",
                               "watchdog: BUG: soft lockup - CPU#0 stuck for 5s! [insmod:7]")
    assert problems.leaks == ("faults: leaked 64 bytes in 2 allocations",)
    assert problems.warnings == ("WARNING: module_put: hello refcount underflow (put by module hello)",)
    assert problems.sanitizer == ("BUG: golden rule: call into module a without a reference in b+0x1/0x2",)
    assert problems.taints == "DLW"
    assert "2 oopses" in str(problems) and "1 leak:" in str(problems) and "1 sanitizer report:" in str(problems)
    assert not Problems.from_log(LogBuffer().records())


# -- run_in_thread(): a daemon on a thread of its own ---------------------------

def test_run_in_thread_serves_synchronous_clients(fixture_ko):
    with kloaderd.run_in_thread() as daemon:
        with Client(daemon.socket_path) as client:
            client.init_module(image(fixture_ko, "hello"))
            client.try_module_get("hello")
            info = daemon.run_sync(daemon.kernel.module_info, "hello")
            assert info["refcnt"] == 1
            assert not daemon.find_problems()
            assert any("Hello, world" in line for line in daemon.dmesg())
    assert not daemon.running
    assert not Path(daemon.socket_path).exists()
    assert not any(t.name == "kloaderd" and t.is_alive() for t in threading.enumerate())
    assert "Goodbye, world" in log_text(daemon)


def test_run_awaits_kernel_calls_from_the_callers_thread(fixture_ko):
    with kloaderd.run_in_thread() as daemon:
        name = daemon.run(daemon.kernel.init_module, image(fixture_ko, "hello"))
        assert name == "hello"
        with Client(daemon.socket_path) as client:
            assert [m["name"] for m in client.modules()] == ["hello"]
        daemon.run(daemon.kernel.delete_module, "hello")
        assert daemon.run_sync(daemon.kernel.modules) == []


def test_run_in_thread_startup_errors_are_raised_to_the_caller(tmp_path):
    path = tmp_path / "k.sock"
    with kloaderd.run_in_thread(path) as first:
        with pytest.raises(KernelError) as caught:
            with kloaderd.run_in_thread(path):
                pass
        assert caught.value.errno == errno.EADDRINUSE
        with Client(first.socket_path) as client:
            assert client.modules() == []
    with pytest.raises(TypeError):
        with kloaderd.run_in_thread(watchdgo=1):
            pass


def test_run_in_thread_body_errors_propagate_after_a_clean_stop(fixture_ko):
    with pytest.raises(FileExistsError):
        with kloaderd.run_in_thread() as daemon:
            with Client(daemon.socket_path) as client:
                client.init_module(image(fixture_ko, "hello"))
                client.init_module(image(fixture_ko, "hello"))
    assert not daemon.running
    assert "Goodbye, world" in log_text(daemon)


def test_run_in_thread_reports_problems_in_the_callers_thread(built):
    with pytest.raises(KernelProblems, match="leaky: leaked"):
        with kloaderd.run_in_thread(on_problems="raise") as daemon:
            with Client(daemon.socket_path) as client:
                client.init_module(built["leaky"])


def test_daemons_side_by_side_never_share_a_socket_or_a_kernel(fixture_ko):
    with kloaderd.run_in_thread() as one, kloaderd.run_in_thread() as two:
        assert one.socket_path != two.socket_path
        with Client(one.socket_path) as client:
            client.init_module(image(fixture_ko, "hello"))
        with Client(two.socket_path) as client:
            assert client.modules() == []
            client.init_module(image(fixture_ko, "hello"))   # no EEXIST: another kernel


def test_an_asyncio_suite_uses_the_threaded_daemon(fixture_ko):
    data = image(fixture_ko, "hello")

    async def suite() -> list[str]:
        with kloaderd.run_in_thread() as daemon:
            client = await asyncio.to_thread(Client, daemon.socket_path)
            try:
                await asyncio.to_thread(client.init_module, data)
                return [m["name"] for m in await asyncio.to_thread(client.modules)]
            finally:
                client.close()

    assert asyncio.run(suite()) == ["hello"]


def test_the_api_is_importable_from_the_package_root():
    assert kloaderd.serve is kloaderd.embed.serve
    assert kloaderd.run_in_thread is kloaderd.embed.run_in_thread
    with pytest.raises(AttributeError):
        kloaderd.no_such_thing  # noqa: B018


def test_a_killed_process_s_socket_directory_is_removed_by_the_next_daemon():
    """A process killed while it serves never reaches `serve`'s cleanup: its
    private /tmp/kl-PID-* directory (socket inside) would stay for ever.
    The next daemon of the same user removes those of dead processes, and
    leaves a live one's alone."""
    import subprocess
    import sys
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time, kloaderd\n"
                               "with kloaderd.run_in_thread() as d:\n"
                               "    print(d.socket_path, flush=True); time.sleep(3600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        killed = os.path.dirname(child.stdout.readline().strip())
        assert os.path.basename(killed).startswith(f"kl-{child.pid}-")
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert os.path.exists(os.path.join(killed, "kloaderd.sock"))
    with kloaderd.run_in_thread() as outer, kloaderd.run_in_thread() as inner:
        assert not os.path.exists(killed)
        assert os.path.exists(outer.socket_path)          # alive: kept
        assert os.path.dirname(inner.socket_path) != os.path.dirname(outer.socket_path)
    assert not os.path.exists(outer.socket_path)
