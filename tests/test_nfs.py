"""NFS client modules (fs/nfs) and the SSC table they register in
(kloaderd/fs/nfs_common/nfs_ssc.py).  Debian's nfs.ko stopped at
nfs_ssc_register, and nfsv2, nfsv3, nfsv4 and the pNFS layout drivers with
it; the corpus tests load them unforced and remove them, and a module built
with the real kbuild reads the table back through its own header, so a
wrong offset or a wrong rule shows as a wrong value."""

from __future__ import annotations

import pytest
import trio

from kloaderd.embed import Problems
from kloaderd.kernel.kernel import Kernel, KernelOptions
from realkernel import corpus, run_kbuilt, with_dependencies

SSC = r"""
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/module.h>
#include <linux/nfs_ssc.h>

MODULE_LICENSE("GPL");

static void deactive(struct super_block *sb) {}
static const struct nfs_ssc_client_ops mine = { .sco_sb_deactive = deactive };
static const struct nfs_ssc_client_ops other = { .sco_sb_deactive = deactive };
static const struct nfs4_ssc_client_ops mine4;

static int __init ssc_init(void)
{
	int set, kept, cleared, set4, cleared4, untouched;

	nfs_ssc_register(&mine);
	set = nfs_ssc_client_tbl.ssc_nfs_ops == &mine;
	nfs_ssc_unregister(&other);             /* not the holder: nothing happens */
	kept = nfs_ssc_client_tbl.ssc_nfs_ops == &mine;
	nfs42_ssc_register(&mine4);
	set4 = nfs_ssc_client_tbl.ssc_nfs4_ops == &mine4;
	nfs_ssc_unregister(&mine);
	cleared = nfs_ssc_client_tbl.ssc_nfs_ops == NULL;
	untouched = nfs_ssc_client_tbl.ssc_nfs4_ops == &mine4;
	nfs42_ssc_unregister(&mine4);
	cleared4 = nfs_ssc_client_tbl.ssc_nfs4_ops == NULL;
	pr_info("set %d kept %d set4 %d cleared %d untouched %d cleared4 %d\n",
		set, kept, set4, cleared, untouched, cleared4);
	nfs_ssc_register(&other);               /* left for the exit, which forgets it */
	return 0;
}
static void __exit ssc_exit(void) {}
module_init(ssc_init);
module_exit(ssc_exit);
"""


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_ssc_table_holds_what_was_registered_and_a_leftover_is_reported(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "ssc", SSC, flavour)
    assert lines[0] == "ssc: set 1 kept 1 set4 1 cleared 1 untouched 1 cleared4 1"
    problems = Problems.of_kernel(kernel)
    assert problems.leaks == ("ssc: leaked registration: NFS SSC client ops other [ssc]",)
    table = kernel.symbols.get("nfs_ssc_client_tbl").address
    assert kernel.mem.read(table, 16) == bytes(16)          # cleared, not pointing into freed code


def _load_and_remove(flavour: str, names: list[str]):
    """Load `names` with their dependencies, read the SSC table while they
    are loaded, remove them all; (kernel, nfs's registrations, the table's
    NFS slot then, the slot after)."""
    modules, build = corpus(flavour)
    order: list[bytes] = []
    for name in names:
        order += [image for image in with_dependencies(modules, name) if image not in order]
    kernel = Kernel(KernelOptions(kernel=str(build)))
    seen: dict[str, object] = {}

    async def main() -> None:
        loaded = [await kernel.init_module(image) for image in order]
        seen["registrations"] = [r["what"] for r in kernel.module_info("nfs")["registrations"]]
        table = kernel.symbols.get("nfs_ssc_client_tbl").address
        seen["while"] = kernel.symbolize(kernel.mem.read_u64(table + 8), False)
        for name in reversed(loaded):
            await kernel.delete_module(name)
        seen["after"] = kernel.mem.read_u64(table + 8)
        assert not [e for e in kernel.registrations.all() if e.owner is not None]
        await kernel.shutdown()
    trio.run(main)
    return kernel, seen


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_nfs_nfsv2_and_nfsv3_load_and_unload_clean(flavour):
    """nfs registers its filesystems, /proc/fs/nfsfs, /sys/fs/nfs and its
    SSC ops; nfsv2 and nfsv3 register their versions with it; removed in
    reverse, nothing is left and nothing is reported."""
    kernel, seen = _load_and_remove(flavour, ["nfsv3", "nfsv2"])
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
    assert 'filesystem type "nfs"' in seen["registrations"]
    assert "NFS SSC client ops nfs_ssc_clnt_ops_tbl [nfs]" in seen["registrations"]
    assert seen["while"] == "nfs_ssc_clnt_ops_tbl [nfs]"
    assert seen["after"] == 0
