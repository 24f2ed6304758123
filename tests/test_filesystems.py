"""Filesystem types of real modules (Debian's 6.1 and 6.12 cloud kernels,
unforced under their profiles): registered, listed, mounted where kloader
can, unregistered by their exits; and the structure offsets kloaderd/fs/
reads, measured against the kernels' own headers.  The example suite
(examples/pseudofs) covers mounting, pinning and the sanitizer's reports
with a module built here; these are the outside oracle.  They skip, saying
why, where the corpus cannot be fetched."""

from __future__ import annotations

import errno

import pytest
import trio

from kloaderd.embed import Problems
from kloaderd.errors import KernelError
from kloaderd.fs import exec as binfmt, filesystems, libfs, namespace, super as fs_super
from kloaderd.fs.namespace import do_mount, do_umount, mount_table
from kloaderd.kernel import api
from kloaderd.kernel.kernel import Kernel, KernelOptions
from realkernel import corpus, find_module as module


def _registered(kernel: Kernel, name: str) -> list[tuple[str, str]]:
    return sorted((r["subsystem"], r["what"]) for r in kernel.module_info(name)["registrations"])


def _clean(kernel: Kernel) -> None:
    assert not [e for e in kernel.registrations.all() if e.owner is not None]
    problems = Problems.from_log(kernel.log.records(), kernel.taints, kernel.taint_string())
    assert not problems, problems


def test_filesystem_modules_register_and_unregister_their_types():
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
        for name in ("msdos", "vfat", "fat", "sysv", "squashfs", "romfs"):
            await kernel.delete_module(name)
        assert filesystems.filesystems(kernel).types() == []
    trio.run(main)
    _clean(kernel)


def test_a_real_pseudo_filesystem_mounts_and_pins_its_module():
    """binfmt_misc (Linux 6.1): ->init_fs_context, get_tree_single and
    simple_fill_super, mounted where systemd mounts it; a block device
    filesystem is ENOTBLK, there being no block devices."""
    modules, build = corpus("6.1")
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        await kernel.init_module(module(modules, "binfmt_misc"))
        await kernel.init_module(module(modules, "romfs"))
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
        with pytest.raises(KernelError) as no_dev:
            await do_mount(kernel, "romfs", "/mnt", "/dev/sda1", "", "mount")
        assert no_dev.value.errno == errno.ENOTBLK
        await kernel.delete_module("romfs")
        await kernel.delete_module("binfmt_misc")
    trio.run(main)
    _clean(kernel)


def test_the_type_registry_holds_for_6_12_and_mounting_is_an_honest_gap():
    """struct file_system_type is the same in 6.12, so its registry is
    emulated there; struct super_block is not, so mount_nodev is not."""
    modules, build = corpus("6.12")
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        await kernel.init_module(module(modules, "binfmt_misc"))
        assert ("filesystem", 'filesystem type "binfmt_misc"') in _registered(kernel, "binfmt_misc")
        await kernel.delete_module("binfmt_misc")
    trio.run(main)
    _clean(kernel)
    assert api.emulated_for("register_filesystem", (6, 12))
    assert not api.emulated_for("mount_nodev", (6, 12))


# -- the offsets, measured ---------------------------------------------------------------

_PROBED = {
    "struct file_system_type": (filesystems, "linux/fs.h", {
        "name": "FST_NAME", "fs_flags": "FST_FS_FLAGS", "init_fs_context": "FST_INIT_FS_CONTEXT",
        "mount": "FST_MOUNT", "kill_sb": "FST_KILL_SB", "owner": "FST_OWNER", "next": "FST_NEXT"}),
    "struct linux_binfmt": (binfmt, "linux/binfmts.h", {
        "lh": "LH", "module": "MODULE", "load_binary": "LOAD_BINARY"}),
    "struct super_block": (fs_super, "linux/fs.h", {
        "s_dev": "S_DEV", "s_blocksize_bits": "S_BLOCKSIZE_BITS", "s_blocksize": "S_BLOCKSIZE",
        "s_maxbytes": "S_MAXBYTES", "s_type": "S_TYPE", "s_op": "S_OP", "s_flags": "S_FLAGS",
        "s_magic": "S_MAGIC", "s_root": "S_ROOT", "s_count": "S_COUNT", "s_active": "S_ACTIVE",
        "s_fs_info": "S_FS_INFO", "s_time_gran": "S_TIME_GRAN", "s_id": "S_ID", "sizeof": "SB_SIZE"}),
    "struct dentry": (fs_super, "linux/dcache.h", {
        "d_parent": "D_PARENT", "d_name": "D_NAME", "d_inode": "D_INODE", "d_iname": "D_ICNAME",
        "d_sb": "D_SB", "sizeof": "DENTRY_SIZE"}),
    "struct fs_context": (fs_super, "linux/fs_context.h", {
        "ops": "FC_OPS", "fs_type": "FC_FS_TYPE", "root": "FC_ROOT", "source": "FC_SOURCE",
        "s_fs_info": "FC_S_FS_INFO", "sb_flags": "FC_SB_FLAGS", "sizeof": "FC_SIZE"}),
    "struct fs_context_operations": (fs_super, "linux/fs_context.h", {
        "free": "FCOP_FREE", "parse_monolithic": "FCOP_PARSE_MONOLITHIC", "get_tree": "FCOP_GET_TREE"}),
    "struct super_operations": (fs_super, "linux/fs.h", {"put_super": "SOP_PUT_SUPER"}),
    "struct vfsmount": (namespace, "linux/mount.h", {
        "mnt_root": "MNT_ROOT", "mnt_sb": "MNT_SB", "mnt_flags": "MNT_FLAGS", "sizeof": "MNT_SIZE"}),
    "struct inode": (libfs, "linux/fs.h", {
        "i_mode": "I_MODE", "i_op": "I_OP", "i_sb": "I_SB", "i_ino": "I_INO", "i_nlink": "I_NLINK",
        "i_fop": "I_FOP", "sizeof": "INODE_ALLOC"}),
    "struct tree_descr": (libfs, "linux/fs.h", {
        "name": "TD_NAME", "ops": "TD_OPS", "mode": "TD_MODE", "sizeof": "TD_SIZE"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_offsets_are_the_kernels(flavour):
    """Every offset a file of kloaderd/fs/ reads is the kernel's, for each
    release its LAYOUTS names."""
    from tools.struct_probe import Unavailable, probe
    _, build = corpus(flavour)
    version = tuple(int(p) for p in flavour.split("."))
    values, expected = {}, {}
    headers = set()
    for struct, (mod, header, members) in _PROBED.items():
        layouts = mod.LAYOUTS if isinstance(mod.LAYOUTS[0], tuple) else (mod.LAYOUTS,)
        if version not in layouts:
            continue
        headers.add(header)
        for member, constant in members.items():
            key = f"{struct.split()[1]}_{member}"
            values[key] = f"sizeof({struct})" if member == "sizeof" else f"offsetof({struct}, {member})"
            expected[key] = getattr(mod, constant)
    try:
        measured = probe(build, sorted(headers), values)
    except Unavailable as exc:
        pytest.skip(f"cannot build against the {flavour} tree: {exc}")
    assert measured == expected
