"""An integration suite for a sample driver, written as a driver's author
would write one with kloader's pytest plugin: build the module from source,
load it into a fresh daemon per test, drive it through the client, read the
kernel log, and let the plugin fail any test whose kernel leaked or oopsed.

Run it alone with `python -m pytest examples/fifo`.
"""

from __future__ import annotations

import errno
from functools import partial
from pathlib import Path

import pytest
import trio

import kloaderd as kloader
from kloader_client import Client

HERE = Path(__file__).parent

# A leak, an oops or a kernel WARNING in any test here fails that test.
pytestmark = pytest.mark.kloader(on_problems="raise")


@pytest.fixture
def fifo_ko(kloader_build):
    return kloader_build(HERE / "fifo.c")


@pytest.fixture
def fifo_user_ko(kloader_build, fifo_ko):
    # Linking against fifo's exports is what makes fifo_user depend on fifo.
    return kloader_build(HERE / "fifo_user.c", extra_symbols=[fifo_ko])


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


def test_loads_with_its_default_depth(kloader, fifo_ko):
    assert kloader.finit_module(fifo_ko) == "fifo"
    assert kloader.module("fifo")["state"] == "live"
    assert kloader.param_get("fifo", "depth") == "4"
    assert "fifo: ready, depth 4" in log(kloader)


def test_an_out_of_range_depth_fails_init_and_leaves_nothing(kloader, fifo_ko):
    with pytest.raises(OSError) as failed:
        kloader.finit_module(fifo_ko, "depth=0")
    assert failed.value.errno == errno.EINVAL
    assert kloader.modules() == []
    assert "fifo: depth 0 out of range 1-1024" in log(kloader)


def test_a_user_pins_the_driver_until_it_goes(kloader, fifo_ko, fifo_user_ko):
    kloader.finit_module(fifo_ko, "depth=2")
    kloader.finit_module(fifo_user_ko, "values=5")
    assert "fifo_user: queued 2 of 5" in log(kloader)     # the FIFO was full after two
    assert kloader.module("fifo")["holders"] == ["fifo_user"]
    with pytest.raises(BlockingIOError, match="in use by: fifo_user"):
        kloader.delete_module("fifo")
    kloader.delete_module("fifo_user")
    kloader.delete_module("fifo")
    assert log(kloader)[-2:] == ["fifo_user: drained, sum 3",
                                 "fifo: 2 pushed, 2 popped, 0 left"]


def test_a_writable_parameter_changes_behaviour_at_run_time(kloader, fifo_ko, fifo_user_ko):
    kloader.finit_module(fifo_ko)
    with pytest.raises(PermissionError):
        kloader.param_set("fifo", "depth", "8")        # 0444: read-only once loaded
    kloader.param_set("fifo", "verbose", "1")         # 0644
    kloader.finit_module(fifo_user_ko, "values=2")
    assert [line for line in log(kloader) if line.startswith("fifo: push")] == \
        ["fifo: push 1", "fifo: push 2"]


@pytest.mark.trio
async def test_removal_waits_for_the_last_reference(kloader_async, fifo_ko):
    await kloader_async.finit_module(fifo_ko)
    await kloader_async.try_module_get("fifo")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(kloader_async.delete_module, "fifo", wait=True))
        while (await kloader_async.module("fifo"))["state"] != "going":
            await trio.sleep(0.01)
        with pytest.raises(OSError) as refused:               # a going module takes no new ones
            await kloader_async.try_module_get("fifo")
        assert refused.value.errno == errno.EBUSY
        await kloader_async.module_put("fifo")               # the remover wakes and finishes
    assert await kloader_async.modules() == []


def test_a_leak_is_caught_when_the_daemon_stops(kloader_build):
    leaky = kloader_build(HERE / "fifo.c", defines=["FIFO_BUG_LEAK"])
    with pytest.raises(kloader.KernelProblems, match=r"fifo: leaked 16 bytes"):
        with kloader.run_in_thread(on_problems="raise") as daemon:
            with Client(daemon.socket_path) as client:
                client.finit_module(leaky)
