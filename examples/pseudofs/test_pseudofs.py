"""The seed thread's pseudo filesystem, as a suite its author would write
with kloader's pytest plugin: a filesystem type registered by a module, a
client's mount pinning it, and the two ways the module can mount itself —
`kern_mount` in init, which makes it unremovable, and Al Viro's counting of
users (`simple_pin_fs` on open, `simple_release_fs` on release), which pins
it exactly while somebody uses it.

Run it alone with `python -m pytest examples/pseudofs`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import trio

from kloader_client import AsyncClient

HERE = Path(__file__).parent

# A leak, an oops, a kernel WARNING or a sanitizer report fails the test.
pytestmark = pytest.mark.kloader(on_problems="raise")


@pytest.fixture
def counting_ko(kloader_build):
    return kloader_build(HERE / "pseudofs.c")


@pytest.fixture
def pinning_ko(kloader_build):
    return kloader_build(HERE / "pseudofs.c", name="pinfs", defines=["PSEUDOFS_PIN_SELF"])


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


def holders(client, name: str) -> list[str]:
    return sorted(r["owner"] for r in client.module(name)["references"])


def test_the_module_that_kern_mounts_itself_cannot_be_removed(kloader, pinning_ko):
    """Jamie Lokier's module: the internal mount's superblock holds a
    reference on the module, and only the module's exit would drop it."""
    kloader.finit_module(pinning_ko)
    assert holders(kloader, "pinfs") == ["superblock pseudofs 0:1"]
    assert {"subsystem": "mount", "what": "mount of pseudofs (kern_mount)"} in \
        [{k: r[k] for k in ("subsystem", "what")} for r in kloader.module("pinfs")["registrations"]]
    with pytest.raises(BlockingIOError, match="in use"):
        kloader.delete_module("pinfs")
    # Forced, the exit runs anyway and its kern_unmount kills the superblock.
    kloader.delete_module("pinfs", force=True)
    assert log(kloader)[-2:] == ["pseudofs: superblock 0:1 killed", "pseudofs: unloaded"]
    assert kloader.modules() == []


def test_the_module_that_counts_its_users_can_be_removed(kloader, counting_ko):
    """Al Viro's answer: the first open mounts the filesystem, the last
    release unmounts it; in between the module is pinned twice over (the open
    file's fops_get and the superblock), after it not at all."""
    kloader.finit_module(counting_ko)
    assert kloader.module("pseudofs")["refcnt"] == 0
    first = kloader.open("/dev/pseudofs")
    second = kloader.open("/dev/pseudofs")
    assert kloader.module("pseudofs")["refcnt"] == 3          # two files, one superblock
    assert "superblock pseudofs 0:1" in holders(kloader, "pseudofs")
    kloader.close(first)
    assert "superblock pseudofs 0:1" in holders(kloader, "pseudofs")
    kloader.close(second)
    assert kloader.module("pseudofs")["refcnt"] == 0
    assert log(kloader)[-2:] == ["pseudofs: superblock 0:1 killed",
                                 "pseudofs: release, 0 user(s) of the internal mount"]
    kloader.delete_module("pseudofs")


def test_a_mount_pins_the_owner(kloader, counting_ko):
    kloader.finit_module(counting_ko)
    assert kloader.mount("pseudofs", "/mnt/pseudo", data="mode=0700") == {
        "fstype": "pseudofs", "target": "/mnt/pseudo", "source": "none", "dev": "0:1"}
    assert "pseudofs: mount of none (mode=0700)" in log(kloader)
    assert kloader.mounts() == [{"source": "none", "target": "/mnt/pseudo", "fstype": "pseudofs",
                                 "dev": "0:1"}]
    assert holders(kloader, "pseudofs") == ["superblock pseudofs 0:1"]
    with pytest.raises(BlockingIOError, match="in use"):
        kloader.delete_module("pseudofs")
    kloader.umount("/mnt/pseudo")
    assert kloader.mounts() == []
    assert kloader.module("pseudofs")["refcnt"] == 0
    kloader.delete_module("pseudofs")


def test_mount_and_umount_fail_as_linux(kloader, counting_ko):
    with pytest.raises(OSError) as unknown:
        kloader.mount("pseudofs", "/mnt/a")                   # nobody registered it yet
    assert unknown.value.errno == errno.ENODEV
    kloader.finit_module(counting_ko)
    with pytest.raises(OSError) as relative:
        kloader.mount("pseudofs", "mnt/a")
    assert relative.value.errno == errno.EINVAL
    with pytest.raises(OSError) as not_mounted:
        kloader.umount("/mnt/a")
    assert not_mounted.value.errno == errno.EINVAL
    kloader.mount("pseudofs", "/mnt/a")
    kloader.mount("pseudofs", "/mnt/a/b")                      # another superblock, below it
    assert [m["dev"] for m in kloader.mounts()] == ["0:1", "0:2"]
    with pytest.raises(OSError) as busy:
        kloader.umount("/mnt/a")
    assert busy.value.errno == errno.EBUSY and "/mnt/a/b is mounted below it" in str(busy.value)
    kloader.umount("/mnt/a/b")
    kloader.umount("/mnt/a/")
    assert kloader.mounts() == []
    kloader.delete_module("pseudofs")


def test_the_same_name_cannot_be_registered_twice(kloader, kloader_build, counting_ko):
    kloader.finit_module(counting_ko)
    twin = kloader_build(HERE / "pseudofs.c", name="pseudofs_twin")
    with pytest.raises(OSError) as taken:
        kloader.finit_module(twin)
    assert taken.value.errno == errno.EBUSY
    kloader.delete_module("pseudofs")
    kloader.finit_module(twin)                                 # the name is free again
    kloader.delete_module("pseudofs_twin")


def test_a_going_module_type_is_unknown_and_umount_lets_it_go(kloaderd, counting_ko):
    """`krmmod --wait` of a mounted filesystem's module waits for the umount;
    meanwhile get_fs_type's try_module_get fails, so a new mount is ENODEV."""
    async def main():
        async with AsyncClient(kloaderd.socket_path) as client:
            await client.finit_module(counting_ko)
            await client.mount("pseudofs", "/mnt/p")
            async with trio.open_nursery() as nursery:
                done = trio.Event()

                async def remove():
                    proc = await trio.run_process(["krmmod", "--wait", "pseudofs"], check=False,
                                                  env={**os.environ, "KLOADERD_SOCKET": kloaderd.socket_path})
                    assert proc.returncode == 0
                    done.set()
                nursery.start_soon(remove)
                while (await client.module("pseudofs"))["state"] != "going":
                    await trio.sleep(0.01)
                with pytest.raises(OSError) as going:
                    await client.mount("pseudofs", "/mnt/q")
                assert going.value.errno == errno.ENODEV
                assert not done.is_set()
                await client.umount("/mnt/p")
            assert (await client.modules()) == []
    trio.run(main)


@pytest.mark.kloader(on_problems="ignore")
def test_a_type_without_owner_breaks_the_golden_rule(kloader, kloader_build):
    """Without `.owner = THIS_MODULE` a mount pins nothing: the VFS enters the
    module with no reference held, and the sanitizer says so."""
    ko = kloader_build(HERE / "pseudofs.c", name="pseudofs", defines=["PSEUDOFS_BUG_NO_OWNER"])
    kloader.finit_module(ko)
    kloader.mount("pseudofs", "/mnt/p")
    assert kloader.module("pseudofs")["refcnt"] == 0
    assert "BUG: golden rule: call into module pseudofs without a reference in path_mount" in log(kloader)
    kloader.umount("/mnt/p")
    kloader.delete_module("pseudofs")


@pytest.mark.kloader(on_problems="ignore")
def test_a_type_left_registered_is_reported(kloader, kloader_build):
    ko = kloader_build(HERE / "pseudofs.c", name="pseudofs", defines=["PSEUDOFS_BUG_NO_UNREGISTER"])
    kloader.finit_module(ko)
    kloader.delete_module("pseudofs")
    assert 'pseudofs: leaked registration: filesystem type "pseudofs"' in log(kloader)
    with pytest.raises(OSError) as gone:                       # made inert: off the list
        kloader.mount("pseudofs", "/mnt/p")
    assert gone.value.errno == errno.ENODEV
