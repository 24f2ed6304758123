"""Debian's own block drivers under their profiles (6.1 and 6.12): brd's
sixteen RAM disks, zram's control device and first disk, nbd's sixteen
network block devices over blk-mq tag sets, each visible in /sys/block and
/proc/partitions while loaded, their disks, tag sets and majors gone after
unload, nothing leaked.  async_pq's pages by struct page likewise.  They
skip, saying why, where the corpus cannot be fetched."""

from __future__ import annotations

import re

import pytest
import trio

from kloaderd.embed import Problems
from kloaderd.fs.tree import file_tree
from kloaderd.kernel.kernel import Kernel, KernelOptions
from realkernel import corpus, find_module

def with_dependencies(modules, name: str, order: list[str]) -> list[str]:
    """`name` after what its `depends=` names, transitively, as modprobe loads them."""
    if name not in order:
        depends = re.search(rb"depends=([^\0]*)\0", find_module(modules, name))
        for dep in depends.group(1).decode().split(",") if depends else ():
            if dep:
                with_dependencies(modules, dep, order)
        order.append(name)
    return order


def load_look_remove(flavour: str, name: str, look) -> Kernel:
    """Load `name` (after what it depends on), call look(kernel) while it is
    loaded, remove all in reverse: no registration left, no problem."""
    modules, build = corpus(flavour)
    kernel = Kernel(KernelOptions(kernel=str(build)))
    names = with_dependencies(modules, name, [])

    async def main() -> None:
        for each in names:
            await kernel.init_module(find_module(modules, each))
        await look(kernel)
        for each in reversed(names):
            await kernel.delete_module(each)
    trio.run(main)
    assert not [e.what for e in kernel.registrations.all() if e.owner is not None]
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
    return kernel


def node_text(kernel: Kernel, path: str) -> str:
    """What a read of a kernel-made file returns (a Content's show)."""
    node = file_tree(kernel).lookup(path)
    return node.ops.show(None)


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_brd_makes_sixteen_ram_disks_that_go_with_it(flavour):
    async def look(kernel: Kernel) -> None:
        disks = sorted(file_tree(kernel).listdir("/sys/block"))
        assert disks == sorted(f"ram{n}" for n in range(16))
        assert node_text(kernel, "/sys/block/ram0/size") == "32768\n"      # CONFIG_BLK_DEV_RAM_SIZE 16 MiB
        assert node_text(kernel, "/sys/block/ram0/dev") == "1:0\n"          # RAMDISK_MAJOR
        partitions = node_text(kernel, "/proc/partitions").splitlines()
        assert partitions[2] == "   1        0      16384 ram0" and len(partitions) == 2 + 16
        assert file_tree(kernel).stat("/dev/ram15")["type"] == "blk"
    kernel = load_look_remove(flavour, "brd", look)
    assert file_tree(kernel).listdir("/sys/block") == []
    assert node_text(kernel, "/proc/partitions") == "major minor  #blocks  name\n\n"


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_zram_adds_its_first_disk_of_size_zero(flavour):
    async def look(kernel: Kernel) -> None:
        assert file_tree(kernel).listdir("/sys/block") == ["zram0"]
        assert node_text(kernel, "/sys/block/zram0/size") == "0\n"          # no disksize set yet
        assert node_text(kernel, "/proc/partitions") == "major minor  #blocks  name\n\n"   # size 0: not listed
    load_look_remove(flavour, "zram", look)


def test_nbd_makes_its_devices_over_blk_mq_tag_sets():
    async def look(kernel: Kernel) -> None:
        assert sorted(file_tree(kernel).listdir("/sys/block")) == sorted(f"nbd{n}" for n in range(16))
        assert len(kernel.registrations.registry("blk_mq_tag_set")) == 16
        assert node_text(kernel, "/sys/block/nbd0/dev") == "43:0\n"         # NBD_MAJOR
    load_look_remove("6.1", "nbd", look)


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_async_pq_allocates_its_scribble_pages_by_struct_page(flavour):
    async def look(kernel: Kernel) -> None:
        pass
    load_look_remove(flavour, "async_pq", look)
