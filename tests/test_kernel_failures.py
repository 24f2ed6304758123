"""Issue 13: failures inside kernel functions and in module exits, met the
way a user meets them: a module built with kmodbuild, loaded and removed
through the socket with the client, its kernel log read with dmesg.

Each test failed before its fix.  Test-only kernel functions are registered
before the daemon's kernel is made (the registry is process-wide), so the
modules link against them like any export.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

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
