"""kdmesg: the emulated kernel's log, as dmesg prints it; `-w` follows it.

`-T`, `-x` and `--json` are util-linux dmesg's: human time, the decoded
facility and level, and `{"dmesg": [{"pri", "time", "msg"}]}`.  Every record
is a kernel message, so its facility is always `kern` (0).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Iterable

from kloaderd import uapi

from kloader_client.client import Client
from kloader_client.commands._common import connect, parser, printable, run

LEVELS = uapi.LOG_LEVEL_NAMES
FACILITY = "kern"


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


def ctime(seconds: float) -> str:
    """dmesg -T's stamp: `Wed Dec  2 07:00:00 2026`, local time."""
    return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(seconds))


class Printer:
    """One record at a time, in the form the options ask for."""

    def __init__(self, args: argparse.Namespace, client: Client) -> None:
        self.args = args
        # As dmesg -T: the wall clock at boot is now less the kernel's uptime;
        # a record's time is that plus its timestamp (so as inexact as dmesg's).
        self.boot = time.time() - client.status()["uptime"] if args.ctime else 0.0
        self.records: list[dict[str, Any]] = []

    def record(self, record: dict[str, Any]) -> None:
        if record["level"] not in self.args.level:
            return
        if self.args.json:
            entry = {"pri": record["level"], "time": round(record["timestamp"], 6), "msg": record["text"]}
            if self.args.decode:
                entry = {"fac": FACILITY, "pri": LEVELS[record["level"]], **{k: entry[k] for k in ("time", "msg")}}
            if self.args.follow:                 # a stream: one object per line
                print(json.dumps(entry), flush=True)
            else:
                self.records.append(entry)
            return
        # A record may span lines; within each, control characters are escaped
        # so no module name or message moves the cursor or rewrites the terminal.
        lines = [printable(line) for line in record["line"].split("\n")]
        stamp_end = lines[0].index("] ") + 2     # each line starts "[    1.234567] "
        if self.args.ctime:
            stamp = f"[{ctime(self.boot + record['timestamp'])}] "
            lines = [stamp + line[stamp_end:] for line in lines]
        if self.args.decode:
            decoded = f"{FACILITY:<6}:{LEVELS[record['level']]:<6}: "
            lines = [decoded + line for line in lines]
        print("\n".join(lines), flush=self.args.follow)

    def close(self) -> None:
        if self.args.json and not self.args.follow:
            print(json.dumps({"dmesg": self.records}, indent=3))


def make_parser() -> argparse.ArgumentParser:
    """`kdmesg`'s options: main() parses with it, tools/command_docs.py documents it."""
    p = parser("kdmesg", "Print kloaderd's kernel log.")
    p.add_argument("-w", "--follow", action="store_true",
                   help="wait for new messages; ends when kloaderd stops")
    p.add_argument("-l", "--level", type=levels, default=set(range(len(LEVELS))), metavar="LIST",
                   help="only these levels (comma-separated: err,warn,info,...)")
    p.add_argument("-T", "--ctime", action="store_true",
                   help="human-readable timestamps (computed from the kernel's uptime, as dmesg does)")
    p.add_argument("-x", "--decode", action="store_true", help="show the facility and level of each message")
    p.add_argument("-J", "--json", action="store_true",
                   help='as JSON: {"dmesg": [{"pri", "time", "msg"}]} (with -w, one object per line)')
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)

    def body() -> None:
        with connect("kdmesg", args.socket) as client:
            printer = Printer(args, client)
            records: Iterable[dict[str, Any]] = client.follow_dmesg() if args.follow else client.dmesg()
            try:
                for record in records:
                    printer.record(record)
            except ConnectionError:
                if not args.follow:
                    raise
                # The daemon stopped: the log is over, and so is following it.
                print("kdmesg: kloaderd closed the connection (it has stopped)", file=sys.stderr)
            printer.close()

    return run(body, "kdmesg")
