"""modprobe.d: the configuration modprobe reads (libkmod-config.c's grammar).

    alias WILDCARD MODULE        options MODULE OPTS...     blacklist MODULE
    softdep MODULE pre: A B post: C                         install/remove MODULE CMD

Files are `*.conf` in each directory (or a file named directly), read in
the order of their names with the first of each name winning, lines joined
at a trailing backslash, `#` lines ignored.  Names are normalised (dashes to
underscores) as kmod does.  kloader records install/remove commands so that
modprobe can refuse them by name: the emulated kernel runs no user space.
"""

from __future__ import annotations

import os
from typing import Callable

from kloaderd.kmod.names import alias_normalize as underscores

DEFAULT_PATHS = ("/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/lib/modprobe.d")


class ModprobeConfig:
    def __init__(self) -> None:
        self.aliases: list[tuple[str, str]] = []           # (pattern, module)
        self.options: dict[str, list[str]] = {}
        self.blacklist: set[str] = set()
        self.install: dict[str, str] = {}
        self.remove: dict[str, str] = {}
        self.softdeps: dict[str, tuple[list[str], list[str]]] = {}
        self.errors: list[str] = []

    @classmethod
    def load(cls, paths: list[str] | None = None, extra_files: list[str] = ()) -> ModprobeConfig:
        """Read the files of `paths` (modprobe's default directories if None), then `extra_files`."""
        cfg = cls()
        files: dict[str, str] = {}
        for path in DEFAULT_PATHS if paths is None else paths:
            if os.path.isdir(path):
                for name in os.listdir(path):
                    full = os.path.join(path, name)
                    if not name.startswith(".") and name.endswith(".conf") and not os.path.isdir(full):
                        files.setdefault(name, full)
            elif os.path.exists(path):
                files.setdefault(os.path.basename(path), path)
        for name in sorted(files, key=str.encode):
            cfg.parse_file(files[name])
        for path in extra_files:
            if os.path.exists(path):
                cfg.parse_file(path)
        return cfg

    def parse_file(self, filename: str) -> None:
        with open(filename, encoding="utf-8", errors="replace") as f:
            self.parse(f.read(), filename)

    def parse(self, text: str, filename: str = "<config>") -> None:
        lines = text.replace("\\\n", "").split("\n")
        for linenum, line in enumerate(lines, 1):
            if not line or line.startswith("#"):
                continue
            words = line.split(None, 1)
            if not words:
                continue
            cmd, rest = words[0], words[1] if len(words) > 1 else ""
            handler: Callable[[str], bool] | None = getattr(self, f"_cmd_{cmd}", None)
            if cmd in ("include", "config"):
                self.errors.append(f"{filename}: command {cmd} is deprecated and not parsed anymore")
            elif handler is None or not handler(rest):
                self.errors.append(f"{filename} line {linenum}: ignoring bad line starting with '{cmd}'")

    def _cmd_alias(self, rest: str) -> bool:
        words = rest.split()
        if len(words) < 2:
            return False
        alias, module = underscores(words[0]), underscores(words[1])
        if alias is None or module is None:
            return False
        self.aliases.append((alias, module))
        return True

    def _cmd_blacklist(self, rest: str) -> bool:
        words = rest.split()
        name = underscores(words[0]) if words else None
        if name is None:
            return False
        self.blacklist.add(name)
        return True

    def _name_and_rest(self, rest: str) -> tuple[str, str] | None:
        words = rest.split(None, 1)
        if len(words) < 2:
            return None
        name = underscores(words[0])
        return None if name is None else (name, words[1])

    def _cmd_options(self, rest: str) -> bool:
        got = self._name_and_rest(rest)
        if got is None:
            return False
        self.options.setdefault(got[0], []).append(got[1].strip())
        return True

    def _cmd_install(self, rest: str) -> bool:
        got = self._name_and_rest(rest)
        if got is not None:
            self.install[got[0]] = got[1]
        return got is not None

    def _cmd_remove(self, rest: str) -> bool:
        got = self._name_and_rest(rest)
        if got is not None:
            self.remove[got[0]] = got[1]
        return got is not None

    def _cmd_softdep(self, rest: str) -> bool:
        got = self._name_and_rest(rest)
        if got is None:
            return False
        self.add_softdep(*got)
        return True

    def add_softdep(self, name: str, text: str) -> None:
        """`pre: a b post: c`, as kmod_config_add_softdep splits it."""
        pre, post = self.softdeps.setdefault(name, ([], []))
        target = None
        for word in text.split():
            if word == "pre:":
                target = pre
            elif word == "post:":
                target = post
            elif target is not None:
                target.append(underscores(word) or word)

    def module_options(self, name: str) -> str:
        return " ".join(self.options.get(name, []))
