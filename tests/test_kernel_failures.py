"""Issue 13: failures inside kernel functions and in module exits, met the
way a user meets them: a module built with kmodbuild, loaded and removed
through the socket with the client, its kernel log read with dmesg.

Each test failed before its fix.  Test-only kernel functions are registered
before the daemon's kernel is made (the registry is process-wide), so the
modules link against them like any export.
"""

from __future__ import annotations

import errno
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

import kloaderd
from kloader_client import Client
from kloaderd.build import build_module
from kloaderd.kernel import api

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("ld") is None,
                                reason="building modules needs gcc and ld")

HEADER = r"""
#include <linux/module.h>
MODULE_LICENSE("GPL");
"""


def _register(monkeypatch, name: str, impl, nargs: int) -> None:
    monkeypatch.setitem(api.FUNCTIONS, name, api.KernelFunction(
        name, impl, nargs, False, f"long {name}(long)"))


def _module(tmp_path: Path, name: str, body: str) -> bytes:
    src = tmp_path / f"{name}.c"
    src.write_text(HEADER + body)
    return build_module([src], tmp_path / f"{name}.ko").read_bytes()


def _log(client: Client) -> str:
    return "\n".join(r["line"] for r in client.dmesg())


def _broken(ctx, value: int) -> int:
    raise OverflowError("cannot fit 'int' into an index-sized integer")


def test_a_python_failure_in_exit_is_an_oops_and_the_module_goes(tmp_path, monkeypatch):
    """Defect 4: rmmod gave EIO and left the module GOING for ever."""
    _register(monkeypatch, "test_broken", _broken, 1)
    image = _module(tmp_path, "brokenexit", r"""
long test_broken(long);
static int __init brokenexit_init(void) { return 0; }
static void __exit brokenexit_exit(void) { if (test_broken(1)) pr_info("never\n"); }
module_init(brokenexit_init);
module_exit(brokenexit_exit);
""")
    with kloaderd.run_in_thread(on_problems="ignore") as daemon, Client(daemon.socket_path) as client:
        client.init_module(image)
        client.delete_module("brokenexit")              # completes, as Linux's rmmod does
        assert [m["name"] for m in client.modules()] == []
        log = _log(client)
        assert "kloader: kernel function test_broken failed: OverflowError" in log
        assert "kernel BUG at test_broken!" in log
        assert "RIP: 0010:test_broken+0x0/0x10" in log
        assert "brokenexit_exit" in log                  # the caller, in the call trace
        oops = [r for r in client.dmesg() if r["text"] == "kernel BUG at test_broken!"]
        assert [r["module"] for r in oops] == ["brokenexit"]     # whose code the task ran
        client.init_module(image)                        # the name is free again
        client.delete_module("brokenexit")


def test_a_python_failure_in_init_is_an_oops_not_eio(tmp_path, monkeypatch):
    _register(monkeypatch, "test_broken", _broken, 1)
    image = _module(tmp_path, "brokeninit", r"""
long test_broken(long);
static int __init brokeninit_init(void) { test_broken(1); return 0; }
static void __exit brokeninit_exit(void) { }
module_init(brokeninit_init);
module_exit(brokeninit_exit);
""")
    with kloaderd.run_in_thread(on_problems="ignore") as daemon, Client(daemon.socket_path) as client:
        with pytest.raises(OSError) as caught:
            client.init_module(image)
        assert caught.value.errno == errno.EFAULT       # an oops in init, as for any fault
        assert "kernel BUG at test_broken!" in _log(client)
        assert client.modules() == []


def test_memset_of_8_gib_faults_at_the_first_unmapped_page(tmp_path):
    """Defect 5: memset(p, 0, 8 GiB) built 8 GiB in Python (OOM-killed)."""
    image = _module(tmp_path, "bigset", r"""
#include <linux/slab.h>
#include <linux/string.h>
static int __init bigset_init(void)
{
	char *p = kmalloc(64, GFP_KERNEL);
	memset(p, 0, 8UL << 30);
	return 0;
}
module_init(bigset_init);
""")
    with kloaderd.run_in_thread(on_problems="ignore") as daemon, Client(daemon.socket_path) as client:
        with pytest.raises(OSError) as caught:
            client.init_module(image)
        assert caught.value.errno == errno.EFAULT
        log = _log(client)
        assert "BUG: unable to handle page fault for address:" in log
        assert "bigset_init" in log


def test_a_kernel_function_past_the_watchdog_is_a_soft_lockup(tmp_path):
    """Defect 5: work inside one kernel call was beyond the watchdog's reach.
    A watchdog of 1 ns is past after memset's first 64 KiB, wherever a
    slice ends; before, the 4 MiB memset ran to its end and init returned 0."""
    image = _module(tmp_path, "longset", r"""
#include <linux/slab.h>
#include <linux/string.h>
static int __init longset_init(void)
{
	char *p = kmalloc(4 << 20, GFP_KERNEL);      /* KMALLOC_MAX_SIZE */
	if (p)
		memset(p, 0, 4 << 20);
	return p ? 0 : -12;
}
module_init(longset_init);
""")
    with kloaderd.run_in_thread(on_problems="ignore", watchdog=1e-9) as daemon, \
            Client(daemon.socket_path) as client:
        with pytest.raises(OSError) as caught:
            client.init_module(image)
        assert caught.value.errno == errno.EFAULT
        assert "watchdog: BUG: soft lockup - CPU#0 stuck for" in _log(client)


def test_thousands_of_huge_fields_cost_what_is_kept(tmp_path):
    """Defect 5: each `%8388607d` was built in full before truncation (a
    thousand of them: 8 GB; on main this test is OOM-killed or times out).
    printk keeps 1,023 bytes; snprintf returns the full length without
    building it."""
    fields = "%8388607d" * 1000
    image = _module(tmp_path, "widefmt", rf"""
static int __init widefmt_init(void)
{{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "{fields}", {", ".join(["1"] * 1000)});
	printk(KERN_INFO "{fields}", {", ".join(["2"] * 1000)});
	pr_info("snprintf said %d, kept '%s'\n", n, buf);
	return 0;
}}
static void __exit widefmt_exit(void) {{ }}
module_init(widefmt_init);
module_exit(widefmt_exit);
""")
    with kloaderd.run_in_thread(on_problems="ignore") as daemon, Client(daemon.socket_path) as client:
        client.init_module(image)
        texts = [r["text"] for r in client.dmesg()]
        full = 8388607 * 1000 % 2**32 - 2**32          # the int C's vsnprintf returns
        assert f"snprintf said {full}, kept '{' ' * 15}'" in texts
        # A record holds 1,023 bytes of formatted text, its KERN_INFO prefix included.
        assert " " * 1021 in texts


def test_pr_cont_in_a_loop_fills_records_of_at_most_1023_bytes(tmp_path):
    """Defect 7: one record grew without bound (12 MB), at quadratic cost."""
    image = _module(tmp_path, "contloop", r"""
static int __init contloop_init(void)
{
	int i;
	pr_info("start:");
	for (i = 0; i < 20000; i++)
		pr_cont("%d,", i % 10);
	pr_cont("\n");
	return 0;
}
static void __exit contloop_exit(void) { }
module_init(contloop_init);
module_exit(contloop_exit);
""")
    with kloaderd.run_in_thread(on_problems="ignore") as daemon, Client(daemon.socket_path) as client:
        client.init_module(image)
        texts = [r["text"] for r in client.dmesg()][1:]       # after the taint line
        assert max(len(t.encode()) for t in texts) <= 1023
        assert "".join(texts) == "start:" + "".join(f"{i % 10}," for i in range(20000))


STUCK_EXIT = r"""
#include <linux/completion.h>
static DECLARE_COMPLETION(never_completed);
static int __init stuckexit_init(void) { return 0; }
static void __exit stuckexit_exit(void)
{
	pr_info("stuckexit: waiting for a completion that never comes\n");
	wait_for_completion(&never_completed);
}
module_init(stuckexit_init);
module_exit(stuckexit_exit);
"""


@pytest.mark.trio
async def test_an_exit_that_sleeps_for_ever_answers_timeouts_cancels_and_shutdown(tmp_path):
    """Defect 6: delete_module with a timeout never answered, a cancel got
    no ECANCELED, and SIGTERM never ended the daemon.  Now the exit runs as
    a kernel thread: the request's timeout answers ETIMEDOUT and a cancel
    ECANCELED while the module stays going, and shutdown interrupts the exit
    after `exit_grace`, saying so."""
    image = _module(tmp_path, "stuckexit", STUCK_EXIT)
    with trio.fail_after(60):                       # before the fix: no answer, ever
        kernel = await _stuck_exits(image)
    # Leaving serve() shut the daemon down: both exits were interrupted.
    log = [r.text for r in kernel.log.records()]
    for name in ("stuckexit", "stuckexi2"):
        assert (f"kloader: shutdown: the exit of module {name} was still running after 0.05 s: "
                "interrupted, module freed") in log
    assert kernel.loaded == {}


async def _stuck_exits(image: bytes):
    from kloader_client import AsyncClient
    from test_server import Raw
    async with kloaderd.serve(on_problems="ignore", exit_grace=0.05) as daemon:
        async with AsyncClient(daemon.socket_path) as client:
            await client.init_module(image)
            with pytest.raises(TimeoutError):
                await client.delete_module("stuckexit", timeout=0.05)
            assert (await client.module("stuckexit"))["state"] == "going"
            with pytest.raises(OSError) as busy:            # as Linux: it is not live
                await client.delete_module("stuckexit")
            assert busy.value.errno == errno.EBUSY
            await client.init_module(image.replace(b"stuckexit", b"stuckexi2"))
        raw = await Raw.connect(daemon.socket_path)
        await raw.send({"op": "delete_module", "id": "rm", "name": "stuckexi2"})
        while daemon.kernel.loaded["stuckexi2"].state.value != "going":
            await daemon.kernel.wait_for_change()
        await raw.send({"op": "cancel", "id": "c", "target": "rm"})
        replies = {r["id"]: r for r in [await raw.receive(), await raw.receive()]}
        assert replies["rm"]["error"]["errno"] == "ECANCELED" and replies["c"]["result"] is True
        raw.close()
    return daemon.kernel


def test_a_mutex_locked_twice_by_its_owner_is_reported_as_lockdep_does(tmp_path):
    """Issue 13, item 11: the second mutex_lock succeeded.  Linux sleeps for
    ever; with lockdep it first says "possible recursive locking detected".
    Here the report is followed by the task's death, so the load fails."""
    image = _module(tmp_path, "relock", r"""
#include <linux/mutex.h>
static DEFINE_MUTEX(relock_mutex);
static int __init relock_init(void)
{
	mutex_lock(&relock_mutex);
	mutex_lock(&relock_mutex);
	pr_info("relock: never printed\n");
	return 0;
}
module_init(relock_init);
""")
    with kloaderd.run_in_thread(on_problems="ignore") as daemon, Client(daemon.socket_path) as client:
        with pytest.raises(OSError) as caught:
            client.init_module(image)
        assert caught.value.errno == errno.EFAULT
        texts = [r["text"] for r in client.dmesg()]
        at = texts.index("WARNING: possible recursive locking detected")
        assert texts[at - 1] == "============================================"
        assert texts[at + 2] == "--------------------------------------------"
        assert re.fullmatch(r"insmod/\d+ is trying to acquire lock:", texts[at + 3])
        assert re.fullmatch(r"[0-9a-f]{16} \(relock_mutex\)\{\+\.\+\.\}-\{3:3\}, "
                            r"at: relock_init\+0x[0-9a-f]+/0x[0-9a-f]+ \[relock\]", texts[at + 4])
        assert texts[at + 6] == "but task is already holding lock:"
        assert "  lock(relock_mutex);" in texts and " *** DEADLOCK ***" in texts
        assert "kernel BUG at mutex_lock!" in texts
        assert "relock: never printed" not in texts


def _kloaderd_limited(limit: int, *args: str) -> subprocess.Popen:
    import resource
    from test_server import command
    return subprocess.Popen([command("kloaderd"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))


def test_kloaderd_under_a_small_address_space_limit_refuses_saying_what_it_needs(tmp_path):
    """Issue 13, item 11: under `ulimit -v` Unicorn's 1 GiB translation
    buffer could not be reserved: the daemon died (a segfault, or Unicorn's
    exit).  Too small a limit is now refused with what it takes."""
    proc = _kloaderd_limited(200 << 20, "--socket", str(tmp_path / "k.sock"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert re.fullmatch(r"kloaderd: the address-space limit \(ulimit -v 204800\) is too small: the "
                        r"emulated kernel needs at least \d+ MiB \(.*\): raise it to ulimit -v \d+ "
                        r"or more, or lift it\n", err), err


@pytest.mark.parametrize("gib", [1, 2, 16])
def test_kloaderd_starts_and_serves_under_address_space_limits(tmp_path, gib):
    """Limits from 1 to 16 GiB: a smaller translation cache, and modules load."""
    sock = str(tmp_path / "k.sock")
    proc = _kloaderd_limited(gib << 30, "--socket", sock)
    try:
        assert proc.stdout.readline().strip() == sock        # listening
        with Client(sock) as client:
            client.init_module((Path(__file__).parents[1] / "fixtures" / "hello.ko").read_bytes())
            client.delete_module("hello")
            assert "Hello, world" in _log(client)
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert proc.returncode == 0
