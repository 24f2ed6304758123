"""Character devices through the socket: numbers, cdevs, nodes, the
references an open file holds, and what a module leaves registered."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

SRC = Path(__file__).parent / "src"


@pytest.fixture
def chardev_ko(kloader_build):
    return kloader_build(SRC / "chardev.c")


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


@pytest.mark.kloader(on_problems="raise")
def test_register_chrdev_takes_a_dynamic_major_and_pins_twice(kloader, chardev_ko):
    kloader.finit_module(chardev_ko, "major=0")
    assert "chardev: major 254" in log(kloader)            # Linux's first dynamic major
    kloader.mknod("/dev/cd3", 254, 3)
    fd = kloader.open("/dev/cd3")
    # chrdev_open: cdev_get on the cdev's owner, then fops_get on the fops'.
    assert kloader.module("chardev")["refcnt"] == 2
    assert kloader.read(fd, 10) == b"3\n"
    assert kloader.write(fd, b"xyz") == 3
    assert kloader.param_get("chardev", "writes") == "1"
    kloader.close(fd)
    assert kloader.module("chardev")["refcnt"] == 0
    kloader.delete_module("chardev")
    with pytest.raises(OSError) as gone:
        kloader.open("/dev/cd3")                            # the node stays, the device is gone
    assert gone.value.errno == errno.ENXIO


@pytest.mark.kloader(on_problems="raise")
def test_a_cdev_serves_its_range_only(kloader, chardev_ko):
    kloader.finit_module(chardev_ko)
    assert "chardev: region 254:0" in log(kloader)
    kloader.mknod("/dev/cd0", 254, 0)
    kloader.mknod("/dev/cd1", 254, 1)
    kloader.mknod("/dev/cd2", 254, 2)
    for path, text in (("/dev/cd0", b"0\n"), ("/dev/cd1", b"1\n")):
        fd = kloader.open(path)
        assert kloader.read(fd, 10) == text
        kloader.close(fd)
    with pytest.raises(OSError) as outside:
        kloader.open("/dev/cd2")
    assert outside.value.errno == errno.ENXIO
    with pytest.raises(FileExistsError):
        kloader.mknod("/dev/cd0", 1, 1)
    subsystems = sorted(r["subsystem"] for r in kloader.module("chardev")["registrations"])
    assert subsystems == ["cdev", "chrdev"]
    kloader.delete_module("chardev")


def test_a_busy_major_is_ebusy(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "chardev.c"), "major=240")
    other = kloader_build(SRC / "chardev.c", name="chardev2")
    with pytest.raises(OSError) as busy:
        kloader.finit_module(other, "major=240")            # __register_chrdev_region: overlap
    assert busy.value.errno == errno.EBUSY
    kloader.finit_module(other, "major=0")                  # a dynamic one is free
    with pytest.raises(OSError) as invalid:
        kloader.finit_module(kloader_build(SRC / "chardev.c", name="chardev3"), "major=512")
    assert invalid.value.errno == errno.EINVAL
    assert 'CHRDEV "chardev" major requested (512) is greater than the maximum (511)' in log(kloader)


@pytest.mark.kloader(on_problems="ignore")
def test_a_cdev_left_at_exit_is_reported_and_made_inert(kloader, kloader_build):
    ko = kloader_build(SRC / "chardev.c", defines=["CHARDEV_BUG_LEAVE_CDEV"])
    kloader.finit_module(ko)
    kloader.mknod("/dev/cd0", 254, 0)
    kloader.delete_module("chardev")
    lines = log(kloader)
    assert "chardev: leaked registration: cdev 254:0-1" in lines
    assert 'chardev: leaked registration: char device region 254:0-1 "chardev"' in lines
    with pytest.raises(OSError) as inert:
        kloader.open("/dev/cd0")                            # no call into freed memory
    assert inert.value.errno == errno.ENXIO


@pytest.mark.kloader(max_open_files=3, max_io=8, on_problems="raise")
def test_descriptor_and_buffer_bounds(kloader, chardev_ko):
    kloader.finit_module(chardev_ko, "major=0")
    kloader.mknod("/dev/cd0", 254, 0)
    fds = [kloader.open("/dev/cd0") for _ in range(3)]
    assert fds == [3, 4, 5]
    with pytest.raises(OSError) as emfile:
        kloader.open("/dev/cd0")
    assert emfile.value.errno == errno.EMFILE and "max_open_files" in emfile.value.strerror
    assert kloader.write(fds[0], b"12345678") == 8
    with pytest.raises(OSError) as big:
        kloader.write(fds[0], b"123456789")
    assert big.value.errno == errno.EINVAL and "max_io" in big.value.strerror
    with pytest.raises(OSError):
        kloader.read(fds[0], 9)
    kloader.close(fds[1])
    assert kloader.open("/dev/cd0") == 4                  # the lowest free descriptor
    for fd in (3, 4, 5):
        kloader.close(fd)
    kloader.delete_module("chardev")


def test_freed_module_space_is_quarantined(kloader, kloaderd, chardev_ko):
    """A freed module's addresses are not handed out again until
    module_quarantine bytes more have been freed: a stale pointer faults."""
    kloader.finit_module(chardev_ko)
    first = kloader.module("chardev")["address"]
    kloader.delete_module("chardev")
    kloader.finit_module(chardev_ko)
    assert kloader.module("chardev")["address"] != first
    assert kloaderd.run_sync(lambda: kloaderd.kernel.sanitizer.freed_at(first).name) == "chardev"
    kloader.delete_module("chardev")


@pytest.mark.kloader(module_quarantine=0)
def test_without_quarantine_space_is_reused(kloader, chardev_ko):
    kloader.finit_module(chardev_ko)
    first = kloader.module("chardev")["address"]
    kloader.delete_module("chardev")
    kloader.finit_module(chardev_ko)
    assert kloader.module("chardev")["address"] == first
    kloader.delete_module("chardev")
