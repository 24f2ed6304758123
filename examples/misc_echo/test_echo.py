"""An integration suite for a misc character device, as its author would write
it with kloader's pytest plugin: build the driver, load it, open /dev/echo
from a client, read, write, ioctl and seek, and check that an open file pins
the module exactly as the FAQ says — `krmmod` refuses, `krmmod --wait` waits
for the last close, and a client killed with the device open releases it.

Run it alone with `python -m pytest examples/misc_echo`.
"""

from __future__ import annotations

import errno
import os
import signal
import struct
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import trio

from kloader_client import AsyncClient, Client

HERE = Path(__file__).parent

# A leak, an oops, a kernel WARNING or a sanitizer report fails the test.
pytestmark = pytest.mark.kloader(on_problems="raise")


def _ioc(direction: int, nr: int, size: int = 0) -> int:
    """_IOC(dir, 'e', nr, size), as include/linux/ioctl.h builds it."""
    return (direction << 30) | (size << 16) | (ord("e") << 8) | nr


ECHO_IOC_CLEAR = _ioc(0, 1)
ECHO_IOC_LEN = _ioc(0, 2)
ECHO_IOC_STATS = _ioc(2, 3, 16)          # _IOR('e', 3, struct echo_stats)


@pytest.fixture
def echo_ko(kloader_build):
    return kloader_build(HERE / "echo.c")


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


def test_registering_makes_the_node(kloader, echo_ko):
    kloader.finit_module(echo_ko)
    assert {"path": "/dev/echo", "major": 10, "minor": 127, "made_by": "misc"} in kloader.devices()
    assert [r["subsystem"] for r in kloader.module("echo")["registrations"]] == ["misc"]
    kloader.delete_module("echo")
    assert kloader.devices() == []


def test_what_is_written_is_read_back(kloader, echo_ko):
    kloader.finit_module(echo_ko)
    fd = kloader.open("/dev/echo")
    assert kloader.write(fd, b"hello, kernel") == 13
    assert kloader.read(fd, 5) == b"hello"
    assert kloader.read(fd, 100) == b", kernel"
    assert kloader.read(fd, 100) == b""                    # the end of the buffer
    assert kloader.lseek(fd, 7, os.SEEK_SET) == 7
    assert kloader.read(fd, 100) == b"kernel"
    assert kloader.lseek(fd, -6, os.SEEK_END) == 7
    with pytest.raises(OSError) as beyond:
        kloader.lseek(fd, 100, os.SEEK_SET)                 # fixed_size_llseek refuses
    assert beyond.value.errno == errno.EINVAL
    kloader.close(fd)
    assert "echo: wrote 13 bytes" in log(kloader)


def test_ioctls_reach_the_driver(kloader, echo_ko):
    kloader.finit_module(echo_ko)
    fd = kloader.open("/dev/echo")
    kloader.write(fd, b"abc")
    assert kloader.ioctl(fd, ECHO_IOC_LEN) == 3
    reply = kloader.ioctl_buffer(fd, ECHO_IOC_STATS, bytes(16))
    assert reply["result"] == 0
    assert struct.unpack("<4I", reply["data"]) == (1, 1, 0, 3)   # opens, writes, reads, length
    assert kloader.ioctl(fd, ECHO_IOC_CLEAR) == 0
    assert kloader.read(fd, 10) == b""
    with pytest.raises(OSError) as unknown:
        kloader.ioctl(fd, _ioc(0, 99))
    assert unknown.value.errno == errno.ENOTTY
    kloader.close(fd)


def test_a_bad_user_pointer_is_efault_not_an_oops(kloader, echo_ko):
    kloader.finit_module(echo_ko)
    fd = kloader.open("/dev/echo")
    for pointer in (0, 0xFFFFFFFF81000000, 0x7FFF00000000):    # NULL, a kernel address, unmapped
        with pytest.raises(OSError) as fault:
            kloader.ioctl(fd, ECHO_IOC_STATS, pointer)
        assert fault.value.errno == errno.EFAULT
    with pytest.raises(OSError) as too_big:
        kloader.write(fd, bytes(4097))
    assert too_big.value.errno == errno.EFBIG
    kloader.close(fd)


def test_an_open_file_pins_the_module(kloader, echo_ko):
    kloader.finit_module(echo_ko)
    fd = kloader.open("/dev/echo")
    info = kloader.module("echo")
    assert info["refcnt"] == 1
    assert info["references"][0]["kind"] == "file"
    with pytest.raises(BlockingIOError, match="in use"):
        kloader.delete_module("echo")
    kloader.close(fd)
    assert log(kloader)[-1] == "echo: release"
    kloader.delete_module("echo")


def test_krmmod_wait_waits_for_the_last_close(kloaderd, echo_ko):
    """`krmmod --wait` blocks until the client closes; meanwhile the module is
    going, so a second open is refused as chrdev_open refuses it."""
    async def main():
        async with AsyncClient(kloaderd.socket_path) as holder, \
                AsyncClient(kloaderd.socket_path) as other:
            await holder.finit_module(echo_ko)
            fd = await holder.open("/dev/echo")
            async with trio.open_nursery() as nursery:
                done = trio.Event()

                async def remove():
                    proc = await trio.run_process(["krmmod", "--wait", "echo"], check=False,
                                                  env={**os.environ, "KLOADERD_SOCKET": kloaderd.socket_path})
                    assert proc.returncode == 0
                    done.set()
                nursery.start_soon(remove)
                while (await other.module("echo"))["state"] != "going":
                    await trio.sleep(0.01)
                with pytest.raises(OSError) as refused:
                    await other.open("/dev/echo")
                assert refused.value.errno == errno.ENODEV
                assert not done.is_set()
                await holder.close(fd)
            assert (await other.modules()) == []
    trio.run(main)


def test_a_killed_client_releases_the_device(kloader, kloaderd, echo_ko):
    kloader.finit_module(echo_ko)
    script = ("import os, signal, sys\n"
              "from kloader_client import Client\n"
              "c = Client(sys.argv[1]); c.open('/dev/echo')\n"
              "print('open', flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", script, kloaderd.socket_path],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL and proc.stdout == "open\n"
    for record in kloader.follow_dmesg():       # the daemon sees the connection die
        if record["text"] == "echo: release":
            break
    kloader.delete_module("echo", wait=True)   # the file's reference is gone, or this waits
    assert log(kloader)[-1] == "echo: unloaded"


def test_nodes_and_descriptors_fail_as_linux(kloader, echo_ko):
    kloader.finit_module(echo_ko)
    with pytest.raises(FileNotFoundError):
        kloader.open("/dev/nosuch")
    with pytest.raises(OSError) as bad:
        kloader.read(42, 1)
    assert bad.value.errno == errno.EBADF
    fd = kloader.open("/dev/echo", os.O_RDONLY)
    with pytest.raises(OSError) as ro:
        kloader.write(fd, b"x")
    assert ro.value.errno == errno.EBADF
    kloader.close(fd)
    kloader.mknod("/dev/echo2", 10, 127)             # a second node for the same device
    fd = kloader.open("/dev/echo2")
    kloader.close(fd)
    kloader.mknod("/dev/nothing", 10, 1)              # a misc minor nobody registered
    with pytest.raises(OSError) as nodev:
        kloader.open("/dev/nothing")
    assert nodev.value.errno == errno.ENODEV


@pytest.mark.kloader(on_problems="ignore")
def test_forgetting_the_owner_is_caught(kloader, kloader_build):
    """The Golden Rule broken: without `.owner = THIS_MODULE` an open file does
    not pin the module.  The sanitizer reports the unpinned call into it, the
    module can be removed under the open file, and the next read is a use
    after unload that oopses naming it."""
    ko = kloader_build(HERE / "echo.c", name="echo", defines=["ECHO_BUG_NO_OWNER"])
    kloader.finit_module(ko)
    fd = kloader.open("/dev/echo")
    assert "BUG: golden rule: call into module echo without a reference in chrdev_open" in log(kloader)
    kloader.delete_module("echo")                      # nothing pins it
    with pytest.raises(OSError) as oops:
        kloader.read(fd, 10)
    assert oops.value.errno == errno.EFAULT
    lines = log(kloader)
    assert any(line.startswith("BUG: unable to handle page fault for address") for line in lines)
    assert any(line.startswith("The buggy address") and "belongs to module echo, unloaded" in line
               for line in lines)
    assert any(line.endswith("[last unloaded: echo(O)]") for line in lines)
