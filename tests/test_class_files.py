"""Class attribute files (kloaderd/drivers/base/classes.py) through a
client: a module built by each release's kbuild puts files in
/sys/class/NAME/ with class_create_file, as ib_uverbs does; their show and
store run in module code with the class as argument, a duplicate is
sysfs's -EEXIST, and files left for class_destroy go with the class
without being reported."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest


SRC = Path(__file__).parent / "src" / "classfile.c"



def texts(client) -> list[str]:
    return [r["text"] for r in client.dmesg()]


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("keep_files", [0, 1])
def test_class_files_are_read_and_written_and_go_with_their_class(each_release, keep_files, kloader_build, kloader):
    kloader.finit_module(kloader_build(SRC), f"keep_files={keep_files}")
    assert "classfile: files 0, again -17" in texts(kloader)
    assert "sysfs: cannot create duplicate filename '/class/kclassfile/value'" in texts(kloader)
    assert sorted(kloader.listdir("/sys/class/kclassfile")) == ["abi_version", "value"]
    assert kloader.stat("/sys/class/kclassfile/abi_version")["mode"] == 0o100444
    assert kloader.read_file("/sys/class/kclassfile/abi_version") == b"6\n"   # show got the class
    kloader.write_file("/sys/class/kclassfile/value", b"0x2a\n")
    assert kloader.read_file("/sys/class/kclassfile/value") == b"42\n"
    with pytest.raises(OSError) as failed:
        kloader.write_file("/sys/class/kclassfile/value", b"lots\n")
    assert failed.value.errno == errno.EINVAL
    kloader.delete_module("classfile")
    with pytest.raises(OSError) as failed:
        kloader.stat("/sys/class/kclassfile")
    assert failed.value.errno == errno.ENOENT
    assert not any("leaked" in line for line in texts(kloader))
