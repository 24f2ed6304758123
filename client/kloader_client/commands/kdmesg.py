"""kdmesg: the emulated kernel's log, as dmesg prints it; `-w` follows it."""

from __future__ import annotations

import argparse

from kloader_client.commands._common import connect, parser, run

LEVELS = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"]


def levels(text: str) -> set[int]:
    """dmesg --level: names or numbers, comma-separated."""
    wanted = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item in LEVELS:
            wanted.add(LEVELS.index(item))
        elif item.isdigit() and int(item) < len(LEVELS):
            wanted.add(int(item))
        else:
            raise argparse.ArgumentTypeError(f"unknown level {item!r}: use {', '.join(LEVELS)} or 0-7")
    return wanted


def main(argv: list[str] | None = None) -> int:
    p = parser("kdmesg", "Print kloaderd's kernel log.")
    p.add_argument("-w", "--follow", action="store_true", help="wait for new messages")
    p.add_argument("-l", "--level", type=levels, default=set(range(len(LEVELS))), metavar="LIST",
                   help="only these levels (comma-separated: err,warn,info,...)")
    args = p.parse_args(argv)

    def body() -> None:
        with connect("kdmesg", args.socket) as client:
            records = client.follow_dmesg() if args.follow else client.dmesg()
            for record in records:
                if record["level"] in args.level:
                    print(record["line"], flush=args.follow)

    return run(body)
