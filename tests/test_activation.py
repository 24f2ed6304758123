"""kloaderd under socket activation: a listening socket at fd 3 with LISTEN_FDS/LISTEN_PID.

Passed by hand (a wrapper that does what a service manager does, then execs
kloaderd), by systemd's own `systemd-socket-activate` where it is installed,
and the units in contrib/systemd/ checked by `systemd-analyze verify`.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kloader_client import Client
from test_server import FIXTURES, command

UNITS = Path(__file__).resolve().parent.parent / "contrib" / "systemd"

# What a service manager does between fork and exec: the socket to fd 3, and
# LISTEN_PID naming the process that will run kloaderd (this one, after exec).
ACTIVATE = """
import os, sys
fd, pid = int(sys.argv[1]), sys.argv[2]
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()) if pid == "self" else pid)
os.execv(sys.argv[3], sys.argv[3:])
"""


def listening(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(16)
    return sock


def activated(sock: socket.socket, *args: str, pid: str = "self") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", ACTIVATE, str(sock.fileno()), pid, command("kloaderd"), *args],
                            pass_fds=(sock.fileno(),), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30), proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_a_passed_socket_is_served_and_left_to_its_owner(tmp_path):
    path = tmp_path / "activated.sock"
    elsewhere = tmp_path / "option.sock"
    with listening(path) as sock:
        early = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        early.connect(str(path))                 # waits in the backlog until kloaderd accepts
        daemon = activated(sock, "--socket", str(elsewhere))
    try:
        assert daemon.stdout.readline() == f"{path}\n"
        with Client(str(path)) as client:
            assert client.status()["server"]["socket"] == str(path)
            assert client.finit_module(FIXTURES / "hello.ko") == "hello"
        early.close()
    finally:
        status, console = stop(daemon)
    assert status == 0, console
    assert "Goodbye, world" in console          # shut down as usual: exits ran
    assert path.exists() and not elsewhere.exists()   # the manager's socket file stays


def test_fds_for_another_process_are_not_taken(tmp_path):
    """LISTEN_PID names someone else (a parent's leftover environment): listen on --socket."""
    own = tmp_path / "own.sock"
    with listening(tmp_path / "theirs.sock") as sock:
        daemon = activated(sock, "--socket", str(own), pid="1")
    try:
        assert daemon.stdout.readline() == f"{own}\n"
        with Client(str(own)) as client:
            assert client.status()["server"]["socket"] == str(own)
    finally:
        assert stop(daemon)[0] == 0


def test_a_socket_that_is_not_listening_is_refused(tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        daemon = activated(sock, "--socket", str(tmp_path / "k.sock"))
    assert daemon.wait(timeout=60) == 1
    assert daemon.stderr.read() == ("kloaderd: socket activation: fd 3 is not a listening Unix stream socket "
                                    "(the .socket unit needs ListenStream=/path and Accept=no)\n")
    daemon.stdout.close()
    daemon.stderr.close()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed (apt-get install systemd)")
def test_systemd_socket_activate_starts_kloaderd_on_the_first_connection(tmp_path):
    path = tmp_path / "k.sock"
    proc = subprocess.Popen(["systemd-socket-activate", "-l", str(path), command("kloaderd")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:                 # it says when it listens, before any connection
            if "Listening on" in line:
                break
        with Client(str(path)) as client:
            assert client.finit_module(FIXTURES / "hello.ko") == "hello"
            assert client.status()["server"]["socket"] == str(path)
        assert proc.stdout.readline() == f"{path}\n"
    finally:
        status, console = stop(proc)
    assert status == 0, console


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (apt-get install systemd)")
def test_the_units_verify(tmp_path):
    """As a user installs them: ExecStart pointed at this kloaderd."""
    kloaderd = shutil.which(command("kloaderd"))
    assert kloaderd is not None
    service = (UNITS / "kloaderd.service").read_text()
    assert "ExecStart=%h/.local/bin/kloaderd " in service
    (tmp_path / "kloaderd.service").write_text(service.replace("%h/.local/bin/kloaderd", kloaderd))
    shutil.copy(UNITS / "kloaderd.socket", tmp_path)
    done = subprocess.run(["systemd-analyze", "verify", "--user", str(tmp_path / "kloaderd.socket"),
                           str(tmp_path / "kloaderd.service")],
                          env={"XDG_RUNTIME_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "ListenStream=%t/kloaderd.sock" in (UNITS / "kloaderd.socket").read_text()
