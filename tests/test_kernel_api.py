"""The kernel API by evidence, from module code on kloader's own kernel:
crypto, nls and notifier registrations, kmem_cache, RCU, list debugging,
bit searching, refcount saturation (tests/kapi_src/regs.c, built by
kmodbuild against kloader's headers)."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
import trio

from kloaderd.embed import Problems
from kloaderd.errors import KernelError
from kloaderd.kernel.kernel import Kernel

SRC = Path(__file__).parent / "kapi_src"


def build(tmp_path_factory, name: str) -> bytes:
    if shutil.which("gcc") is None or shutil.which("ld") is None:
        pytest.skip("building a module needs gcc and ld")
    from kloaderd.build import build_module
    out = tmp_path_factory.mktemp(name) / f"{name}.ko"
    return build_module([SRC / f"{name}.c"], out).read_bytes()


@pytest.fixture(scope="module")
def regs_ko(tmp_path_factory) -> bytes:
    return build(tmp_path_factory, "regs")


def run(ko: bytes, scenario: str = "none", *, remove: bool = True) -> tuple[Kernel, list[str]]:
    kernel = Kernel()

    async def main() -> None:
        try:
            name = await kernel.init_module(ko, f"scenario={scenario}")
        except KernelError:
            return
        if remove:
            await kernel.delete_module(name)
    trio.run(main)
    return kernel, [r.text for r in kernel.log.records()]


def test_registrations_made_and_undone(regs_ko):
    kernel, texts = run(regs_ko, remove=False)
    regs = [line for line in texts if line.startswith("regs: ") and "taints" not in line]
    assert regs == [
        "regs: crypto_register_alg=0 refcnt=1",
        f"regs: again={-errno.EEXIST} clash={-errno.EEXIST} nameless={-errno.EINVAL}",
        f"regs: register_nls=0 busy={-errno.EBUSY} owner_ok=1",
        "regs: chain order high=1 low=1 end=1",
        "regs: reboot=0",
        "regs: cache=1 item=1 aligned=1 size=24",
        "regs: add_valid=1",
        "regs: bits next=15 next=64 end=64 zero=1 weight=3",
        "regs: rwsem write_while_read=0 read_while_write=0 read=1 count=0",
        "regs: strsep [a] [b] end=1",
        "regs: strncpy padded=1 page_aligned=1",
    ]
    info = kernel.module_info("regs")
    assert [(r["subsystem"], r["what"]) for r in info["registrations"]] == [
        ("crypto", 'crypto algorithm "kltest" (kltest-generic)'),
        ("nls", "nls table kltest"),
        ("notifier", "notifier event [regs] on chain [regs]"),
        ("notifier", "notifier event [regs] on chain [regs]"),
        ("notifier", "notifier event [regs] on reboot_notifier_list"),
        ("slab_cache", "kmem_cache kltest_items"),
    ]
    trio.run(kernel.delete_module, "regs")
    texts = [r.text for r in kernel.log.records()]
    assert f"regs: unregister high=0 again={-errno.ENOENT}" in texts
    assert f"regs: unregister_nls=0 again={-errno.EINVAL}" in texts
    assert "regs: dead=1" in texts
    assert not [e for e in kernel.registrations.all() if e.owner is not None]
    assert kernel.slab.usage("regs") == (0, 0)          # kfree_rcu freed after the grace period
    assert not Problems.of_kernel(kernel)


def test_what_exit_forgets_is_reported_and_made_inert(regs_ko):
    kernel, texts = run(regs_ko, "forget")
    leaked = [t for t in texts if "leaked registration" in t]
    assert leaked == [
        'regs: leaked registration: crypto algorithm "kltest" (kltest-generic)',
        "regs: leaked registration: nls table kltest",
        "regs: leaked registration: notifier event [regs] on chain [regs]",
        "regs: leaked registration: notifier event [regs] on chain [regs]",
        "regs: leaked registration: notifier event [regs] on reboot_notifier_list",
        "regs: leaked registration: kmem_cache kltest_items",
    ]
    problems = Problems.of_kernel(kernel)
    assert len(problems.leaks) == 6
    # the kernel's own lists no longer reach the freed module: the same
    # module loads, registers and unregisters again cleanly
    kernel2 = kernel

    async def again() -> None:
        await kernel2.init_module(regs_ko)
        await kernel2.delete_module("regs")
    trio.run(again)
    assert not [e for e in kernel.registrations.all() if e.owner is not None]


def test_a_notifier_registered_twice_warns(regs_ko):
    kernel, texts = run(regs_ko, "notifier_twice")
    assert f"regs: twice={-errno.EEXIST}" in texts
    assert "notifier callback event [regs] already registered" in texts
    assert any(t.startswith("WARNING: CPU: 0 PID: ") and "kernel/notifier.c:29" in t
               for t in texts)
    assert "W" in kernel.taints


def test_unregistering_an_algorithm_twice_warns(regs_ko):
    kernel, texts = run(regs_ko, "unregister_twice")
    assert "Algorithm kltest-generic is not registered" in texts


def test_a_cache_destroyed_with_objects_is_a_slub_bug(regs_ko):
    kernel, texts = run(regs_ko, "cache_leak")
    assert any(t.startswith("BUG kltest_items (") and t.endswith(
        "Objects remaining in kltest_items on __kmem_cache_shutdown()") for t in texts)
    assert any(t.startswith("kmem_cache_destroy kltest_items: Slab cache still has objects")
               for t in texts)
    assert "regs: leaked registration: kmem_cache kltest_items" in texts
    assert any(t.startswith("regs: leaked 32 bytes in 1 allocation") for t in texts)


def test_refcount_saturation_warns_once(regs_ko):
    kernel, texts = run(regs_ko, "refcount")
    assert texts.count("refcount_t: underflow; use-after-free.") == 1
    assert "regs: ref=0xc0000000" in texts


def test_list_corruption_is_a_bug(regs_ko):
    kernel, texts = run(regs_ko, "list_corrupt")
    assert any(t.startswith("list_del corruption. prev->next should be ") for t in texts)
    assert any(t.startswith("kernel BUG at lib/list_debug.c:") for t in texts)
    assert "regs: not reached" not in texts
    assert kernel.find_module("regs") is None
    assert not [e for e in kernel.registrations.all() if e.owner is not None]        # the failed init's leftovers, reported


@pytest.fixture(scope="module")
def kapi2_ko(tmp_path_factory) -> bytes:
    return build(tmp_path_factory, "kapi2")


def test_dev_printk_dynamic_debug_locks_random_and_nls(regs_ko, kapi2_ko):
    kernel = Kernel()

    async def main() -> None:
        await kernel.init_module(regs_ko)            # registers nls table "kltest"
        await kernel.init_module(kapi2_ko)
        assert kernel.get_module("regs").refcount == 0   # load_nls's reference was dropped
        info = kernel.module_info("kapi2")
        assert "tune" not in info["params"]          # custom ops: kloader does not call them
        with pytest.raises(KernelError) as failed:
            kernel.param_get("kapi2", "tune")
        assert failed.value.errno == errno.EOPNOTSUPP
        await kernel.delete_module("kapi2")
        await kernel.delete_module("regs")
    trio.run(main)
    records = [(r.level, r.text) for r in kernel.log.records() if "kapi2" in r.text]
    assert records[:5] == [
        (3, "pci 0000:00:03.0: kapi2 bus only 1"),
        (6, "e1000 eth-test: kapi2 driver and init_name"),
        (3, "(NULL device *): kapi2 no device"),
        (7, "kapi2:kapi2_init:42: kapi2 debug on"),
        (7, "e1000 eth-test: kapi2 dev debug"),
    ]
    texts = [text for _, text in records]
    assert "kapi2: trylock held=0 free=1 readers=2" in texts
    assert "kapi2: writer=0xff flags=0x246" in texts
    assert "kapi2: random zero_bytes_lt_16=1 distinct=1" in texts
    assert "kapi2: load_nls=kltest default=default" in texts
    assert "kapi2: blkdev major=254 busy=-16 big=-22" in texts
    assert "kapi2: rtnl before=0 held=1 trylock=0 after=0" in texts
    assert "kapi2: jiffies 1ms=1 8ms=2 neg=1 10j=40ms 1us=1" in texts
    everything = [r.text for r in kernel.log.records()]
    assert "register_blkdev: cannot get major 254 for other" in everything
    assert ("__register_blkdev: major requested (600) is greater than the maximum (511) "
            "for other") in everything
    warned = [r.text for r in kernel.log.records()]
    cut = warned.index("------------[ cut here ]------------")
    assert warned[cut + 1] == "kapi2 warned 7"


def test_a_block_major_kept_is_reported(kapi2_ko):
    kernel, texts = run(kapi2_ko, "keep_major")
    assert "kapi2: leaked registration: block major 254 (kltestblk)" in texts


def test_fortify_panic_is_a_bug(kapi2_ko):
    kernel, texts = run(kapi2_ko, "fortify")
    assert "detected buffer overflow in memcpy" in texts
    assert "kernel BUG at lib/string_helpers.c:1027!" in texts
    assert "kapi2: not reached" not in texts
