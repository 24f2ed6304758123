"""Filesystem types of real modules (Debian's 6.1 and 6.12 cloud kernels,
unforced under their profiles): registered, listed, mounted where kloader
can, unregistered by their exits (the structure offsets kloaderd/fs/ reads
are the kernels' own: tests/test_layouts.py).  The example suite
(examples/pseudofs) covers mounting, pinning and the sanitizer's reports
with a module built here; these are the outside oracle.  They skip, saying
why, where the corpus cannot be fetched."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import trio

from kloaderd.embed import Problems
from kloaderd.errors import KernelError
from kloaderd.fs import filesystems
from kloaderd.fs.namespace import do_mount, do_umount, mount_table
from kloaderd.fs.super import supers
from kloaderd.kernel.kernel import Kernel, KernelOptions
from kloaderd.kernel.profile import KernelProfile
from kloaderd.lib.parser import match_one, simple_strtoull
from realkernel import corpus, find_module as module

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _registered(kernel: Kernel, name: str) -> list[tuple[str, str]]:
    return sorted((r["subsystem"], r["what"]) for r in kernel.module_info(name)["registrations"])


def _clean(kernel: Kernel) -> None:
    assert not [e for e in kernel.registrations.all() if e.owner is not None]
    problems = Problems.of_kernel(kernel)
    assert not problems, problems


def test_filesystem_modules_register_and_unregister_their_types():
    """... and a block device filesystem mounts ENOTBLK, there being no block devices."""
    modules, build = corpus("6.1")
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        for name in ("romfs", "squashfs", "sysv", "fat", "vfat", "msdos"):
            await kernel.init_module(module(modules, name))
        assert [t.name for t in filesystems.filesystems(kernel).types()] == \
            ["romfs", "squashfs", "sysv", "v7", "vfat", "msdos"]
        assert _registered(kernel, "sysv") == [("filesystem", 'filesystem type "sysv"'),
                                               ("filesystem", 'filesystem type "v7"'),
                                               ("slab_cache", "kmem_cache sysv_inode_cache")]
        with pytest.raises(KernelError) as no_dev:
            await do_mount(kernel, "romfs", "/mnt", "/dev/sda1", "", "mount")
        assert no_dev.value.errno == errno.ENOTBLK
        for name in ("msdos", "vfat", "fat", "sysv", "squashfs", "romfs"):
            await kernel.delete_module(name)
        assert filesystems.filesystems(kernel).types() == []
    trio.run(main)
    _clean(kernel)


def test_a_real_pseudo_filesystem_mounts_and_pins_its_module():
    """binfmt_misc (Linux 6.1): ->init_fs_context, get_tree_single and
    simple_fill_super, mounted where systemd mounts it."""
    modules, build = corpus("6.1")
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        await kernel.init_module(module(modules, "binfmt_misc"))
        assert ("binfmt", "binary format") in [(s, w.split(" 0x")[0]) for s, w in
                                               _registered(kernel, "binfmt_misc")]
        target = "/proc/sys/fs/binfmt_misc"
        await do_mount(kernel, "binfmt_misc", target, "binfmt_misc", "", "mount")
        assert mount_table(kernel) == [{"source": "binfmt_misc", "target": target,
                                        "fstype": "binfmt_misc", "dev": "0:1"}]
        assert kernel.get_module("binfmt_misc").refcount == 1
        with pytest.raises(KernelError) as busy:
            await kernel.delete_module("binfmt_misc")
        assert busy.value.errno == errno.EWOULDBLOCK
        await do_umount(kernel, target, "umount")
        await kernel.delete_module("binfmt_misc")
    trio.run(main)
    _clean(kernel)


def test_configfs_pins_its_mount_while_a_subsystem_is_registered():
    """configfs (Linux 6.1): nvmet's subsystem makes configfs mount itself
    (simple_pin_fs) and build the subsystem's directories (new_inode, whose
    i_mapping it sets ram_aops through: a NULL one oopsed at 0x90;
    d_alloc_name, d_add, inc_nlink); unregistering takes them down (d_delete,
    simple_rmdir, dput, iput and configfs's own free_inode) and releases
    the mount, so every module goes clean."""
    modules, build = corpus("6.1")
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        for name in ("configfs", "nvmet", "nvmet-tcp"):
            await kernel.init_module(module(modules, name))
        (sb,) = supers(kernel).supers.values()
        assert sb.fstype.name == "configfs"
        assert kernel.get_module("configfs").refcount == 2           # nvmet's use, the superblock
        await kernel.delete_module("nvmet_tcp")
        await kernel.delete_module("nvmet")
        assert not supers(kernel).supers and kernel.get_module("configfs").refcount == 0
        await kernel.delete_module("configfs")
    trio.run(main)
    _clean(kernel)
    assert kernel.slab.usage("configfs") == (0, 0)


def test_option_patterns_match_as_linux_parser():
    """lib/parser.c's match_one: the whole string, %s never empty and at
    most N bytes for %Ns, numbers with base prefixes, %% a literal."""
    assert match_one(b"rd_pages=8", b"rd_pages=%d") == [(9, 10)]
    assert match_one(b"rd_pages=8x", b"rd_pages=%d") is None            # trailing text
    assert match_one(b"rd_pages=", b"rd_pages=%d") is None
    assert match_one(b"mode=0755", b"mode=%o") == [(5, 9)]
    assert match_one(b"id=0x1f,", b"id=%x,") == [(3, 7)]
    assert match_one(b"name=abcdef", b"name=%3s") is None              # %3s stops, the rest is left over
    assert match_one(b"abc", b"%3s") == [(0, 3)]
    assert match_one(b"50%", b"%u%%") == [(0, 2)]
    assert match_one(b"x=", b"x=%s") is None
    assert simple_strtoull(b"0x1fz", 0) == (31, 4) and simple_strtoull(b"017", 0) == (15, 3)


def test_6_12_binfmt_misc_registers_and_its_per_namespace_mount_is_an_honest_gap():
    """Linux 6.12's binfmt_misc is per user namespace: its ->get_tree is
    get_tree_keyed on the mounter's user namespace, which kloader (no
    credentials) does not emulate: the mount fails saying so, and the module
    still goes clean."""
    modules, build = corpus("6.12")
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        await kernel.init_module(module(modules, "binfmt_misc"))
        assert ("filesystem", 'filesystem type "binfmt_misc"') in _registered(kernel, "binfmt_misc")
        with pytest.raises(KernelError) as gap:
            await do_mount(kernel, "binfmt_misc", "/proc/sys/fs/binfmt_misc", "binfmt_misc", "", "mount")
        assert "kernel function get_tree_keyed is not emulated" in gap.value.message
        assert mount_table(kernel) == [] and kernel.get_module("binfmt_misc").refcount == 0
        await kernel.delete_module("binfmt_misc")
    trio.run(main)
    assert not [e for e in kernel.registrations.all() if e.owner is not None]


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_a_filesystem_built_for_each_release_mounts_through_the_client(tmp_path, flavour):
    """examples/pseudofs built by Debian's own kbuild of 6.1 and of 6.12:
    mount_nodev, simple_fill_super's inodes and dentries, kill_litter_super,
    and simple_pin_fs behind a misc device, through the socket client.
    Under 6.12 these were not emulated while kloaderd/fs/ read 6.1's
    struct super_block (whose s_fs_info and s_id moved), inode and dentry."""
    from kloader_client import Client
    from kloaderd import embed
    from test_kbuild import kmodbuild
    _, build = corpus(flavour)
    ko = tmp_path / "pseudofs.ko"
    done = kmodbuild("--kernel", str(build), str(EXAMPLES / "pseudofs" / "pseudofs.c"), "-o", str(ko))
    assert done.returncode == 0, done.stderr
    with embed.run_in_thread(kernel=str(build)) as daemon, Client(daemon.socket_path) as client:
        client.finit_module(ko)
        assert client.mount("pseudofs", "/mnt/pseudo", data="mode=0700") == {
            "fstype": "pseudofs", "target": "/mnt/pseudo", "source": "none", "dev": "0:1"}
        assert client.module("pseudofs")["refcnt"] == 1               # the superblock
        fd = client.open("/dev/pseudofs")                              # simple_pin_fs: a second one
        assert client.module("pseudofs")["refcnt"] == 3
        client.close(fd)
        client.umount("/mnt/pseudo")
        assert client.mounts() == [] and client.module("pseudofs")["refcnt"] == 0
        client.delete_module("pseudofs")
        log = [r["text"] for r in client.dmesg()]
    assert "pseudofs: mount of none (mode=0700)" in log
    assert "pseudofs: superblock pseudofs 0:1 filled" in log           # s_id and s_dev as written
    assert "pseudofs: superblock pseudofs 0:2 filled" in log
    assert log.count("pseudofs: superblock 0:1 killed") == 1
    assert log.count("pseudofs: superblock 0:2 killed") == 1
    assert not [line for line in log if "not emulated" in line or "BUG" in line or "leaked" in line
                or "Oops" in line]


def test_a_charset_nobody_registered_is_asked_of_modprobe(kloader_module_tree):
    """load_nls is try_then_request_module(find_nls(), "nls_%s"): Debian's
    nls_euc-jp asks for cp932 in its init, and modprobe loads nls_cp932
    from the module tree, pinned by euc-jp's reference until it goes."""
    modules, build = corpus("6.1")
    release = KernelProfile(build).release
    tree = kloader_module_tree(*(next(modules.rglob(f"{n}.ko*")) for n in ("nls_cp932", "nls_euc-jp")),
                               release=release)
    kernel = Kernel(KernelOptions(kernel=str(build), module_dir=str(tree)))

    async def main() -> None:
        await kernel.init_module(module(modules, "nls_euc-jp"))
        assert kernel.get_module("nls_cp932").refcount == 1          # euc-jp's load_nls
        await kernel.delete_module("nls_euc_jp")
        assert kernel.get_module("nls_cp932").refcount == 0
        await kernel.delete_module("nls_cp932")
    trio.run(main)
    _clean(kernel)
