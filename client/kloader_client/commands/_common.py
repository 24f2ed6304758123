"""What every k-command shares: `--socket`, kmod's error lines, the daemon-not-running line."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Callable, NoReturn

from kloader_client import __version__
from kloader_client.client import Client
from kloader_client.errors import DaemonNotRunning


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--version", action="version", version=f"%(prog)s (kloader) {__version__}")
    p.add_argument("--socket", metavar="PATH", help="kloaderd's socket (default: $KLOADERD_SOCKET, "
                   "else $XDG_RUNTIME_DIR/kloaderd.sock, else /tmp/kloaderd-$UID/kloaderd.sock)")
    return p


def module_name(arg: str) -> str:
    """A module's name from its file, as kmod derives it: `drivers/foo-bar.ko.xz` is `foo_bar`."""
    base = os.path.basename(arg)
    for ext in (".gz", ".xz", ".zst"):
        base = base.removesuffix(ext)
    return base.removesuffix(".ko").replace("-", "_")


def die(prog: str, message: str) -> NoReturn:
    """kmod's shape: `insmod: ERROR: ...` on stderr, exit 1."""
    print(f"{prog}: ERROR: {message}", file=sys.stderr)
    sys.exit(1)


def connect(prog: str, socket_path: str | None) -> Client:
    try:
        return Client(socket_path, client_name=prog)
    except DaemonNotRunning as exc:
        die(prog, exc.strerror or str(exc))


def run(body: Callable[[], int | None], prog: str | None = None) -> int:
    """Run a command's body; a closed pipe (`| head`) is not an error, and
    any failure the body leaves uncaught (the daemon refusing the connection
    with EMFILE, hanging up mid-stream) is one line and exit 1, never a
    traceback."""
    try:
        return body() or 0
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        die(prog or os.path.basename(sys.argv[0]), exc.strerror or str(exc))


_UNPRINTABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def printable(text: str) -> str:
    """Control characters as `\\xNN`, as dmesg escapes them: a module name or
    message can never forge a line (or move the cursor) on the terminal."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
