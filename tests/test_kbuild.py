"""kmodbuild --kernel: a module built with a real kernel's own kbuild loads
unforced under that kernel's profile (issue 10's done-when), through the
command, the daemon, kmodinfo and the plugin's kloader_build."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kloader_client import Client
from kloaderd import embed
from kloaderd.kbuild import KbuildError, kbuild_command
from kloaderd.kernel.profile import KernelProfile
from test_profile import corpus, write_tree
from test_server import command

HELLO = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/moduleparam.h>
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kbuild-built hello for kloader");
static int count = 1;
module_param(count, int, 0644);
MODULE_PARM_DESC(count, "how many greetings");
static int __init hello_init(void)
{
	pr_info("hello: count=%d\n", count);
	return 0;
}
static void __exit hello_exit(void)
{
	pr_info("hello: goodbye\n");
}
module_init(hello_init);
module_exit(hello_exit);
"""


@pytest.fixture(params=["6.1", "6.12"])
def build_tree(request) -> Path:
    return corpus(request.param)[1]


@pytest.fixture
def hello_c(tmp_path: Path) -> Path:
    path = tmp_path / "hello.c"
    path.write_text(HELLO)
    return path


def kmodbuild(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([command("kmodbuild"), *args], capture_output=True, text=True, timeout=600)
    if done.returncode and "not on PATH" in done.stderr:
        pytest.skip(done.stderr.strip())
    return done


@pytest.mark.slow          # builds with the real kernel's kbuild
def test_a_kbuild_hello_loads_unforced_takes_a_parameter_and_unloads(tmp_path, build_tree, hello_c):
    ko = tmp_path / "hello.ko"
    done = kmodbuild("--kernel", str(build_tree), str(hello_c), "-o", str(ko))
    assert done.returncode == 0, done.stderr
    magic = KernelProfile(build_tree).vermagic
    with embed.run_in_thread(kernel=str(build_tree)) as daemon, Client(daemon.socket_path) as client:
        assert client.finit_module(ko, "count=7") == "hello"
        assert client.param_get("hello", "count") == "7"
        assert client.module("hello")["taints"] == "O"          # out of tree; not forced (F)
        client.delete_module("hello")
        log = [r["text"] for r in client.dmesg()]
    assert "hello: count=7" in log and "hello: goodbye" in log
    assert not any("disagrees about version" in line or "version magic" in line for line in log)
    info = subprocess.run([command("kmodinfo"), str(ko)], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0
    assert f"vermagic:       {magic}" in info.stdout.splitlines()
    assert "parm:           count:how many greetings (int)" in info.stdout.splitlines()


@pytest.fixture
def under_profile(request, build_tree) -> Path:
    """@pytest.mark.kloader(kernel=...) for this test, before its fixtures are made."""
    request.node.add_marker(pytest.mark.kloader(kernel=str(build_tree)))
    return build_tree


@pytest.mark.slow          # builds with the real kernel's kbuild
def test_kloader_build_uses_kbuild_under_a_profile(under_profile, kloader_build, kloader, hello_c):
    try:
        ko = kloader_build(hello_c)
    except Exception as exc:              # BuildError: say what is missing, as kmodbuild does
        if "not on PATH" in str(exc):
            pytest.skip(str(exc))
        raise
    assert kloader.status()["kernel"] == str(under_profile.resolve())
    assert kloader.finit_module(ko, "count=3") == "hello"
    assert "hello: count=3" in [r["text"] for r in kloader.dmesg()]


def test_what_is_missing_is_said(tmp_path):
    tree = write_tree(tmp_path / "build", config='CONFIG_CC_VERSION_TEXT="gcc-99 (Nowhere) 99.0"\n')
    (tmp_path / "build/Makefile").write_text("include /nonexistent/linux-headers-9-common/Makefile\n")
    with pytest.raises(KbuildError, match=r"linux-headers-9-common \(Debian's linux-headers-…-common\)"):
        kbuild_command(KernelProfile(tree), tmp_path)
    (tmp_path / "linux-headers-9-common").mkdir()
    (tmp_path / "linux-headers-9-common/Makefile").write_text("")
    with pytest.raises(KbuildError, match=r"built with gcc-99 .*not on PATH: install it"):
        kbuild_command(KernelProfile(tree), tmp_path)
