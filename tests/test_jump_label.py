"""Static keys: module code patched when a key flips (kernel/jump_label.py,
arch/x86/jump_label.py), through the client as a user sees it.

`fixtures/src/statickeys.c` reads every branch as its code takes it, so a
line that changes after a `static_branch_enable` proves the site was
patched: nothing else in the code reads the key."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

OFF = "false.unlikely=0 false.likely=0 true.likely=1 true.unlikely=1 shared=0 count=0"
ON = "false.unlikely=1 false.likely=1 true.likely=1 true.unlikely=1 shared=0 count=1"


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


def state(client) -> str:
    return client.read_file("/proc/statickeys").decode().strip()


def command(client, cmd: str) -> None:
    assert client.write_file("/proc/statickeys", cmd) == len(cmd)


@pytest.mark.kloader(on_problems="raise")
def test_enable_and_disable_patch_every_site_of_the_key(kloader):
    kloader.finit_module(FIXTURES / "statickeys.ko")
    assert f"statickeys: init: {OFF}" in log(kloader)
    assert "statickeys: init text sees the false key off" in log(kloader)
    assert state(kloader) == OFF
    command(kloader, "enable")
    assert state(kloader) == ON
    command(kloader, "enable")                        # already on: nothing moves
    assert state(kloader) == ON
    command(kloader, "disable")
    assert state(kloader) == OFF
    command(kloader, "true-off")                       # a key defined true, both site kinds
    assert "true.likely=0 true.unlikely=0" in state(kloader)
    command(kloader, "true-on")
    assert state(kloader) == OFF
    kloader.delete_module("statickeys")
    assert f"statickeys: exit: {OFF}" in log(kloader)


@pytest.mark.kloader(on_problems="raise")
def test_inc_and_dec_count_users_and_patch_on_the_first_and_last(kloader):
    kloader.finit_module(FIXTURES / "statickeys.ko")
    command(kloader, "inc")
    assert state(kloader) == ON
    command(kloader, "inc")
    assert state(kloader).endswith("count=2")
    assert state(kloader).startswith("false.unlikely=1")
    command(kloader, "dec")
    assert state(kloader) == ON                        # one user left: still patched
    command(kloader, "dec")
    assert state(kloader) == OFF


@pytest.mark.kloader(on_problems="raise")
def test_a_site_in_init_text_is_patched_while_the_module_is_coming(kloader):
    kloader.finit_module(FIXTURES / "statickeys.ko", "start_enabled=1")
    assert "statickeys: init text sees the false key on" in log(kloader)
    assert state(kloader) == ON
    command(kloader, "disable")                        # the init site is gone: not touched
    command(kloader, "enable")
    assert state(kloader) == ON


@pytest.mark.kloader(on_problems="raise")
def test_another_modules_sites_follow_an_exported_key(kloader):
    kloader.finit_module(FIXTURES / "statickeys.ko")
    command(kloader, "shared-on")
    kloader.finit_module(FIXTURES / "statickeys_user.ko")     # patched at load
    assert "statickeys_user: init: shared=1" in log(kloader)
    assert kloader.read_file("/proc/statickeys_user") == b"shared=1\n"
    command(kloader, "shared-off")
    assert kloader.read_file("/proc/statickeys_user") == b"shared=0\n"
    command(kloader, "shared-on")
    assert kloader.read_file("/proc/statickeys_user") == b"shared=1\n"
    kloader.delete_module("statickeys_user")
    command(kloader, "shared-off")                     # its sites went with it
    assert "shared=0" in state(kloader)
    kloader.finit_module(FIXTURES / "statickeys_user.ko")
    assert log(kloader)[-1] == "statickeys_user: init: shared=0"


@pytest.mark.kloader(on_problems="raise")
def test_do_once_runs_once_then_its_key_is_disabled_by_a_work_item(kloader):
    kloader.finit_module(FIXTURES / "statickeys.ko")
    command(kloader, "once")
    command(kloader, "once")
    assert [line for line in log(kloader) if "once ran" in line] == ["statickeys: once ran (1)"]
    # once_disable_jump held a reference on the module until its work ran;
    # removal waits for that reference, then succeeds.
    kloader.delete_module("statickeys", wait=True, timeout=30)
    assert "statickeys" not in [m["name"] for m in kloader.modules()]


@pytest.mark.kloader(on_problems="ignore")
def test_underflow_warns_once_and_leaves_the_key_off(kloader):
    kloader.finit_module(FIXTURES / "statickeys.ko")
    command(kloader, "dec")
    command(kloader, "dec")
    lines = log(kloader)
    warnings = [line for line in lines if line.startswith("WARNING: CPU: 0 PID:")]
    assert len(warnings) == 1
    assert warnings[0].endswith("at kernel/jump_label.c static_key_slow_dec+0x0/0x10")
    assert state(kloader) == OFF


# --- the real thing: Debian 6.12's nf_tables enables a key of its own in init ---

NF_TABLES = ("libcrc32c", "nfnetlink", "nf_tables")


def test_nf_tables_612_loads_and_unloads_through_the_client():
    """nf_tables' init calls static_key_enable (it stopped there before), and
    the 30-odd nft_* modules depend on it."""
    from kloader_client import Client
    from kloaderd import embed
    from realkernel import corpus

    modules, build = corpus("6.12")
    with embed.run_in_thread(kernel=str(build)) as daemon, Client(daemon.socket_path) as client:
        for name in NF_TABLES:
            client.finit_module(next(modules.rglob(f"{name}.ko*")), compressed=True)
        assert client.module("nf_tables")["state"] == "live"
        for name in reversed(NF_TABLES):
            client.delete_module(name)
        log = [r["text"] for r in client.dmesg()]
    assert not [t for t in log if "not emulated" in t or "Oops" in t or "BUG" in t or "WARNING" in t], log


def test_nf_tables_612_site_on_its_enabled_key_is_patched_to_a_nop():
    """`static_branch_likely(&nf_tables_skip_direct_calls)` on a false key is
    compiled as a JMP (branch bit set); init enables the key, so the site
    in nft_do_chain must now be the NOP."""
    import trio

    from kloaderd.arch.x86.jump_label import JUMP_LABEL_NOP, site_type
    from kloaderd.kernel.jump_label import jump_labels
    from kloaderd.kernel.kernel import Kernel, KernelOptions
    from realkernel import corpus, find_module

    modules, build = corpus("6.12")
    kernel = Kernel(KernelOptions(kernel=str(build)))
    seen: dict[str, tuple[int, list[tuple[int, int]]]] = {}

    async def main() -> None:
        for name in NF_TABLES:
            await kernel.init_module(find_module(modules, name))
        labels = jump_labels(kernel)
        for key, sites in labels.sites.items():
            name = (kernel.symbolize(key) or "").split("+")[0]
            seen[name] = (labels.count(key), [(s.branch, site_type(kernel.mem, s.code)) for s in sites])
        for name in reversed(NF_TABLES):
            await kernel.delete_module(name)
        assert not jump_labels(kernel).sites          # every site went with its module
        await kernel.shutdown()
    trio.run(main)
    count, sites = seen["nf_tables_skip_direct_calls"]
    assert count == 1 and sites == [(1, JUMP_LABEL_NOP)]
    assert seen["nft_trace_enabled"][0] == 0
    assert all(kind == JUMP_LABEL_NOP for _, kind in seen["nft_trace_enabled"][1])


KERNEL_KEY = r"""
#include <linux/module.h>
#include <linux/netdevice.h>

static noinline int stamped(void)
{
	return static_branch_unlikely(&netstamp_needed_key) ? 1 : 0;
}

static int __init kkey_init(void)
{
	pr_info("kkey: before=%d\n", stamped());
	static_branch_inc(&netstamp_needed_key);
	static_branch_inc(&netstamp_needed_key);
	pr_info("kkey: two users=%d count=%d\n", stamped(), static_key_count(&netstamp_needed_key.key));
	static_branch_dec(&netstamp_needed_key);
	pr_info("kkey: one user=%d\n", stamped());
	static_branch_dec(&netstamp_needed_key);
	pr_info("kkey: none=%d\n", stamped());
	return 0;
}

static void __exit kkey_exit(void)
{
}

module_init(kkey_init);
module_exit(kkey_exit);
MODULE_LICENSE("GPL");
"""


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_a_modules_site_on_a_kernel_key_follows_the_count_it_moves(tmp_path, flavour):
    """netstamp_needed_key is the kernel's (a profile's export kloader backs
    with no memory): its count is kept by kloader, its type learned from the
    module's site, and the site patched on the first user and the last."""
    from realkernel import run_kbuilt

    _, lines = run_kbuilt(tmp_path, "kkey", KERNEL_KEY, flavour)
    assert lines == ["kkey: before=0", "kkey: two users=1 count=2", "kkey: one user=1", "kkey: none=0"]
