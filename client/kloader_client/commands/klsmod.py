"""klsmod: lsmod for kloaderd, plus `--json` and a long form for debugging references."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kloader_client.commands._common import connect, parser, printable, run


def lsmod_lines(modules: list[dict[str, Any]]) -> list[str]:
    """lsmod's exact layout: `%-19s %8lu  %d` and the holders comma-separated."""
    lines = ["Module                  Size  Used by"]
    for m in modules:
        line = f"{printable(m['name']):<19} {m['size']:>8}  {m['refcnt']}"
        if m["holders"]:
            line += " " + ",".join(map(printable, m["holders"]))
        lines.append(line)
    return lines


def owners(info: dict[str, Any]) -> str:
    return ", ".join(printable(r["owner"]) + (f" x{r['count']}" if r.get("count", 1) != 1 else "")
                     for r in info.get("references", [])) or "-"


def long_lines(infos: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'Module':<19} {'Size':>8}  {'Used':>4}  {'State':<7} {'Taints':<6} {'Address':<18}  References"]
    for m in infos:
        lines.append(f"{printable(m['name']):<19} {m['size']:>8}  {m['refcnt']:>4}  {m['state']:<7} {m['taints'] or '-':<6} "
                     f"{m.get('address', 0):#018x}  {owners(m)}")
    return lines


def kernel_line(status: dict[str, Any]) -> str:
    """Which kernel the daemon emulates: kloader's own, or a real one's build tree."""
    tree = status.get("kernel", "kloader")
    where = "kloader's own kernel" if tree == "kloader" else f"profile {tree}"
    return f"Kernel: {status['release']} ({where})"


def hex_addresses(module: dict[str, Any]) -> dict[str, Any]:
    """Addresses as `0xffffffffa0000000` strings: readable, and exact in any JSON reader
    (a 64-bit kernel address is beyond the integers a double holds)."""
    return {key: f"{value:#018x}" if (key == "address" or key.endswith("_address")) and isinstance(value, int)
            else value for key, value in module.items()}


def make_parser() -> argparse.ArgumentParser:
    """`klsmod`'s options: main() parses with it, tools/command_docs.py documents it."""
    p = parser("klsmod", "Show the modules loaded in kloaderd's kernel.")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="the module list as JSON (with --long: full details)")
    p.add_argument("-l", "--long", action="store_true",
                   help="state, taints, address and who holds each reference")
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)

    def body() -> None:
        with connect("klsmod", args.socket) as client:
            modules = client.modules()
            if args.long:
                modules = [client.module(m["name"]) for m in modules]
                status = client.status()
        if args.json:
            print(json.dumps([hex_addresses(m) for m in modules], indent=2))
        elif args.long:
            print("\n".join(long_lines(modules) + [kernel_line(status)]))
        else:
            print("\n".join(lsmod_lines(modules)))

    return run(body, "klsmod")
