"""Debian's own 6.1 modules, unforced under its profile, through the core
kernel services kloader emulates (sysfs mount points, the system
workqueues, ...): what they register is recorded, undone by their exits,
and nothing leaks.  They skip, saying why, where the corpus cannot be
fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_real_kernel_api import load_and_remove
from realkernel import corpus


@pytest.fixture(scope="module")
def debian61() -> tuple[Path, Path]:
    return corpus("6.1")


def test_configfs_makes_its_mount_point_and_registers_its_filesystem(debian61):
    load_and_remove(debian61, ["configfs"], {
        "configfs": [{"subsystem": "sysfs", "what": "sysfs mount point /sys/kernel/config"},
                     {"subsystem": "slab_cache", "what": "kmem_cache configfs_dir_cache"},
                     {"subsystem": "filesystem", "what": 'filesystem type "configfs"'}]})
