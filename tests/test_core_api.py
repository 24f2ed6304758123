"""Core kernel services that real modules lean on, through a module's eyes
and a client's (tests/src/coreapi.c): a sysfs mount point, the system
workqueues — each taken back by the module's exit, and reported when it
is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

SRC = Path(__file__).parent / "src"


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


@pytest.mark.kloader(on_problems="ignore")
def test_core_services_are_used_and_taken_back(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "coreapi.c"))
    lines = log(kloader)
    assert "coreapi: mount point 0" in lines
    # the name taken: kernfs's -EEXIST and sysfs_warn_dup's line
    assert "sysfs: cannot create duplicate filename '/kernel/coreapi'" in lines
    assert "coreapi: again -17" in lines
    stat = kloader.stat("/sys/kernel/coreapi")
    assert (stat["type"], stat["mode"]) == ("dir", 0o040555)        # kernfs_create_empty_dir
    assert kloader.listdir("/sys/kernel/coreapi") == []
    what = [r["what"] for r in kloader.module("coreapi")["registrations"]]
    assert "sysfs mount point /sys/kernel/coreapi" in what
    assert "coreapi: 7 works ran" in lines                            # one per system workqueue
    kloader.delete_module("coreapi")
    with pytest.raises(FileNotFoundError):
        kloader.stat("/sys/kernel/coreapi")
    assert not any("leaked" in line for line in log(kloader))


@pytest.mark.kloader(on_problems="ignore")
@pytest.mark.parametrize("bug, leaked, path", [
    ("BUG_LEAVE_MOUNT_POINT", "sysfs mount point /sys/kernel/coreapi", "/sys/kernel/coreapi"),
])
def test_what_a_module_leaves_behind_is_reported_and_removed(kloader, kloader_build, bug, leaked, path):
    kloader.finit_module(kloader_build(SRC / "coreapi.c", defines=[bug]))
    kloader.delete_module("coreapi")
    assert f"coreapi: leaked registration: {leaked}" in log(kloader)
    if path:
        with pytest.raises(FileNotFoundError):
            kloader.stat(path)
