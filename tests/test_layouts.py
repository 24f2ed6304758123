"""Structure layouts per kernel (kloaderd/kernel/layouts.py): where each
kernel's structures have their members, and what happens without them.

Issue 10: what works under 6.1 must work under any newer build tree — so
the emulation reads every structure a module hands it at that kernel's
offsets (committed tables, a measurement at profile load, or none: then
not emulated, never wrong).  The user-visible proof: a module built with
the real kbuild of 6.1 and of 6.12 has its character device and its debugfs
file opened, read, written, seeked, ioctl'd and closed through the client.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
from kloader_client import Client
from kloaderd import embed
from kloaderd.kernel import api, layouts
from kloaderd.kernel.kernel import Kernel, KernelOptions
from kloaderd.kernel.layouts import Layouts, Unmeasurable, profile_layouts
from kloaderd.kernel.profile import KernelProfile
from test_profile import corpus, write_tree
from test_kbuild import kmodbuild

SRC = Path(__file__).parent / "src"

api.load_all()
FILE = layouts.STRUCTS["struct file"]
FOPS = layouts.STRUCTS["struct file_operations"]


def _table(path: Path) -> dict:
    return json.loads(path.read_text())


# -- the resolution, without the corpus ------------------------------------------------------

def test_a_layout_is_read_by_member_and_missing_ones_say_so():
    have = Layouts({"struct file": {"sizeof": 184, **{m: i * 8 for i, m in enumerate(FILE.members)}}},
                   "a test")
    assert have.has(FILE) and have[FILE].size == 184 and have[FILE].f_pos == 8 * FILE.members.index("f_pos")
    assert not have.has(FOPS)
    with pytest.raises(KeyError, match="struct file_operations: no layout for this kernel"):
        have[FOPS]
    partial = Layouts({"struct file": {"sizeof": 184, "f_pos": 112}}, "a test")
    assert not partial.has(FILE)          # every declared member, or the struct is not known


def test_a_member_a_release_lacks_is_none_when_optional_and_missing_when_required():
    """6.4 took `p` out of struct bus_type: kloader does without it there."""
    bus = layouts.STRUCTS["struct bus_type"]
    assert "p" in bus.optional
    new = Layouts({"struct bus_type": {"sizeof": 168, "name": 0}}, "6.12")
    assert new.has(bus) and new[bus].p is None and new[bus].name == 0
    old = Layouts({"struct bus_type": {"sizeof": 184, "name": 0, "p": 168}}, "6.1")
    assert old[bus].p == 168
    cls = layouts.STRUCTS["struct class"]
    assert not Layouts({"struct class": {"sizeof": 96, "name": 0}}, "partial").has(cls)


def test_functions_reading_a_struct_are_emulated_only_where_its_layout_is_known():
    assert api.FUNCTIONS["__register_chrdev"].structs
    assert api.emulated_for("__register_chrdev", (6, 12), layouts.kloader_layouts())
    assert not api.emulated_for("__register_chrdev", (6, 12), Layouts({}, "none"))
    assert api.emulated_for("_printk", (6, 12), Layouts({}, "none"))      # reads no structure


def test_kloaders_own_table_gives_every_declared_member():
    """kloader's own kernel emulates everything: its table is complete."""
    own = layouts.kloader_layouts()
    assert [s.name for s in layouts.STRUCTS.values() if not own.has(s)] == []


def test_kloaders_own_table_is_what_its_headers_say():
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not on PATH")
    measured = layouts.measure(layouts.STRUCTS.values(), layouts.kloader_compiler())
    table = _table(layouts.TABLES / "kloader.json")["structs"]
    for name, members in measured.items():
        assert {k: table[name][k] for k in members} == members, name


def _fake_tree(tmp_path: Path, release: str) -> KernelProfile:
    return KernelProfile(write_tree(tmp_path / "build", release))


def test_a_tree_without_a_table_is_measured_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    profile = _fake_tree(tmp_path, "6.13.0-test")
    calls = []
    measured = {s.name: dict.fromkeys(s.expressions(), 8) for s in layouts.STRUCTS.values()}

    def measure(p, structs):
        calls.append(p)
        return measured
    logged: list[str] = []
    first = profile_layouts(profile, logged.append, measure)
    assert first.has(FILE) and first[FILE].f_op == 8 and "measured from" in first.source
    again = profile_layouts(profile, logged.append, measure)
    assert again.has(FOPS) and "cached in" in again.source
    assert len(calls) == 1 and logged == []
    cached = list((tmp_path / "cache/kloader/layouts").glob("6.13.0-test-*.json"))
    assert len(cached) == 1 and _table(cached[0])["release"] == "6.13.0-test"


def test_another_config_of_a_tabled_release_is_not_given_that_table(tmp_path, monkeypatch):
    """Layouts follow .config: the same release string is not enough."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tabled = next(p for p in layouts.TABLES.glob("*.json") if p.stem != "kloader")
    profile = _fake_tree(tmp_path, _table(tabled)["release"])

    def cannot(p, structs):
        raise Unmeasurable("make is not on PATH")
    got = profile_layouts(profile, lambda text: None, cannot)
    assert not got.has(FILE)


def test_without_a_table_or_kbuild_the_functions_are_not_emulated_and_the_log_says_why(tmp_path,
                                                                                     monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    kernel = Kernel(KernelOptions(kernel=str(write_tree(tmp_path / "build", "6.13.0-test"))))
    lines = [r.text for r in kernel.log.records() if "structure layouts" in r.text]
    assert len(lines) == 1
    assert lines[0].startswith("kloader: no structure layouts for 6.13.0-test (")
    assert lines[0].endswith("kernel functions that read kernel structures are not emulated")
    assert kernel.layouts.source.startswith("none (")
    assert not api.emulated_for("__register_chrdev", kernel.profile.version, kernel.layouts)
    assert api.emulated_for("_printk", kernel.profile.version, kernel.layouts)


# -- the committed tables are the kernels' -------------------------------------------------

@pytest.mark.slow          # builds a probe with each real kernel's kbuild
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_the_committed_table_is_what_the_kernels_kbuild_measures(flavour):
    _, build = corpus(flavour)
    profile = KernelProfile(build)
    table = _table(layouts.TABLES / f"{profile.release}.json")
    assert table["config"] == layouts.config_digest((build / ".config").read_text(errors="replace"))
    try:
        measured = layouts.measure_with_kbuild(profile, list(layouts.STRUCTS.values()))
    except Unmeasurable as exc:
        pytest.skip(f"cannot build against the {flavour} tree: {exc}")
    assert table["structs"] == measured
    kernel = Kernel(KernelOptions(kernel=str(build)))
    assert kernel.layouts.source == f"kloader's table {profile.release}.json"


# -- a real kernel's module, through the client ------------------------------------------------

LAYOUTS_C = r"""
#include <linux/module.h>
#include <linux/fs.h>
#include <linux/debugfs.h>
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("a char device and a debugfs file, built with the kernel's own kbuild");

static char buf[64];
static size_t len;
static int major;
static struct dentry *dir;

static int lay_open(struct inode *inode, struct file *file)
{
	file->private_data = buf;
	pr_info("lay: open minor %u mode %#x\n", iminor(inode), (unsigned)(file->f_mode & 3));
	return 0;
}

static int lay_release(struct inode *inode, struct file *file)
{
	pr_info("lay: release %s\n", file->private_data == buf ? "mine" : "foreign");
	return 0;
}

static ssize_t lay_read(struct file *file, char __user *to, size_t n, loff_t *pos)
{
	return simple_read_from_buffer(to, n, pos, buf, len);
}

static ssize_t lay_write(struct file *file, const char __user *from, size_t n, loff_t *pos)
{
	ssize_t got = simple_write_to_buffer(buf, sizeof(buf), pos, from, n);

	if (got > 0 && *pos > len)
		len = *pos;
	return got;
}

static loff_t lay_llseek(struct file *file, loff_t off, int whence)
{
	return fixed_size_llseek(file, off, whence, len);
}

static long lay_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	return cmd == 0x4c41 ? (long)len + arg : -ENOTTY;
}

static const struct file_operations lay_fops = {
	.owner = THIS_MODULE,
	.open = lay_open,
	.release = lay_release,
	.read = lay_read,
	.write = lay_write,
	.llseek = lay_llseek,
	.unlocked_ioctl = lay_ioctl,
};

static int __init lay_init(void)
{
	major = register_chrdev(0, "lay", &lay_fops);
	if (major < 0)
		return major;
	dir = debugfs_create_dir("lay", NULL);
	debugfs_create_file("buf", 0644, dir, NULL, &lay_fops);
	pr_info("lay: major %d\n", major);
	return 0;
}

static void __exit lay_exit(void)
{
	debugfs_remove(dir);
	unregister_chrdev(major, "lay");
}
module_init(lay_init);
module_exit(lay_exit);
"""


def _built(tmp_path: Path, flavour: str, name: str, source: str) -> tuple[Path, Path]:
    """(the corpus build tree, NAME.ko built from `source` with its kbuild)."""
    _, build = corpus(flavour)
    (tmp_path / f"{name}.c").write_text(source)
    ko = tmp_path / f"{name}.ko"
    done = kmodbuild("--kernel", str(build), str(tmp_path / f"{name}.c"), "-o", str(ko))
    assert done.returncode == 0, done.stderr
    return build, ko


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_a_real_kernels_char_device_and_debugfs_file_work_through_the_client(tmp_path, flavour):
    """Under 6.1, kloader used to call fops+104 as .open (6.1's
    mmap_supported_flags) and .flush as .release; under 6.12 .llseek as .read."""
    build, ko = _built(tmp_path, flavour, "lay", LAYOUTS_C)
    with embed.run_in_thread(kernel=str(build)) as daemon, Client(daemon.socket_path) as client:
        client.finit_module(ko)
        major = int(next(r["text"] for r in client.dmesg() if r["text"].startswith("lay: major "))[11:])
        client.mknod("/dev/lay", major, 3)
        fd = client.open("/dev/lay", os.O_RDWR)
        assert client.module("lay")["refcnt"] == 2      # chrdev_open: cdev_get, fops_get
        assert client.write(fd, b"hello, world") == 12
        assert client.lseek(fd, 7) == 7
        assert client.read(fd, 64) == b"world"
        assert client.ioctl(fd, 0x4C41, 100) == 112
        with pytest.raises(OSError) as wrong:
            client.ioctl(fd, 0x1234, 0)
        assert wrong.value.errno == errno.ENOTTY
        client.close(fd)
        assert client.module("lay")["refcnt"] == 0
        assert client.read_file("/sys/kernel/debug/lay/buf") == b"hello, world"
        assert client.write_file("/sys/kernel/debug/lay/buf", b"HELLO") == 5
        assert client.read_file("/dev/lay") == b"HELLO, world"
        client.delete_module("lay")
        log = [r["text"] for r in client.dmesg()]
    assert "lay: open minor 3 mode 0x3" in log
    assert log.count("lay: release mine") == 4, log       # the fd, debugfs twice, /dev/lay again
    assert not [line for line in log if "not emulated" in line or "BUG" in line or "Oops" in line]


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_a_real_kernels_device_model_works_through_the_client(tmp_path, flavour):
    """tests/src/devmodel.c — a kobject with a sysfs group, a debugfs u32, a
    class device over a char device and a platform driver bound to a
    platform device — built with the real kbuild: under 6.12 these were
    not emulated (6.1's offsets only), and 6.12's class_create has no owner."""
    build, ko = _built(tmp_path, flavour, "devmodel", (SRC / "devmodel.c").read_text())
    with embed.run_in_thread(kernel=str(build)) as daemon, Client(daemon.socket_path) as client:
        client.finit_module(ko)
        assert client.read_file("/sys/kernel/devmodel/value") == b"7\n"
        assert client.write_file("/sys/kernel/devmodel/value", b"42\n") == 3
        assert client.read_file("/sys/kernel/devmodel/value") == b"42\n"
        assert client.read_file("/sys/kernel/debug/devmodel/counter") == b"1\n"
        major, minor = client.read_file("/sys/class/devmodel/devmodel0/dev").decode().strip().split(":")
        assert [d for d in client.devices() if d["path"] == "/dev/devmodel0"] == [
            {"path": "/dev/devmodel0", "major": int(major), "minor": int(minor), "made_by": "devtmpfs"}]
        assert client.read_file("/dev/devmodel0") == b"value=42\n"
        assert "devmodel.0" in client.listdir("/sys/devices/platform")
        client.delete_module("devmodel")
        log = [r["text"] for r in client.dmesg()]
        assert not client.listdir("/sys/class").count("devmodel")
    assert "devmodel devmodel.0: probe 1" in log
    assert "devmodel: loaded, 1 probe(s)" in log
    assert "devmodel devmodel.0: remove 1 (bound)" in log        # remove saw probe's devm memory
    assert log[-1] == "devmodel: exit after 1 probe(s), 1 remove(s), value 42, counter 1"
    assert not [line for line in log if "not emulated" in line or "BUG" in line or "leaked" in line]
