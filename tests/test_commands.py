"""The k-commands as a person runs them: real processes, kmod's formats and wording."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import subprocess
import time

import pytest

from kloader_client import Client
from test_server import FIXTURES, command, daemon, daemon_socket, shared_daemon  # noqa: F401 (fixtures)


@pytest.fixture
def daemon_path(daemon_socket):
    return daemon_socket


@pytest.fixture
def run(daemon_path):
    """Run a k-command against the daemon."""

    def run(name: str, *args: str, socket: str | None = daemon_path) -> subprocess.CompletedProcess:
        argv = [command(name), *(["--socket", socket] if socket else []), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)

    return run


def ko(name: str) -> str:
    return str(FIXTURES / f"{name}.ko")


def test_kinsmod_then_klsmod_in_lsmods_format(run):
    done = run("kinsmod", ko("exporter"))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert run("kinsmod", ko("user")).returncode == 0
    lines = run("klsmod").stdout.splitlines()
    assert lines[0] == "Module                  Size  Used by"
    assert re.fullmatch(r"user {15} +\d+  0", lines[1])
    assert re.fullmatch(r"exporter {11} +\d+  1 user", lines[2])
    assert len(lines) == 3


def test_klsmod_json_and_long(run, daemon_path):
    run("kinsmod", ko("hello"))
    modules = json.loads(run("klsmod", "--json").stdout)
    assert [(m["name"], m["state"], m["refcnt"]) for m in modules] == [("hello", "live", 0)]
    assert re.fullmatch(r"0xffffffffa[0-9a-f]{7}", modules[0]["address"])
    with Client(daemon_path, client_name="holder") as holder:
        holder.try_module_get("hello")
        long = run("klsmod", "--long").stdout.splitlines()
        assert long[0].split() == ["Module", "Size", "Used", "State", "Taints", "Address", "References"]
        assert re.match(rf"hello +\d+ +1  live +\S+ +0xffffffffa\w+  session holder\[{os.getpid()}\]$", long[1])
        assert long[-1] == "Kernel: 6.6.0-kloader (kloader's own kernel)"


def test_kinsmod_failures_in_kmods_words(run):
    run("kinsmod", ko("hello"))
    again = run("kinsmod", ko("hello"))
    assert again.returncode == 1
    assert again.stderr == f"kinsmod: ERROR: could not insert module {ko('hello')}: File exists\n"
    bad = run("kinsmod", ko("badmagic"))
    assert bad.stderr == f"kinsmod: ERROR: could not insert module {ko('badmagic')}: Invalid module format\n"
    unknown = run("kinsmod", ko("unknownsym"))
    assert unknown.stderr == f"kinsmod: ERROR: could not insert module {ko('unknownsym')}: Unknown symbol in module\n"
    missing = run("kinsmod", "/nonexistent/x.ko")
    assert missing.returncode == 1
    assert missing.stderr == "kinsmod: ERROR: could not load module /nonexistent/x.ko: No such file or directory\n"


def test_kinsmod_force_and_parameters(run, daemon_path):
    assert run("kinsmod", "-f", ko("badmagic")).returncode == 0
    assert run("kinsmod", ko("params"), "pint=5", "pstring=two words").returncode == 0
    with Client(daemon_path) as client:
        params = client.module("params")["params"]
    assert params["pint"] == "5" and params["pstring"] == "two words"


def test_krmmod_removes_and_explains_in_kmods_words(run, daemon_path):
    run("kinsmod", ko("exporter"))
    run("kinsmod", ko("user"))
    held = run("krmmod", "exporter")
    assert (held.returncode, held.stderr) == (1, "krmmod: ERROR: Module exporter is in use by: user\n")
    gone = run("krmmod", "nosuch")
    assert gone.stderr == "krmmod: ERROR: Module nosuch is not currently loaded\n"
    with Client(daemon_path) as holder:
        holder.try_module_get("user")
        busy = run("krmmod", "user")
        assert busy.stderr == "krmmod: ERROR: Module user is in use\n"
        late = run("krmmod", "-w", "-t", "0.05", "user")
        assert (late.returncode, late.stderr) == (
            1, "krmmod: ERROR: Module user is in use: still referenced after waiting 0.05 seconds\n")
        assert holder.module("user")["state"] == "live"
    done = run("krmmod", "-v", ko("user"), "exporter")  # a path names its module too
    assert (done.returncode, done.stdout) == (0, "rmmod user\nrmmod exporter\n")
    assert run("klsmod").stdout.splitlines()[1:] == []


def test_krmmod_of_a_module_without_exit_needs_force(run):
    run("kinsmod", ko("noexit"))
    refused = run("krmmod", "noexit")
    assert (refused.returncode, refused.stderr) == (
        1, "krmmod: ERROR: could not remove module noexit: Device or resource busy\n")
    assert run("krmmod", "-f", "noexit").returncode == 0
    assert "does not override other modules using it" in " ".join(run("krmmod", "--help").stdout.split())
    assert "noexit" not in run("klsmod").stdout


def test_seconds_are_counted_in_english():
    from kloader_client.commands.krmmod import seconds

    assert [seconds(t) for t in (1, 1.0, 0.5, 2)] == ["1 second", "1 second", "0.5 seconds", "2 seconds"]


def test_kinsmod_usage_shows_parameters_as_optional(run):
    assert "FILENAME [PARAM=VALUE ...]" in run("kinsmod", "--help", socket=None).stdout


def test_krmmod_wait_returns_when_the_last_reference_goes(run, daemon_path):
    run("kinsmod", ko("hello"))
    holder = Client(daemon_path)
    holder.try_module_get("hello")
    waiting = subprocess.Popen([command("krmmod"), "--socket", daemon_path, "--wait", "hello"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with Client(daemon_path) as watcher:
        deadline = time.monotonic() + 30  # a hang guard, not a timing assertion
        while watcher.module("hello")["state"] != "going":
            assert waiting.poll() is None and time.monotonic() < deadline
    holder.close()  # the reference goes with the connection
    assert waiting.wait(timeout=30) == 0, waiting.stderr.read()


def test_kmodinfo_of_a_file_needs_no_daemon(run):
    done = run("kmodinfo", ko("hello"), socket=None)
    lines = done.stdout.splitlines()
    assert lines[0] == f"filename:       {ko('hello')}"
    assert "license:        GPL" in lines
    assert "description:    Says hello on load and goodbye on unload" in lines
    assert "vermagic:       6.6.0-kloader SMP preempt mod_unload modversions " in lines
    assert run("kmodinfo", "-F", "license", ko("hello"), socket=None).stdout == "GPL\n"
    params = run("kmodinfo", ko("params"), socket=None).stdout.splitlines()
    assert any(re.fullmatch(r"parm: {11}pint:An int \(int\)", line) for line in params)
    assert params[-1].startswith("parm:")


def test_kmodinfo_of_a_loaded_module_asks_the_daemon(run):
    run("kinsmod", ko("hello"))
    lines = run("kmodinfo", "hello").stdout.splitlines()
    assert "name:           hello" in lines and "license:        GPL" in lines
    missing = run("kmodinfo", "nosuch")
    assert (missing.returncode, missing.stderr) == (1, "kmodinfo: ERROR: Module nosuch not found.\n")


def test_kdmesg_prints_and_follows(run, daemon_path):
    run("kinsmod", ko("hello"))
    lines = run("kdmesg").stdout.splitlines()
    assert any(re.fullmatch(r"\[ *\d+\.\d{6}\] Hello, world", line) for line in lines)
    follower = subprocess.Popen([command("kdmesg"), "--socket", daemon_path, "-w"],
                                stdout=subprocess.PIPE, text=True)
    try:
        run("krmmod", "hello")
        for line in follower.stdout:
            if line.rstrip().endswith("Goodbye, world"):
                break
    finally:
        follower.terminate()
        follower.wait(timeout=10)


def test_kdmesg_human_time_decoded_levels_and_json(run):
    before = int(time.time())
    run("kinsmod", ko("hello"))
    after = int(time.time()) + 1
    human = run("kdmesg", "-T").stdout.splitlines()
    stamp, _, text = human[-1][1:].partition("] ")
    assert text == "Hello, world"
    assert before <= time.mktime(time.strptime(stamp, "%a %b %d %H:%M:%S %Y")) <= after
    decoded = run("kdmesg", "-x").stdout.splitlines()
    # The first load into the shared kernel taints it, whichever module that was.
    assert any(re.fullmatch(r"kern  :warn  : \[ *\d+\.\d{6}\] \w+: loading out-of-tree module taints kernel\.",
                            line) for line in decoded)
    assert re.fullmatch(r"kern  :info  : \[ *\d+\.\d{6}\] Hello, world", decoded[-1])
    records = json.loads(run("kdmesg", "--json").stdout)["dmesg"]
    assert {k: records[-1][k] for k in ("pri", "msg")} == {"pri": 6, "msg": "Hello, world"}
    assert json.loads(run("kdmesg", "-J", "-x", "-l", "info").stdout)["dmesg"][-1]["pri"] == "info"


def test_kdmesg_follow_ends_cleanly_when_the_daemon_stops(daemon, tmp_path):
    d = daemon()
    with Client(d.path) as client:
        client.finit_module(ko("hello"))
    follower = subprocess.Popen([command("kdmesg"), "--socket", d.path, "-w"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in follower.stdout:             # following: it has read the log so far
            if line.rstrip().endswith("Hello, world"):
                break
        assert d.stop()[0] == 0
        assert follower.wait(timeout=30) == 0
        assert follower.stderr.read() == "kdmesg: kloaderd closed the connection (it has stopped)\n"
    finally:
        follower.kill()
        follower.wait()
        follower.stdout.close()
        follower.stderr.close()


def test_kloaderd_help_explains_every_option_and_refuses_nonsense(tmp_path):
    from kloaderd.kernel.kernel import KernelOptions

    def kloaderd(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([command("kloaderd"), *args], capture_output=True, text=True, timeout=60)

    text = " ".join(kloaderd("--help").stdout.split())
    for field in dataclasses.fields(KernelOptions):
        assert field.metadata.get("help"), f"KernelOptions.{field.name} has no help"
        assert f"{field.metadata['help']} (default: " in text
    assert "--watchdog SECONDS" in text and "--max-image-size BYTES" in text
    for args, complaint in [(["--watchdog", "-1"], "argument --watchdog: must be more than 0, not -1.0"),
                            (["--max-modules", "many"], "argument --max-modules: not an int: 'many'"),
                            (["--exporter-wait", "-0.5"], "argument --exporter-wait: must be at least 0, not -0.5")]:
        refused = kloaderd(*args, "--socket", str(tmp_path / "k.sock"))
        assert refused.returncode == 2 and refused.stderr.endswith(f"kloaderd: error: {complaint}\n")
    with pytest.raises(ValueError, match="KernelOptions.watchdog: must be more than 0, not -1"):
        KernelOptions(watchdog=-1)
    nowhere = str(tmp_path / "no" / "dir" / "k.sock")
    missing = kloaderd("--socket", nowhere)
    assert (missing.returncode, missing.stderr) == (1, f"kloaderd: cannot listen on {nowhere}: No such file or directory\n")


def test_a_socket_path_longer_than_sun_path_is_enametoolong_in_daemon_and_commands(run, tmp_path):
    """Python refuses such a path with "AF_UNIX path too long" and no errno:
    kloaderd printed "cannot listen on PATH: None"."""
    long = "/tmp/" + "k" * 100 + ".sock"               # 110 bytes; sun_path holds 107
    why = "File name too long: a Unix socket's path holds at most 107 bytes (sun_path), this one has 110: choose a shorter one"
    refused = subprocess.run([command("kloaderd"), "--socket", long], capture_output=True, text=True, timeout=60)
    assert (refused.returncode, refused.stderr) == (1, f"kloaderd: cannot listen on {long}: {why}\n")
    done = run("klsmod", socket=long)
    assert (done.returncode, done.stderr) == (1, f"klsmod: ERROR: cannot connect to kloaderd at {long}: {why}\n")
    with pytest.raises(OSError) as info:
        Client(long)
    assert info.value.errno == errno.ENAMETOOLONG


@pytest.mark.parametrize("name", ["kinsmod", "krmmod", "klsmod", "kmodinfo", "kdmesg"])
def test_no_daemon_is_one_actionable_line(run, tmp_path, name):
    socket = str(tmp_path / "none.sock")
    args = {"kinsmod": [ko("hello")], "krmmod": ["hello"], "kmodinfo": ["hello"]}.get(name, [])
    done = run(name, *args, socket=socket)
    assert done.returncode == 1
    assert done.stderr == (f"{name}: ERROR: could not connect to kloaderd at {socket}: is the daemon running? "
                           f"Start it with: kloaderd --socket {socket} &\n")
