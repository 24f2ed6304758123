"""A module tree as modprobe reads it: which module a name means, what loads first.

`ModuleTree(dirname)` reads `modules.dep`, `modules.alias`, `modules.symbols`,
`modules.builtin` and `modules.builtin.modinfo` of `lib/modules/RELEASE`
(the text files: they say what the `.bin` indexes say) and modprobe.d.
`lookup(name)` follows kmod_module_new_from_lookup: the first of these that
knows the name answers — modprobe.d aliases, module names, `symbol:`
aliases, install/remove commands, module aliases (wildcards matched as
fnmatch does), built-in modules.  `probe_list(entry)` is the order
`kmod_module_probe_insert_module` loads in: each dependency (modules.dep
lists them users-first; libkmod reverses the line) with its soft
dependencies around it, then the module.

The tree is plain data; the emulated kernel (kernel/kmod.py) decides what is
loaded and loads it.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
from typing import NamedTuple

from kloaderd.errors import KernelError
from kloaderd.kmod.config import ModprobeConfig
from kloaderd.kmod.names import alias_normalize, modname

_WILDCARD = re.compile(r"[*?\[]")


class Entry(NamedTuple):
    """A module a lookup found: `alias` is the name it was found by when that was an alias."""
    name: str
    alias: str | None = None


class Step(NamedTuple):
    """One module of a probe list: its file (None when built in), options, and whether it is
    the module asked for or a dependency (True) rather than a soft dependency (False)."""
    name: str
    path: str | None
    options: str
    required: bool
    install: str | None


class ModuleTree:
    def __init__(self, dirname: str, config_paths: list[str] | None = None) -> None:
        self.dirname = dirname.rstrip("/") or "/"
        if not os.path.isdir(self.dirname):
            raise KernelError(errno.ENOENT, f"could not open moddep file '{self.dirname}/modules.dep'")
        self.config = ModprobeConfig.load(config_paths, [os.path.join(self.dirname, "modules.softdep")])
        self.deps: dict[str, tuple[str, list[str]]] = {}        # name -> (path, dependency paths)
        for line in self._lines("modules.dep"):
            head, colon, rest = line.partition(":")
            if colon:
                self.deps.setdefault(modname(head), (self._path(head), [self._path(d) for d in rest.split()]))
        self.symbols: dict[str, str] = {}
        self.exact_aliases: dict[str, list[str]] = {}
        self.wild_aliases: list[tuple[str, str]] = []
        for line in self._lines("modules.symbols"):
            words = line.split()
            if len(words) >= 3 and words[0] == "alias" and words[1].startswith("symbol:"):
                self.symbols.setdefault(words[1][len("symbol:"):], words[2])
        for line in self._lines("modules.alias"):
            words = line.split()
            if len(words) >= 3 and words[0] == "alias" and (pattern := alias_normalize(words[1])) is not None:
                if _WILDCARD.search(pattern):
                    self.wild_aliases.append((pattern, words[2]))
                else:
                    self.exact_aliases.setdefault(pattern, []).append(words[2])
        self.builtin = {modname(line.strip()) for line in self._lines("modules.builtin") if line.strip()}
        self.builtin_aliases: list[tuple[str, str]] = []
        try:
            with open(os.path.join(self.dirname, "modules.builtin.modinfo"), "rb") as f:
                for record in f.read().split(b"\0"):
                    key, eq, value = record.decode("latin-1").partition("=")
                    mod, dot, field = key.partition(".")
                    if eq and dot and field == "alias" and (pattern := alias_normalize(value)) is not None:
                        self.builtin_aliases.append((pattern, mod))
        except OSError:
            pass

    def _lines(self, name: str) -> list[str]:
        try:
            with open(os.path.join(self.dirname, name), encoding="latin-1") as f:
                return [line for line in f.read().split("\n") if line and not line.startswith("#")]
        except OSError:
            return []

    def _path(self, relpath: str) -> str:
        return relpath if relpath.startswith("/") else f"{self.dirname}/{relpath}"

    # -- lookups ------------------------------------------------------------------
    def lookup(self, given: str) -> list[Entry]:
        """kmod_module_new_from_lookup: the modules `given` names, [] if none."""
        name = alias_normalize(given)
        if name is None:
            raise KernelError(errno.EINVAL, f"invalid module name or alias '{given}'")
        cfg = self.config
        found = [Entry(mod, pattern) for pattern, mod in cfg.aliases if fnmatch.fnmatchcase(name, pattern)]
        if found:
            return found
        if name in self.deps:
            return [Entry(name)]
        if name.startswith("symbol:") and name[len("symbol:"):] in self.symbols:
            return [Entry(self.symbols[name[len("symbol:"):]], name)]
        if name in cfg.install or name in cfg.remove:
            return [Entry(name)]
        found = [Entry(mod, name) for mod in self.exact_aliases.get(name, [])]
        found += [Entry(mod, pattern) for pattern, mod in self.wild_aliases if fnmatch.fnmatchcase(name, pattern)]
        if found:
            return _unique(found)
        if name in self.builtin:
            return [Entry(name)]
        return _unique([Entry(mod, pattern) for pattern, mod in self.builtin_aliases
                        if fnmatch.fnmatchcase(name, pattern)])

    def path(self, name: str) -> str | None:
        dep = self.deps.get(name)
        return dep[0] if dep else None

    def dependencies(self, name: str) -> list[str]:
        """kmod_module_get_dependencies: modules.dep's list for `name`, reversed (load order)."""
        dep = self.deps.get(name)
        return [modname(p) for p in reversed(dep[1])] if dep else []

    def softdeps(self, name: str) -> tuple[list[str], list[str]]:
        pre, post = self.config.softdeps.get(name, ([], []))
        return list(pre), list(post)

    def blacklisted(self, name: str) -> bool:
        return name in self.config.blacklist

    def probe_list(self, entry: Entry, extra_options: str = "", ignore_commands: bool = False) -> list[Step]:
        """kmod_module_get_probe_list: what to load, in order, for `entry`."""
        steps: list[Step] = []
        visited: set[str] = set()
        required = {entry.name, *self.dependencies(entry.name)}

        def step(name: str) -> Step:
            # module_options_concat: modprobe.d's options, a space, the command line's.
            options = self.config.module_options(name)
            extra = extra_options if name == entry.name else ""
            options = f"{options} {extra}" if options else extra
            install = None if ignore_commands else self.config.install.get(name)
            return Step(name, self.path(name), options, name in required, install)

        def with_softdeps(name: str) -> None:
            pre, post = self.softdeps(name)
            for m in pre:
                probe(m, False)
            steps.append(step(name))
            for m in post:
                probe(m, False)

        def probe(name: str, ignore_cmd: bool) -> None:
            if name in visited:
                return
            visited.add(name)
            for dep in self.dependencies(name):
                with_softdeps(dep)
            if ignore_cmd:
                steps.append(step(name))
            else:
                with_softdeps(name)

        probe(entry.name, ignore_commands)
        # A module reached twice (a softdep that is also a dependency) is listed once, first.
        seen: set[str] = set()
        return [s for s in steps if not (s.name in seen or seen.add(s.name))]


def _unique(entries: list[Entry]) -> list[Entry]:
    seen: set[str] = set()
    return [e for e in entries if not (e.name in seen or seen.add(e.name))]
