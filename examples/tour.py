"""The main job, end to end: a daemon, fixture modules loaded, used and removed.

Run from anywhere: `python examples/tour.py`.  It starts `kloaderd` on a
private socket, loads `exporter` and `user` (which links against exporter's
symbols) with `kinsmod`, shows `klsmod` and `kdmesg`, takes a reference on
exporter from a Python client, removes exporter with `krmmod --wait` while
that reference is dropped, and stops the daemon with SIGTERM — printing each
command and its real output.  The README's tour is this script's output, and
tests/test_tutorial.py checks that they still agree.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kloader_client import Client

REPO = Path(__file__).resolve().parents[1]


def command(name: str) -> str:
    """The k-command installed beside this interpreter (a venv that is not
    activated still works), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def say(text: str) -> None:
    print(text, flush=True)


def run(*argv: str, env: dict[str, str], fails: bool = False) -> None:
    """Run a command and show it; one that does not do what the tour says
    it does stops the tour."""
    say("$ " + shlex.join(argv))
    done = subprocess.run([command(argv[0]), *argv[1:]], env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if done.stdout:
        say(done.stdout.rstrip("\n"))
    if bool(done.returncode) != fails:
        raise SystemExit(f"tour: `{shlex.join(argv)}` exited with status {done.returncode}")


def python(code: str, result: object = None) -> None:
    say(f">>> {code}")
    if result is not None:
        say(repr(result))


def wait_for_state(client: Client, name: str, state: str) -> None:
    """Until `krmmod --wait` has stopped the module (no timing is assumed)."""
    while client.module(name)["state"] != state:
        time.sleep(0.02)


def tour(env: dict[str, str]) -> None:
    say("$ kloaderd &")
    # --log-level 0: the kernel's console stays quiet; kdmesg shows the log.
    daemon = subprocess.Popen([command("kloaderd"), "--log-level", "0"], env=env, text=True,
                              stdout=subprocess.PIPE)
    try:
        if not daemon.stdout.readline():  # the socket path, printed once it listens
            raise SystemExit("tour: kloaderd did not start")
        say("# listening on $KLOADERD_SOCKET")
        run("kinsmod", "fixtures/exporter.ko", env=env)
        run("kinsmod", "fixtures/user.ko", env=env)
        run("klsmod", env=env)
        run("kdmesg", env=env)
        run("krmmod", "exporter", env=env, fails=True)
        run("krmmod", "user", env=env)

        say("# A client's reference: exporter cannot go while it is held.")
        with Client(env["KLOADERD_SOCKET"], client_name="tour") as client:
            python('client = kloader_client.Client()')
            client.try_module_get("exporter")
            python('client.try_module_get("exporter")')
            run("klsmod", env=env)
            say("$ krmmod --wait --verbose exporter &")
            remover = subprocess.Popen([command("krmmod"), "--wait", "--verbose", "exporter"],
                                       env=env, text=True, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT)
            wait_for_state(client, "exporter", "going")
            python('client.module("exporter")["state"]', "going")
            client.module_put("exporter")
            python('client.module_put("exporter")')
            output, _ = remover.communicate()
            say(output.rstrip("\n"))
            if remover.returncode:
                raise SystemExit(f"tour: krmmod --wait exited with status {remover.returncode}")
            say("# krmmod --wait returned once the reference was dropped")
        run("klsmod", env=env)
        run("kdmesg", env=env)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait()
    say("$ kill -TERM %kloaderd")
    say(f"# kloaderd exited with status {code}")
    if code:
        raise SystemExit(code)


def main() -> int:
    os.chdir(REPO)
    with tempfile.TemporaryDirectory(prefix="kl-", dir="/tmp") as private:
        env = dict(os.environ, KLOADERD_SOCKET=os.path.join(private, "kloaderd.sock"))
        tour(env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
