"""The block layer through a driver's eyes and a client's: a blk-mq disk
the `blkdisk` fixture makes is visible while its module is loaded — its
size in /sys/block, its line in /proc/partitions, its /dev node, its queue
limits — and gone after unload; a disk and tag set left behind are
reported; a tag set Linux refuses fails init with its errno."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


def seqnum(client) -> int:
    return int(client.read_file("/sys/kernel/uevent_seqnum"))


@pytest.mark.kloader(on_problems="raise")
def test_a_blk_mq_disk_is_visible_while_loaded_and_gone_after(kloader, fixture_ko):
    before = seqnum(kloader)
    kloader.finit_module(fixture_ko("blkdisk"), "name=kblk0 sectors=4096")
    lines = log(kloader)
    assert "blkdisk: blk_mq_alloc_tag_set = 0, 1 hardware queue(s)" in lines   # one CPU: one queue
    announced = next(line for line in lines if line.startswith("blkdisk: kblk0 is "))
    major, minor = (int(n) for n in announced.split()[3].rstrip(",").split(":"))
    assert announced.endswith("4096 sectors")

    assert kloader.read_file("/sys/block/kblk0/size") == b"4096\n"
    assert kloader.read_file("/sys/block/kblk0/dev") == f"{major}:{minor}\n".encode()
    assert kloader.read_file("/sys/class/block/kblk0/range") == b"1\n"
    assert kloader.read_file("/sys/block/kblk0/ext_range") == b"1\n"          # GENHD_FL_NO_PART
    assert kloader.read_file("/sys/block/kblk0/ro") == b"0\n"
    assert kloader.read_file("/sys/block/kblk0/queue/logical_block_size") == b"4096\n"
    assert kloader.read_file("/sys/block/kblk0/queue/physical_block_size") == b"4096\n"
    assert kloader.read_file("/sys/block/kblk0/queue/max_hw_sectors_kb") == b"124\n"   # 255 sectors, whole blocks
    assert kloader.read_file("/proc/partitions").decode() == (
        "major minor  #blocks  name\n\n"
        f"{major:4d}  {minor:7d} {2048:10d} kblk0\n")
    node = kloader.stat("/dev/kblk0")
    assert node["type"] == "blk" and node["rdev"] == major << 20 | minor
    with pytest.raises(OSError) as no_io:
        kloader.open("/dev/kblk0", os.O_RDONLY)
    assert no_io.value.errno == errno.EOPNOTSUPP
    assert seqnum(kloader) == before + 1                                      # KOBJ_ADD
    assert any(r["subsystem"] == "gendisk" and r["what"].startswith("disk kblk0")
               for r in kloader.module("blkdisk")["registrations"])

    kloader.delete_module("blkdisk")
    assert seqnum(kloader) == before + 2                                      # KOBJ_REMOVE
    for gone in ("/sys/block/kblk0", "/sys/class/block/kblk0", "/sys/devices/virtual/block/kblk0",
                 "/dev/kblk0"):
        with pytest.raises(FileNotFoundError):
            kloader.stat(gone)
    assert kloader.read_file("/proc/partitions") == b"major minor  #blocks  name\n\n"
    assert not any("leaked" in line for line in log(kloader))


@pytest.mark.kloader(on_problems="ignore")
def test_a_disk_and_tag_set_left_at_unload_are_reported_and_removed(kloader, fixture_ko):
    kloader.finit_module(fixture_ko("blkdisk"), "keep=1")
    assert kloader.read_file("/sys/block/kblk0/size") == b"2048\n"
    kloader.delete_module("blkdisk")
    lines = log(kloader)
    assert any(line.startswith("blkdisk: leaked registration: disk kblk0 (") for line in lines)
    assert any(line.startswith("blkdisk: leaked registration: blk-mq tag set at ") for line in lines)
    with pytest.raises(FileNotFoundError):
        kloader.stat("/sys/block/kblk0")
    # the name is free again: a second load makes the disk anew
    kloader.finit_module(fixture_ko("blkdisk"))
    assert kloader.read_file("/sys/block/kblk0/size") == b"2048\n"


@pytest.mark.kloader(on_problems="ignore")
def test_a_tag_set_without_tags_fails_init_with_einval(kloader, fixture_ko):
    with pytest.raises(OSError) as bad:
        kloader.finit_module(fixture_ko("blkdisk"), "bad_depth=1")
    assert bad.value.errno == errno.EINVAL
    assert "blkdisk: blk_mq_alloc_tag_set = -22, 4 hardware queue(s)" in log(kloader)
    assert kloader.read_file("/proc/partitions") == b"major minor  #blocks  name\n\n"


SRC = Path(__file__).parent / "src"


@pytest.mark.kloader(on_problems="raise")
def test_pages_convert_between_struct_page_and_address_both_ways(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "pages.c"))
    lines = [line for line in log(kloader) if line.startswith("pages: ") and "taints" not in line]
    assert lines == ["pages: aligned 1, round trip 1, refcount 1",
                     "pages: after get_page 2",
                     "pages: after one free 1, data kl",
                     "pages: __get_free_pages's page is 1",
                     "pages: kmalloc's page pfn 1"]
    kloader.delete_module("pages")
    assert not any("leaked" in line for line in log(kloader))
