"""kinsmod: insmod for kloaderd — the FAQ's "insmod in about 20 lines".

Read the file, join the parameters, one `init_module` call: the kernel does
the rest.
"""

from __future__ import annotations

import argparse
import errno
import os

from kloader_client.commands._common import connect, die, parser, run
from kloaderd.decompress import compression_of

# kmod's mod_strerror(): the errnos whose plain strerror would mislead.
MOD_STRERROR = {
    errno.ENOEXEC: "Invalid module format",
    errno.ENOENT: "Unknown symbol in module",
    errno.ESRCH: "Module has wrong symbol version",
    errno.EINVAL: "Invalid parameters",
}


def quote(param: str) -> str:
    """`name=a b` → `name="a b"`, which the kernel's parse_args reads back whole."""
    name, eq, value = param.partition("=")
    return f'{name}="{value}"' if eq and " " in value and not value.startswith('"') else param


def make_parser() -> argparse.ArgumentParser:
    """`kinsmod`'s options: main() parses with it, tools/command_docs.py documents it."""
    p = parser("kinsmod", "Insert a module into kloaderd's kernel.")
    p.add_argument("-f", "--force", action="store_true", help="ignore vermagic and symbol versions")
    p.add_argument("filename", metavar="FILENAME", help="the module file (.ko)")
    p.add_argument("params", nargs="*", metavar="PARAM=VALUE",
                   help="module parameters (a value with spaces is quoted for the kernel)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)

    def body() -> None:
        try:
            with open(args.filename, "rb") as f:
                image = f.read()
        except OSError as exc:
            die("kinsmod", f"could not load module {args.filename}: {exc.strerror}")
        with connect("kinsmod", args.socket) as client:
            params = " ".join(map(quote, args.params))
            try:
                if compression_of(image) is not None:
                    # As kmod's insmod: the kernel decompresses (MODULE_INIT_COMPRESSED_FILE).
                    client.finit_module(args.filename, params, force_vermagic=args.force,
                                        force_modversion=args.force, compressed=True)
                else:
                    client.init_module(image, params,
                                       force_vermagic=args.force, force_modversion=args.force)
            except OSError as exc:
                err = exc.errno or errno.EIO
                reason = MOD_STRERROR.get(err) or os.strerror(err)
                die("kinsmod", f"could not insert module {args.filename}: {reason}")

    return run(body, "kinsmod")
