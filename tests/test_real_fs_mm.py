"""Debian's own modules that stopped at inode timestamps, shrinkers, key
types, class files and DCCP's hash tables, unforced under their profile:
they load, register what they register, unload, and nothing leaks.  They
skip, saying why, where the corpus cannot be fetched."""

from __future__ import annotations

import pytest
import trio

from kloaderd.embed import Problems
from kloaderd.fs.file import FileTable
from kloaderd.kernel.kernel import Kernel, KernelOptions
from realkernel import corpus, find_module
from test_real_core_api import load_then_remove_clean


@pytest.mark.parametrize("flavour, names", [
    ("6.12", ["configfs", "tsm"]),                                        # simple_inode_init_ts
    ("6.12", ["configfs", "nvmet"]),
    ("6.12", ["configfs", "ib_core", "ib_cm", "iw_cm", "rdma_cm", "ib_uverbs", "rdma_ucm"]),
    ("6.12", ["libcrc32c", "erofs"]),                                     # shrinker_alloc
    ("6.1", ["configfs", "ib_core", "ib_uverbs", "iw_cm", "ib_cm", "rdma_cm", "rdma_ucm",
             "mlx4_core", "mlx4_ib"]),                                    # class_create_file_ns
])
def test_real_modules_load_and_unload_clean(flavour, names):
    kernel, seen = load_then_remove_clean(corpus(flavour), names)
    if "ib_uverbs" in names:
        assert "sysfs file /sys/class/infiniband_verbs/abi_version" in seen["ib_uverbs"]


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_dccp_makes_its_hash_tables_and_its_exit_forgets_a_cache(flavour):
    """inet_hashinfo2_init_mod and inet_ehash_locks_alloc fill DCCP's
    tables, which its exit frees; the exit never destroys
    `dccp_bind2_bucket` (created in dccp_init since Linux 6.1, not in
    dccp_fini): Linux leaks the cache, kloader says so."""
    modules, build = corpus(flavour)
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        await kernel.init_module(find_module(modules, "dccp"))
        await kernel.delete_module("dccp")
        await kernel.shutdown()
    trio.run(main)
    problems = Problems.of_kernel(kernel)
    assert problems.leaks == ("dccp: leaked registration: kmem_cache dccp_bind2_bucket",)
    assert not problems.oopses and not problems.warnings and not problems.sanitizer


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_sunrpc_and_lockd_shrinkers_run_under_drop_caches(flavour):
    """sunrpc's credential cache shrinker and nfs_acl's are called by a
    write to /proc/sys/vm/drop_caches (their caches are empty: counted, not
    scanned) and go with their modules."""
    modules, build = corpus(flavour)
    kernel = Kernel(KernelOptions(kernel=str(build)))
    names = ["sunrpc", "grace", "lockd", "auth_rpcgss", "nfs_acl"]
    shrinkers: list[str] = []

    async def main() -> None:
        for name in names:
            await kernel.init_module(find_module(modules, name))
            shrinkers.extend(r["what"] for r in kernel.module_info(name)["registrations"]
                             if r["subsystem"] == "shrinker")
        files = FileTable(kernel, "test", "sh", privileged=True)
        assert await files.write_file("/proc/sys/vm/drop_caches", b"3\n") == 2
        for name in reversed(names):
            await kernel.delete_module(name)
        await kernel.shutdown()
    trio.run(main)
    assert shrinkers == ['shrinker "sunrpc_cred"']
    assert any(r.text.startswith("sh (") and r.text.endswith("): drop_caches: 3") for r in kernel.log.records())
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
