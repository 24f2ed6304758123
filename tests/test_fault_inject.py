"""Fault injection (failslab, fail_function) and kernel functions provided
from Python, through the plugin's `kloader_faults` and the kernel object."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import trio

from kloaderd import embed
from kloaderd.kernel.fault_inject import FaultAttr
from kloaderd.kernel.kernel import Kernel, KernelOptions

LEAKY = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/slab.h>
#include <linux/errno.h>
#include <linux/printk.h>
MODULE_LICENSE("GPL");
extern int kloader_test_hook(int x);
static void *a, *b;
static int __init leaky_init(void)
{
	a = kmalloc(32, GFP_KERNEL);
	if (!a)
		return -ENOMEM;
	b = kmalloc(64, GFP_KERNEL);
	if (!b)
		return -ENOMEM;             /* the bug fault injection finds: a leaks */
	pr_info("leaky: hook(14) = %d\n", kloader_test_hook(14));
	return 0;
}
static void __exit leaky_exit(void)
{
	kfree(b);
	kfree(a);
}
module_init(leaky_init);
module_exit(leaky_exit);
"""


@pytest.fixture
def leaky(tmp_path: Path, kloader_build) -> Path:
    source = tmp_path / "leaky.c"
    source.write_text(LEAKY)
    return kloader_build(source)


def test_fault_attr_follows_should_fail():
    nth = FaultAttr(nth=3)
    assert [nth.should_fail() for _ in range(5)] == [False, False, True, False, False]
    twice = FaultAttr(times=2, interval=2)
    assert [twice.should_fail() for _ in range(6)] == [False, True, False, True, False, False]
    spaced = FaultAttr(space=100, times=-1)
    assert [spaced.should_fail(60), spaced.should_fail(60), spaced.should_fail(60)] == \
        [False, True, True]
    assert not any(FaultAttr(probability=0, times=-1).should_fail() for _ in range(50))
    half = FaultAttr(probability=50, times=-1)
    half.rng.seed(1)
    results = [half.should_fail() for _ in range(200)]
    assert 50 < sum(results) < 150 and half.failures == sum(results)


@pytest.mark.kloader(on_problems="ignore")
def test_failing_the_second_kmalloc_finds_the_leak_on_the_error_path(kloader, kloaderd,
                                                                     kloader_faults, leaky):
    kloader_faults.provide("kloader_test_hook", lambda ctx, x: x * 3)
    kloader_faults.failslab(nth=2)
    with pytest.raises(OSError) as failed:
        kloader.finit_module(leaky)
    assert failed.value.errno == errno.ENOMEM
    log = [r["text"] for r in kloader.dmesg()]
    assert "FAULT_INJECTION: forcing a failure." in log
    assert "name failslab, interval 1, probability 100, space 0, times 1" in log
    assert "leaky: leaked 32 bytes in 1 allocations" in log
    # The same module is clean when nothing fails, and the hook was provided.
    assert kloader.finit_module(leaky) == "leaky"
    assert "leaky: hook(14) = 42" in [r["text"] for r in kloader.dmesg()]


def test_the_plugin_reports_the_leak_as_a_problem(leaky):
    with embed.run_in_thread(on_problems="ignore") as daemon:
        daemon.run_sync(lambda: daemon.kernel.provide("kloader_test_hook", lambda ctx, x: x))
        daemon.run_sync(lambda: daemon.kernel.faults.failslab(nth=2))
        from kloader_client import Client
        with Client(daemon.socket_path) as client, pytest.raises(OSError):
            client.finit_module(leaky)
    assert daemon.problems.leaks == ("leaky: leaked 32 bytes in 1 allocations",)


def test_fail_function_and_provide_override(leaky):
    kernel = Kernel(KernelOptions())
    calls = []

    def hook(ctx, x):
        calls.append((ctx.module.name, x))
        return x + 1

    kernel.provide("kloader_test_hook", hook)
    fault = kernel.faults.fail_function("kloader_test_hook", -errno.EBUSY & 0xFFFFFFFF, times=1)
    image = leaky.read_bytes()

    async def main() -> None:
        await kernel.init_module(image)                 # the hook "returns" -EBUSY once
        await kernel.delete_module("leaky")
        await kernel.init_module(image)                 # then runs
    trio.run(main)
    log = [r.text for r in kernel.log.records()]
    assert "leaky: hook(14) = -16" in log and "leaky: hook(14) = 15" in log
    assert "name fail_function, interval 1, probability 100, space 0, times 0" in log
    assert calls == [("leaky", 14)] and fault.failures == 1
    kernel.provide("kloader_test_hook", lambda ctx, x: 0)          # overridden again
    with pytest.raises(KeyError):
        kernel.faults.fail_function("no_such_function_anywhere", -1)
    with pytest.raises(ValueError, match="cannot be provided"):
        kernel.provide("jiffies", lambda ctx: 0)


def test_provide_defines_a_not_emulated_function_of_a_profile(tmp_path, kloader_build):
    from test_profile import NOT_EMULATED_SRC, RELEASE, write_tree
    tree = write_tree(tmp_path / "build")
    (missing,) = [name for name in __import__("test_profile").NOT_EMULATED
                  if name not in ("ns_func", "init_user_ns")]
    source = tmp_path / "ne.c"
    source.write_text(NOT_EMULATED_SRC)
    ko = kloader_build(source, name="ne", vermagic=f"{RELEASE} SMP preempt mod_unload modversions ")
    kernel = Kernel(KernelOptions(kernel=str(tree)))
    kernel.provide(missing, lambda ctx, alg: 0)
    trio.run(lambda: kernel.init_module(ko.read_bytes()))
    assert kernel.find_module("ne") is not None
    with pytest.raises(ValueError, match="cannot be provided"):
        kernel.provide("jiffies", lambda ctx: 0)
