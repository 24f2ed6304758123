"""kmodprobe: kmod's modprobe against kloaderd.

The daemon does modprobe's work (kernel/kmod.py): it reads the module tree
and modprobe.d, resolves the name or alias, and loads the modules from their
files itself, dependencies first — the same code module code reaches through
request_module().  This command only shapes the request and prints what
modprobe prints: `insmod PATH OPTIONS` lines for --show-depends and -v, and
kmod's messages (`FATAL` for what modprobe LOGs, `ERROR` for the insertion
and removal failures), with its exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from kloader_client.commands._common import connect, parser, run


def level(message: str) -> str:
    """kmod prints its insertion/removal failures as ERROR, everything else it refuses as FATAL."""
    return "ERROR" if message.startswith("could not ") else "FATAL"


def options(args: list[str]) -> str:
    """modprobe's options_from_array: PARAM=VALUE words joined, a value with a space quoted."""
    out = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and " " in value and value[:1] not in ("'", '"'):
            arg = f'{key}="{value}"'
        out.append(arg)
    return " ".join(out)


def make_parser() -> argparse.ArgumentParser:
    p = parser("kmodprobe", "Add or remove modules, with their dependencies, from kloaderd's kernel.")
    p.add_argument("-r", "--remove", action="store_true", help="remove the module and its unused dependencies")
    p.add_argument("-w", "--wait", type=int, metavar="MSEC",
                   help="with -r: stop the module and wait up to MSEC for its last reference")
    p.add_argument("-a", "--all", action="store_true", help="every argument is a module (no parameters)")
    p.add_argument("-n", "--dry-run", action="store_true", help="do everything but load or remove")
    p.add_argument("-q", "--quiet", action="store_true", help="print no error messages")
    p.add_argument("-v", "--verbose", action="store_true", help="print what is done")
    p.add_argument("-D", "--show-depends", action="store_true",
                   help="print the modules NAME needs, in load order, and load nothing")
    p.add_argument("--first-time", action="store_true", help="fail if the module is already loaded (or, "
                   "with -r, not loaded)")
    p.add_argument("-i", "--ignore-install", "--ignore-remove", dest="ignore_install", action="store_true",
                   help="ignore install/remove commands of modprobe.d (kloader refuses to run them)")
    p.add_argument("-d", "--dirname", metavar="DIR", help="use DIR/lib/modules/RELEASE as the tree")
    p.add_argument("-S", "--set-version", metavar="RELEASE", help="the tree of RELEASE")
    p.add_argument("-C", "--config", metavar="PATH", help="modprobe.d file or directory instead of the defaults")
    p.add_argument("module", metavar="NAME|ALIAS")
    p.add_argument("args", nargs="*", metavar="PARAM=VALUE")
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)

    def body() -> int:
        with connect("kmodprobe", args.socket) as client:
            dirname = None
            if args.dirname or args.set_version:
                release = args.set_version or client.status()["release"]
                dirname = f"{os.path.abspath(args.dirname or '/')}/lib/modules/{release}".replace("//", "/")
            config = [os.path.abspath(args.config)] if args.config else None
            names = [args.module, *args.args] if args.all or args.remove else [args.module]
            params = "" if args.all or args.remove else options(args.args)
            status = 0
            for name in names:
                try:
                    result = client.modprobe(
                        name, params, remove=args.remove, wait=args.wait is not None,
                        timeout=None if args.wait is None else args.wait / 1000,
                        first_time=args.first_time, dry_run=args.dry_run, show_depends=args.show_depends,
                        ignore_install=args.ignore_install, dirname=dirname, config=config)
                except OSError as exc:
                    if not args.quiet:
                        message = exc.strerror or str(exc)
                        print(f"kmodprobe: {level(message)}: {message}", file=sys.stderr)
                    status = 1
                    continue
                if args.show_depends or args.verbose:
                    for action in result["actions"]:
                        print(action)
            return status

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
