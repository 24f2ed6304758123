"""The device model, sysfs and debugfs through a module's eyes and a
client's: a sysfs attribute, a debugfs u32, a class device over a char
device and a platform driver bound to a platform device, each read and
written by a client, probe and remove run, nothing left at unload — and
twins that leave each one behind, reported."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

SRC = Path(__file__).parent / "src"


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


@pytest.mark.kloader(on_problems="raise")
def test_a_module_s_files_are_read_and_written_and_go_with_it(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "devmodel.c"))
    assert "devmodel: loaded, 1 probe(s)" in log(kloader)
    assert "devmodel devmodel.0: probe 1" in log(kloader)          # dev_info: driver, device name

    # sysfs: the attribute's show and store, in module code
    assert kloader.listdir("/sys/kernel/devmodel") == ["value"]
    assert kloader.read_file("/sys/kernel/devmodel/value") == b"7\n"
    kloader.write_file("/sys/kernel/devmodel/value", b"42\n")
    assert kloader.read_file("/sys/kernel/devmodel/value") == b"42\n"
    with pytest.raises(OSError) as bad:
        kloader.write_file("/sys/kernel/devmodel/value", b"forty-two\n")
    assert bad.value.errno == errno.EINVAL                          # kstrtoint's -EINVAL from store
    assert kloader.stat("/sys/kernel/devmodel/value")["mode"] == 0o100644

    # debugfs: a u32 the store above counts, and written by the client
    assert kloader.read_file("/sys/kernel/debug/devmodel/counter") == b"1\n"
    kloader.write_file("/sys/kernel/debug/devmodel/counter", b"0x10\n")
    assert kloader.read_file("/sys/kernel/debug/devmodel/counter") == b"16\n"
    with pytest.raises(OSError) as nan:
        kloader.write_file("/sys/kernel/debug/devmodel/counter", b"lots\n")
    assert nan.value.errno == errno.EINVAL

    # the class device: /dev node over the char device, /sys/class link, dev attribute
    node = next(d for d in kloader.devices() if d["path"] == "/dev/devmodel0")
    assert node["made_by"] == "devtmpfs"
    assert kloader.listdir("/sys/class/devmodel") == ["devmodel0"]
    dev = kloader.read_file("/sys/class/devmodel/devmodel0/dev").decode()
    assert dev == f"{node['major']}:{node['minor']}\n"
    fd = kloader.open("/dev/devmodel0", os.O_RDONLY)
    assert kloader.module("devmodel")["refcnt"] == 2     # cdev_get and fops_get each pin the module
    assert kloader.read(fd, 64) == b"value=42\n"
    kloader.close(fd)
    assert kloader.module("devmodel")["refcnt"] == 0

    # the platform device, bound to the driver
    assert "devmodel.0" in kloader.listdir("/sys/devices/platform")

    kloader.delete_module("devmodel")
    lines = log(kloader)
    assert "devmodel devmodel.0: remove 1 (bound)" in lines        # remove saw probe's devm memory
    assert lines[-1] == "devmodel: exit after 1 probe(s), 1 remove(s), value 42, counter 16"
    assert not any("leaked" in line for line in lines)
    for gone in ("/sys/kernel/devmodel", "/sys/kernel/debug/devmodel", "/sys/class/devmodel",
                 "/sys/devices/platform/devmodel.0", "/dev/devmodel0"):
        with pytest.raises(FileNotFoundError):
            kloader.stat(gone)


@pytest.mark.kloader(on_problems="ignore")
@pytest.mark.parametrize("bug, leaked", [
    ("BUG_LEAVE_KOBJECT", "kobject /sys/kernel/devmodel"),
    ("BUG_LEAVE_DEBUGFS", "debugfs directory /sys/kernel/debug/devmodel"),
    ("BUG_LEAVE_DEVICE", 'class "devmodel"'),
    ("BUG_LEAVE_PDEV", "device /sys/devices/platform/devmodel.0"),
])
def test_what_a_module_leaves_behind_is_reported_and_removed(kloader, kloader_build, bug, leaked):
    kloader.finit_module(kloader_build(SRC / "devmodel.c", defines=[bug]))
    kloader.delete_module("devmodel")
    assert f"devmodel: leaked registration: {leaked}" in log(kloader)
    path = leaked.split()[-1] if leaked.startswith(("kobject", "debugfs", "device")) else "/sys/class/devmodel"
    with pytest.raises(FileNotFoundError):
        kloader.stat(path)


def test_the_kernel_s_own_directories_are_there(kloader):
    for path in ("/sys/kernel/mm", "/sys/fs", "/sys/firmware", "/sys/class", "/sys/devices/platform",
                 "/sys/devices/virtual"):
        assert kloader.stat(path)["type"] == "dir"
    assert kloader.read_file("/sys/kernel/uevent_seqnum") == b"0\n"



def test_a_debugfs_file_removed_while_open_answers_eio(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "devmodel.c"))
    fd = kloader.open("/sys/kernel/debug/devmodel/counter", os.O_RDONLY)
    assert kloader.read(fd, 16) == b"0\n"
    kloader.delete_module("devmodel")          # its exit removes the file: the variable is gone
    for call in (lambda: kloader.lseek(fd, 0), lambda: kloader.read(fd, 16)):
        with pytest.raises(OSError) as gone:
            call()
        assert gone.value.errno == errno.EIO   # debugfs_file_get() fails: module memory is not read
    kloader.close(fd)


@pytest.mark.kloader(on_problems="ignore")
def test_names_taken_twice_are_refused_as_linux_refuses_them(kloader, kloader_build):
    ko = kloader_build(SRC / "devmodel.c")
    kloader.finit_module(ko)
    twin = kloader_build(SRC / "devmodel.c", name="devmodel2")
    with pytest.raises(OSError) as exc:
        kloader.finit_module(twin)                        # kobject "devmodel" under /sys/kernel again
    assert exc.value.errno == errno.ENOMEM                # kobject_create_and_add returns NULL
    lines = log(kloader)
    assert "sysfs: cannot create duplicate filename '/kernel/devmodel'" in lines
    assert ("kobject_add_internal failed for devmodel with -EEXIST, don't try to register things with "
            "the same name in the same directory.") in lines
    kloader.delete_module("devmodel")


@pytest.mark.kloader(on_problems="ignore")
def test_a_failed_probe_releases_what_it_managed_and_a_ktype_release_runs(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "devfail.c"))
    assert kloader.listdir("/sys/devfail-1") == ["one", "two"]            # sysfs_create_files
    assert kloader.read_file("/sys/devfail-1/two") == b"two\n"
    lines = log(kloader)
    start = lines.index("devfail: platform_get_irq = -6")
    assert lines[start - 1] == "platform devfail.0.auto: error -ENXIO: IRQ index 0 not found"
    assert lines[start + 1:start + 3] == [
        "devfail devfail.0.auto: probe with driver devfail failed with error -12",
        "devfail: managed action released"]                              # devres, as the probe failed
    assert "devfail: devfail.0.auto has driver 0" in lines
    kloader.delete_module("devfail")
    assert log(kloader)[-2:] == ["devfail: release devfail-1", "devfail: exit"]
    with pytest.raises(FileNotFoundError):
        kloader.stat("/sys/devfail-1")


DROP = "/sys/devices/platform/devres.0/drop"


def _held(client) -> list[str]:
    """What of devres's probe the kernel still holds: its ioremap, regions and irq."""
    return sorted(r["what"] for r in client.module("devres")["registrations"]
                  if r["subsystem"] in ("ioremap", "resource", "irq"))


@pytest.mark.kloader(on_problems="raise")
def test_a_devm_remover_releases_at_its_call_and_not_again_at_unbinding(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "devres.c"))
    assert _held(kloader) == ["ioremap of [mem 0xfed50000-0xfed500ff]", 'irq 7 handler "devres"',
                              'region [mem 0xfed51000-0xfed510ff] "devres-resource"',
                              'region [mem 0xfed52000-0xfed520ff] "devres-region"']
    assert "fed52000-fed520ff : devres-region" in kloader.read_file("/proc/iomem").decode()

    kloader.write_file(DROP, b"1")
    lines = log(kloader)
    assert lines[-2:] == ["devres: action released",                 # devm_release_action runs it now
                          "devres: dropped, memory reads 0x6b"]     # devm_kfree freed it: poisoned
    assert _held(kloader) == []                              # unmapped, regions released, irq freed
    assert "devres" not in kloader.read_file("/proc/iomem").decode()

    kloader.delete_module("devres")
    lines = log(kloader)
    after = lines[lines.index("devres: dropped, memory reads 0x6b") + 1:]
    # only the action never given back runs; nothing is freed, unmapped or released twice
    assert after == ["devres devres.0: remove", "devres: action kept", "devres: exit"]
    assert lines.count("devres: action released") == 1 and "devres: action removed" not in lines


@pytest.mark.kloader(on_problems="ignore")
def test_a_devm_remover_of_what_the_device_does_not_manage_warns_as_linux(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "devres.c"))
    kloader.write_file(DROP, b"1")
    start = len(log(kloader))
    kloader.write_file(DROP, b"1")                       # all of it given back already
    again = log(kloader)[start:]
    said = [line.split(" at ")[1].split("+")[0] if line.startswith("WARNING: CPU: 0") else line
            for line in again if line.startswith(("WARNING: CPU: 0", "iounmap", "Trying to free non"))]
    assert said == [
        "drivers/base/devres.c:1054 devm_kfree",
        "lib/devres.c:104 devm_iounmap", "iounmap: bad address ffffe00000000000",    # then iounmap anyway
        "kernel/resource.c:1481 devm_release_resource",
        "Trying to free nonexistent resource <00000000fed52000-00000000fed520ff>",   # __release_region first
        "kernel/resource.c:1550 __devm_release_region",
        "drivers/base/devres.c:758 devm_remove_action", "drivers/base/devres.c:777 devm_release_action",
        "kernel/irq/devres.c:144 devm_free_irq", "kernel/irq/manage.c:1893 free_irq"]   # then free_irq anyway
    assert "Trying to free already-free IRQ 7" in again                  # free_irq's own WARN's message
    assert "devres: action released" not in again and "devres: action removed" not in again
    assert "W" in kloader.status()["taints"]
    kloader.delete_module("devres")
    assert log(kloader)[-2:] == ["devres: action kept", "devres: exit"]
