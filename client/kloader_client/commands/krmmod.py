"""krmmod: rmmod for kloaderd, with the FAQ's `--wait`.

kmod checks holders and the count before asking; kloaderd's answer already
says which, so the kernel decides (no race between check and removal) and
the reply becomes kmod's wording.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from kloader_client.client import Client
from kloader_client.commands._common import connect, module_name, parser, run


def seconds(value: float | None) -> str:
    """`1 second`, `0.5 seconds`, `2 seconds`."""
    return f"{value:g} second" + ("" if value == 1 else "s")


def explain(client: Client, name: str, exc: OSError, timeout: float | None) -> str:
    """kmod's rmmod messages for the kernel's errnos."""
    if exc.errno == errno.ENOENT:
        return f"Module {name} is not currently loaded"
    if exc.errno == errno.EWOULDBLOCK:
        try:
            holders = client.module(name)["holders"]
        except OSError:
            holders = []
        return f"Module {name} is in use by: {' '.join(holders)}" if holders else f"Module {name} is in use"
    if exc.errno == errno.ETIMEDOUT:
        return f"Module {name} is in use: still referenced after waiting {seconds(timeout)}"
    return f"could not remove module {name}: {os.strerror(exc.errno or errno.EIO)}"


def make_parser() -> argparse.ArgumentParser:
    """`krmmod`'s options: main() parses with it, tools/command_docs.py documents it."""
    p = parser("krmmod", "Remove modules from kloaderd's kernel.")
    p.add_argument("-w", "--wait", action="store_true",
                   help="stop the module now and wait until its last reference is dropped")
    p.add_argument("-t", "--timeout", type=float, metavar="SECONDS", help="with --wait: give up after this long")
    p.add_argument("-f", "--force", action="store_true",
                   help="remove even while references are held or the module has no exit function "
                        "(taints the kernel: R); it does not override other modules using it, "
                        "nor a module still loading or already going")
    p.add_argument("-v", "--verbose", action="store_true", help="say what is removed")
    p.add_argument("names", nargs="+", metavar="NAME", help="modules to remove, by name or by their .ko file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)

    def body() -> int:
        status = 0
        with connect("krmmod", args.socket) as client:
            for name in map(module_name, args.names):
                if args.verbose:
                    print(f"rmmod {name}")
                try:
                    client.delete_module(name, wait=args.wait, timeout=args.timeout, force=args.force)
                except OSError as exc:
                    print(f"krmmod: ERROR: {explain(client, name, exc, args.timeout)}", file=sys.stderr)
                    status = 1
        return status

    return run(body, "krmmod")
