"""kloader-mount: the kernel's file tree through FUSE, read by ordinary
system calls and by kmod's own lsmod in a private mount namespace.

Skipped, saying why, where pyfuse3 is not installed (`pip install
'kloader[mount]'`), /dev/fuse is missing, or the machine refuses the mount."""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kmod_trees import kmod

if importlib.util.find_spec("pyfuse3") is None:
    pytest.skip("pyfuse3 is not installed (pip install 'kloader[mount]', needs libfuse3-dev)",
                allow_module_level=True)
if not os.path.exists("/dev/fuse"):
    pytest.skip("/dev/fuse is missing: no FUSE on this machine", allow_module_level=True)


@pytest.fixture
def mounted(kloaderd, tmp_path):
    """The test daemon's tree mounted at tmp_path/k by a kloader-mount process."""
    mnt = tmp_path / "k"
    mnt.mkdir()
    command = [sys.executable, "-m", "kloader_client.commands.kloader_mount", "--socket",
               kloaderd.socket_path, str(mnt)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()               # printed once the mount is made
    if "mounted" not in line:
        proc.wait(timeout=60)
        pytest.skip(f"kloader-mount could not mount here: {line}{proc.stderr.read()}".strip())
    try:
        yield mnt
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    assert not os.path.ismount(mnt)


def test_the_tree_reads_through_ordinary_system_calls(kloader, mounted, fixture_ko):
    kloader.finit_module(fixture_ko("exporter"))
    kloader.finit_module(fixture_ko("user"))
    kloader.finit_module(fixture_ko("params"))
    assert {"proc", "sys", "dev"} <= set(os.listdir(mounted))
    assert (mounted / "proc/modules").read_bytes() == kloader.read_file("/proc/modules")
    assert sorted(os.listdir(mounted / "sys/module")) == ["exporter", "params", "user"]
    assert (mounted / "sys/module/exporter/refcnt").read_text() == "1\n"
    assert os.readlink(mounted / "sys/module/exporter/holders/user") == "../../user"
    assert (mounted / "sys/module/exporter/holders/user/initstate").read_text() == "live\n"
    assert stat.S_IMODE(os.stat(mounted / "sys/module/params/parameters/pint").st_mode) == 0o644
    (mounted / "sys/module/params/parameters/pint").write_text("99\n")     # open O_TRUNC, write
    assert kloader.param_get("params", "pint") == "99"
    with pytest.raises(OSError) as bad:
        (mounted / "sys/module/params/parameters/pint").write_text("many\n")
    assert bad.value.errno == errno.EINVAL
    with pytest.raises(PermissionError):
        (mounted / "proc/modules").write_text("x")
    with pytest.raises(FileNotFoundError):
        (mounted / "sys/module/nosuch").stat()
    kloader.delete_module("user")
    assert "user" not in os.listdir(mounted / "sys/module")        # nothing cached


def test_kmods_lsmod_reads_kloaders_proc_modules(kloader, mounted, fixture_ko):
    """kmod's lsmod in a private mount namespace whose /proc/modules and
    /sys/module are kloader's: it prints what klsmod prints."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed")
    lsmod = kmod("lsmod")
    kloader.finit_module(fixture_ko("exporter"))
    kloader.finit_module(fixture_ko("user"))
    kloader.try_module_get("user")
    # The whole of /proc and /sys: a kernel built without modules has no
    # /proc/modules to bind a file over.
    script = f'mount --bind "{mounted}/proc" /proc && mount --bind "{mounted}/sys" /sys && exec "$@"'
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *lsmod],
                          capture_output=True, text=True, timeout=120)
    if done.returncode and ("Operation not permitted" in done.stderr or "permission denied" in done.stderr):
        pytest.skip(f"no private mount namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    ours = subprocess.run(["klsmod", "--socket", kloader.path], capture_output=True, text=True, check=True)
    assert done.stdout == ours.stdout
    assert done.stdout.splitlines() == ["Module                  Size  Used by",
                                        f"user                   {kloader.module('user')['size']:>5}  1",
                                        f"exporter               {kloader.module('exporter')['size']:>5}  1 user"]
