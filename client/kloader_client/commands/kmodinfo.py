"""kmodinfo: modinfo for a module file, or for a module loaded in kloaderd.

A file is read here, without a daemon, by the same ELF reader the kernel
uses, so what kmodinfo shows is what the loader will see.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable

from kloader_client.commands._common import connect, die, parser, run


def modinfo_lines(filename: str, pairs: Iterable[tuple[str, str]]) -> list[str]:
    """modinfo's layout: `key:` padded to 16 columns, `parm:` lines last."""
    pairs = list(pairs)
    lines = [_field("filename", filename)]
    lines += [_field(k, v) for k, v in pairs if k not in ("parm", "parmtype")]
    lines += [_field("parm", p) for p in parm_lines(pairs)]
    return lines


def parm_lines(pairs: list[tuple[str, str]]) -> list[str]:
    """`name:description (type)`, joining each parameter's `parm` and `parmtype`."""
    names: dict[str, None] = {}  # in order of first appearance, as kmod lists them
    descs: dict[str, str] = {}
    types: dict[str, str] = {}
    for key, value in pairs:
        if key in ("parm", "parmtype"):
            name, _, rest = value.partition(":")
            names.setdefault(name)
            (descs if key == "parm" else types)[name] = rest
    lines = []
    for name in names:
        if name in descs:
            line = f"{name}:{descs[name]}"
            lines.append(f"{line} ({types[name]})" if name in types else line)
        else:
            lines.append(f"{name}: ({types[name]})")
    return lines


def _field(key: str, value: str) -> str:
    return f"{key + ':':<16}{value}"


def loaded_pairs(info: dict[str, Any]) -> list[tuple[str, str]]:
    """What the kernel knows of a loaded module, in modinfo's terms."""
    if "modinfo" in info:
        return [tuple(pair) for pair in info["modinfo"]]
    pairs = [(key, info[key]) for key in ("license", "version", "srcversion") if info.get(key)]
    return pairs + [("name", info["name"])]


def main(argv: list[str] | None = None) -> int:
    p = parser("kmodinfo", "Show information about a module file or a loaded module.")
    p.add_argument("-F", "--field", help="print only this field's values, one per line")
    p.add_argument("module", metavar="FILE|NAME")
    args = p.parse_args(argv)

    def body() -> None:
        if os.path.exists(args.module) or args.module.endswith(".ko"):
            from kloaderd.elf import parse

            try:
                with open(args.module, "rb") as f:
                    image = parse(f.read())
            except OSError as exc:
                die("kmodinfo", f"could not open {args.module}: {exc.strerror}")
            except Exception as exc:  # KernelError: what the loader would refuse it for
                die("kmodinfo", f"{args.module}: {exc}")
            filename, pairs = os.path.abspath(args.module), list(image.modinfo)
        else:
            with connect("kmodinfo", args.socket) as client:
                try:
                    info = client.module(args.module)
                except FileNotFoundError:
                    die("kmodinfo", f"Module {args.module} not found.")
            filename, pairs = f"(loaded in kloaderd: {client.path})", loaded_pairs(info)
        if args.field:
            values = [v for k, v in pairs if k == args.field] if args.field != "parm" else parm_lines(pairs)
            print("\n".join(values if args.field != "filename" else [filename]))
        else:
            print("\n".join(modinfo_lines(filename, pairs)))

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
