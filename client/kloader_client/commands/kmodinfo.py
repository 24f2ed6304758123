"""kmodinfo: modinfo for module files, or for modules loaded in kloaderd.

A file is read here, without a daemon, by the same ELF reader the kernel
uses, so what kmodinfo shows is what the loader will see.  Everything else
follows kmod's modinfo: its options, its layout (including `parm:` lines in
its order, which is the reverse of `.modinfo`'s), its messages and its exit
status; tests compare the two on the fixtures.
"""

from __future__ import annotations

import argparse
import errno
import functools
import os
import stat
import sys
from typing import Any, Callable, Iterable

from kloader_client.client import Client
from kloader_client.commands._common import connect, module_name, parser, run

PARM_KEYS = ("parm", "parmtype")
# kmod's path_ends_with_kmod_ext(): what makes an argument a module file.
MODULE_EXTENSIONS = (".ko", ".ko.gz", ".ko.xz", ".ko.zst")


class NoModinfo(Exception):
    """kmod's "could not get modinfo from 'NAME'": the module is there, its .modinfo is not readable."""

    def __init__(self, name: str, err: int) -> None:
        super().__init__(f"could not get modinfo from '{name}': {os.strerror(err)}")


def params(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str | None, str | None]]:
    """(name, description, type) per parameter, in modinfo's order.

    kmod pushes each new name onto the front of a list, so parameters come out
    last-declared first, a name keeping the place of its first `parm` or
    `parmtype`; the later of two values for one name wins.
    """
    found: dict[str, list[str | None]] = {}
    for key, value in pairs:
        if key in PARM_KEYS and ":" in value:
            name, _, rest = value.partition(":")
            found.setdefault(name, [None, None])[PARM_KEYS.index(key)] = rest
    return [(name, desc, kind) for name, (desc, kind) in reversed(found.items())]


def parm_text(name: str, desc: str | None, kind: str | None, *, listing: bool) -> str:
    """One parameter as `-p` prints it (listing) or as a `parm:` line's value.

    kmod words a parameter without a description differently in the two:
    `name: (type)` under `-p`, `name:type` in the full listing.
    """
    if desc is None:
        return f"{name}: ({kind})" if listing else f"{name}:{kind}"
    return f"{name}:{desc} ({kind})" if kind is not None else f"{name}:{desc}"


def field_line(key: str, value: str) -> str:
    """modinfo's `key:` padded to 16 columns (a longer key is followed by its value directly)."""
    return f"{key + ':':<16}{value}"


def modinfo_lines(pairs: list[tuple[str, str]], field: str | None, null: bool) -> list[str]:
    """What modinfo prints after the filename line: every key, or one field's values."""
    if field == "parm":
        return [parm_text(*p, listing=True) for p in params(pairs)]
    if field is not None:
        return [value for key, value in pairs if key == field]
    lines = [f"{k}={v}" if null else field_line(k, v) for k, v in pairs if k not in PARM_KEYS]
    return lines + [field_line("parm", parm_text(*p, listing=False)) for p in params(pairs)]


def loaded_pairs(info: dict[str, Any]) -> list[tuple[str, str]]:
    """What the kernel knows of a loaded module, in modinfo's terms."""
    if "modinfo" in info:
        return [(key, value) for key, value in info["modinfo"]]
    pairs = [(key, info[key]) for key in ("license", "version", "srcversion") if info.get(key)]
    return pairs + [("name", info["name"])]


def is_module_file(arg: str) -> bool:
    """kmod's is_module_filename(): a regular file whose name ends as a module's does."""
    try:
        return arg.endswith(MODULE_EXTENSIONS) and stat.S_ISREG(os.stat(arg).st_mode)
    except OSError:
        return False


def file_pairs(path: str) -> list[tuple[str, str]]:
    from kloader_client.commands._signature import signature_pairs
    from kloaderd.elf import parse
    from kloaderd.errors import KernelError

    try:
        with open(path, "rb") as f:
            data = f.read()
        if not data:
            raise NoModinfo(module_name(path), errno.EINVAL)   # kmod cannot map an empty file
        data = decompress(path, data)
        # kmod lists the appended signature's fields after .modinfo's own.
        return list(parse(data).modinfo) + signature_pairs(data)
    except KernelError as exc:                                 # what the loader would refuse it for
        raise NoModinfo(module_name(path), exc.errno) from None
    except OSError as exc:
        raise NoModinfo(module_name(path), exc.errno or errno.EIO) from None


def decompress(path: str, data: bytes) -> bytes:
    """A distribution's `.ko.xz`, `.ko.gz` or `.ko.zst`, as kmod reads it (by its magic),
    bounded as the kernel's own decompression is (kloaderd/decompress.py)."""
    from kloaderd.decompress import compression_of, module_decompress
    from kloaderd.errors import KernelError
    if compression_of(data) is None:
        return data
    try:
        return module_decompress(data, 64 << 20)        # the daemon's default max_image_size
    except KernelError as exc:
        raise NoModinfo(module_name(path), exc.errno) from None


class Daemon:
    """One connection, opened the first time a loaded module is asked for."""

    def __init__(self, socket_path: str | None) -> None:
        self.socket_path = socket_path
        self.client: Client | None = None

    def pairs(self, name: str) -> tuple[str, list[tuple[str, str]]]:
        if "/" in name:                      # no module is named so: not a question for the kernel
            raise LookupError(name)
        if self.client is None:
            self.client = connect("kmodinfo", self.socket_path)
        try:
            info = self.client.module(name)
        except FileNotFoundError:
            raise LookupError(name) from None
        return f"(loaded in kloaderd: {self.client.path})", loaded_pairs(info)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def make_parser() -> argparse.ArgumentParser:
    """`kmodinfo`'s options: main() parses with it, tools/command_docs.py documents it."""
    p = parser("kmodinfo", "Show information about module files or modules loaded in kloaderd.")
    p.set_defaults(field=None)
    for flag, long, key in (("-a", "--author", "author"), ("-d", "--description", "description"),
                            ("-l", "--license", "license"), ("-p", "--parameters", "parm"),
                            ("-n", "--filename", "filename")):
        p.add_argument(flag, long, dest="field", action="store_const", const=key,
                       help=f"print only '{key}'")
    p.add_argument("-F", "--field", dest="field", help="print only this field's values, one per line "
                   "(the last of -F, -a, -d, -l, -p, -n given wins, as in modinfo)")
    p.add_argument("-0", "--null", action="store_true", help="end each line with NUL instead of newline")
    p.add_argument("modules", nargs="+", metavar="FILE|NAME",
                   help="a module file (ending in .ko), else the name of a module loaded in kloaderd")
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    end = "\0" if args.null else "\n"

    def body() -> int:
        status = 0
        daemon = Daemon(args.socket)
        try:
            for arg in args.modules:
                status |= show(arg, daemon)
        finally:
            daemon.close()
        return status

    def show(arg: str, daemon: Daemon) -> int:
        # A file's .modinfo is read after its filename line is printed, as modinfo does.
        pairs: Callable[[], list[tuple[str, str]]]
        if is_module_file(arg):
            filename = arg if arg.startswith("/") else f"{os.getcwd()}/{arg}"   # as given, made absolute
            pairs = functools.partial(file_pairs, arg)
        else:
            try:
                filename, loaded = daemon.pairs(arg)
            except LookupError:
                return error(f"Module {arg} not found.")
            pairs = functools.partial(list, loaded)
        if args.field == "filename":
            return emit([filename])
        if args.field is None:
            emit([field_line("filename", filename)])
        try:
            return emit(modinfo_lines(pairs(), args.field, args.null))
        except NoModinfo as exc:
            return error(str(exc))

    def emit(lines: list[str]) -> int:
        sys.stdout.write("".join(line + end for line in lines))
        return 0

    def error(message: str) -> int:
        sys.stdout.flush()
        print(f"kmodinfo: ERROR: {message}", file=sys.stderr)
        return 1

    return run(body, "kmodinfo")


if __name__ == "__main__":
    sys.exit(main())
