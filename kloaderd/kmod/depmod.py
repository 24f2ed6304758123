"""kdepmod: kmod's depmod, writing the same files byte for byte.

depmod's files are formats other tools read (modprobe, systemd, dracut), so
`kdepmod` reproduces not only their contents but depmod's order, which
follows from its algorithm rather than from any sort a reader could guess:

* modules are found by a readdir walk of `lib/modules/RELEASE` (build/,
  source/ and depmod.d's `exclude` skipped), a name seen twice resolved by
  depmod.d's `search`/`override` priorities; the module array is the walk of
  depmod's module-name hash table, then stably sorted by `modules.order`;
* exports come from every module in array order, a later exporter replacing
  an earlier one (and any vmlinux symbol of `-E`/`-F`); each undefined symbol
  makes its exporter a dependency, in `.symtab` order;
* a topological sort (Kahn's, with a LIFO of modules no one uses yet) numbers
  the modules; `modules.dep` lists each module's transitive dependencies in
  that numbering; a cycle stops depmod with its "Cycle detected" report and
  no files written;
* `modules.symbols` is a walk of the symbol hash table (see hash.py).

Where kloader differs: `.ko.gz` is read (Debian's kmod is built without
zlib and skips it), `-v`'s per-symbol trace, `-A`, `-P`, `-w` and
depmod.d `external` directories are not implemented.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from kloaderd import __version__
from kloaderd.elf.depinfo import DepInfo, read_file as read_depinfo_file
from kloaderd.errors import KernelError
from kloaderd.kmod.hash import walk_order
from kloaderd.kmod.index import Index
from kloaderd.kmod.names import alias_normalize, modname
from kloaderd.decompress import EXTENSIONS

DEFAULT_CONFIG_PATHS = ("/etc/depmod.d", "/run/depmod.d", "/usr/local/lib/depmod.d", "/lib/depmod.d")
FAKE_SYMBOLS = ("__this_module", "_GLOBAL_OFFSET_TABLE_", "TOC.")
MODULES_BY_NAME_BUCKETS = 512
SYMBOLS_BUCKETS = 2048


class Log:
    """kmod's tools/log.c lines: `PROG: LEVEL: text` on stderr."""

    def __init__(self, prog: str, stream=None) -> None:
        self.prog = prog
        self.stream = stream
        self.lines: list[str] = []

    def _emit(self, level: str, text: str) -> None:
        line = f"{self.prog}: {level}: {text}"
        self.lines.append(line)
        print(line, end="", file=self.stream or sys.stderr)

    def crit(self, text: str) -> None:
        self._emit("FATAL", text)

    def err(self, text: str) -> None:
        self._emit("ERROR", text)

    def warn(self, text: str) -> None:
        self._emit("WARNING", text)


def is_version_number(text: str) -> bool:
    """sscanf("%u.%u") == 2."""
    return re.match(r"\s*[+-]?\d+\.\s*[+-]?\d+", text) is not None


# --------------------------------------------------------------- configuration

class Config:
    """depmod.d: search order (kept reversed, as depmod's list prepends), overrides, excludes."""

    def __init__(self, kversion: str, dirname: str) -> None:
        self.kversion = kversion
        self.dirname = dirname
        self.searches: list[str] = []      # "built-in" or a subdirectory
        self.overrides: list[str] = []     # "subdir/modname" without extension
        self.excludes: list[str] = []
        self.check_symvers = False
        self.print_unknown = False

    def load(self, paths: list[str] | None, log: Log) -> None:
        files: dict[str, str] = {}
        for path in paths or DEFAULT_CONFIG_PATHS:
            if not os.path.exists(path):
                continue
            if not os.path.isdir(path):
                files.setdefault(os.path.basename(path), path)
                continue
            for name in os.listdir(path):
                full = os.path.join(path, name)
                if name.startswith(".") or not name.endswith(".conf") or len(name) < 6 or os.path.isdir(full):
                    continue
                files.setdefault(name, full)
        for name in sorted(files, key=str.encode):
            self._parse(files[name], log)
        if not self.searches:
            self.searches.insert(0, "updates")

    def _parse(self, filename: str, log: Log) -> None:
        with open(filename, errors="replace") as f:
            text = f.read().replace("\\\n", "")
        for linenum, line in enumerate(text.split("\n"), 1):
            if not line or line.startswith("#"):
                continue
            words = line.split()
            if not words:
                continue
            cmd, rest = words[0], words[1:]
            if cmd == "search":
                for w in rest:
                    self.searches.insert(0, w)
            elif cmd == "override" and len(rest) >= 3:
                if self._kernel_matches(rest[1]):
                    self.overrides.insert(0, f"{rest[2]}/{rest[0]}")
            elif cmd == "exclude":
                self.excludes += rest
            elif cmd in ("external", "include", "make_map_files"):
                pass
            else:
                log.err(f"{filename}:{linenum}: ignoring bad line starting with '{cmd}'\n")

    def _kernel_matches(self, pattern: str) -> bool:
        if pattern == "*":
            return True
        try:
            return re.search(pattern, self.kversion) is not None
        except re.error:
            return False


# --------------------------------------------------------------- modules

class Mod:
    """One module of the tree: depmod's `struct mod`."""
    __slots__ = ("path", "relpath", "name", "uncrelpath", "sort_idx", "idx", "dep_sort_idx", "users",
                 "deps", "info", "visited")

    def __init__(self, path: str, relpath: str | None, name: str, uncrelpath: str | None) -> None:
        self.path, self.relpath, self.name, self.uncrelpath = path, relpath, name, uncrelpath
        self.sort_idx = 1               # depmod gives every module found 1, modules.order a negative index
        self.idx = 0
        self.dep_sort_idx = 0x7FFFFFFF
        self.users = 0
        self.deps: list[Mod] = []
        self.info = DepInfo((), (), ())
        self.visited = False

    @property
    def out_path(self) -> str:
        """What the files name it by: relative to the tree when inside it, as latin-1 text of its bytes."""
        return _text(self.relpath if self.relpath is not None else self.path)


class Symbol:
    __slots__ = ("name", "owner", "crc")

    def __init__(self, name: str, owner: Mod | None, crc: int) -> None:
        self.name, self.owner, self.crc = name, owner, crc


class CycleError(Exception):
    pass


class Depmod:
    def __init__(self, cfg: Config, log: Log) -> None:
        self.cfg = cfg
        self.log = log
        self.by_name: dict[str, Mod] = {}
        self.modules: list[Mod] = []
        self.symbols: dict[str, Symbol] = {}
        self._info_cache: dict[str, list[tuple[Mod, str]]] = {}
        self._owned: list[Symbol] | None = None

    # -- finding modules ------------------------------------------------------
    def search(self) -> None:
        self._search_dir(self.cfg.dirname)

    def _search_dir(self, path: str) -> None:
        with os.scandir(path) as it:
            entries = list(it)
        for de in entries:
            name = de.name
            if name in (".", "..", "build", "source") or name in self.cfg.excludes:
                continue
            full = f"{path}/{name}"
            try:
                is_dir = de.is_dir()
            except OSError as exc:
                self.log.err(f"fstatat({name}): {exc.strerror}\n")
                continue
            if is_dir:
                try:
                    self._search_dir(full)
                except OSError as exc:
                    self.log.err(f"openat({name}, O_RDONLY): {exc.strerror}\n")
            elif name.endswith(EXTENSIONS) and not any(name == ext for ext in EXTENSIONS):
                self._add_file(full)

    def _add_file(self, path: str) -> None:
        name = modname(path)
        old = self.by_name.get(name)
        if old is not None:
            if self._old_is_higher_priority(old, path):
                return
            del self.by_name[name]
        self.add(path, name)

    def add(self, path: str, name: str) -> None:
        dirname = self.cfg.dirname
        relpath = path[len(dirname) + 1:] if path.startswith(dirname + "/") else None
        uncrel = None
        if relpath is not None:
            slash = relpath.rfind("/")
            uncrel = relpath[:slash + 1 + len(name) + 3]
        self.by_name[name] = Mod(path, relpath, name, uncrel)

    def _old_is_higher_priority(self, old: Mod, newpath: str) -> bool:
        """depmod_module_is_higher_priority: overrides first, then the search list."""
        d = self.cfg.dirname + "/"
        new_stem = newpath[:newpath.rfind("/") + 1] + modname(newpath)
        old_stem = old.path[:old.path.rfind("/") + 1] + old.name
        relnew = new_stem[len(d):] if new_stem.startswith(d) else None
        relold = old_stem[len(d):] if old_stem.startswith(d) else None
        for ov in self.cfg.overrides:
            if relnew == ov:
                return False
            if relold == ov:
                return True
        bprio = oldprio = newprio = -1
        for i, se in enumerate(self.cfg.searches):
            if se == "built-in":
                bprio = i
            elif relnew is not None and relnew.startswith(se + "/") and len(relnew) > len(se):
                newprio = i
            elif relold is not None and relold.startswith(se + "/") and len(relold) > len(se):
                oldprio = i
        newprio = bprio if newprio < 0 else newprio
        oldprio = bprio if oldprio < 0 else oldprio
        return newprio <= oldprio

    def build_array(self) -> None:
        """The module-name hash walk, then sorted (stably) by modules.order."""
        self.modules = [self.by_name[n] for n in walk_order(self.by_name, MODULES_BY_NAME_BUCKETS)]
        self._sort_by_order()
        for i, m in enumerate(self.modules):
            m.idx = i

    def _sort_by_order(self) -> None:
        raw = self._tree_file("modules.order")
        if raw is None:
            return
        lines = raw.split(b"\n")
        last = lines.pop()          # text after the final newline
        if last:
            self.log.err(f"{self.cfg.dirname}/modules.order:{len(lines) + 1} corrupted line misses '\\n'\n")
            return
        by_uncrel = {_text(m.uncrelpath): m for m in self.by_name.values() if m.uncrelpath is not None}
        total = len(lines) + 1
        for idx, line in enumerate(lines, 1):
            m = by_uncrel.get(line.decode("latin-1"))
            if m is not None:
                m.sort_idx = idx - total
        self.modules.sort(key=lambda m: m.sort_idx)

    # -- symbols ----------------------------------------------------------------
    def add_symbol(self, name: str, owner: Mod | None, crc: int) -> None:
        self.symbols[name] = Symbol(name, owner, crc)

    def find_symbol(self, name: str) -> Symbol | None:
        if name.startswith("."):
            name = name[1:]
        return self.symbols.get(name)

    def add_fake_symbols(self) -> None:
        self.add_symbol("__this_module", None, 0)
        self.add_symbol("_GLOBAL_OFFSET_TABLE_", None, 0)
        if self.find_symbol("TOC.") is None:
            self.add_symbol("TOC.", None, 0)

    def load_symvers(self, filename: str) -> None:
        """Module.symvers: `CRC\\tNAME\\tvmlinux\\t...`; only vmlinux's exports count."""
        with open(filename, "rb") as f:
            for linenum, raw in enumerate(f, 1):
                words = [w for w in raw.replace(b" ", b"\t").split(b"\t") if w]
                if len(words) < 3 or words[2] != b"vmlinux":
                    continue
                try:
                    crc = int(words[0], 16)
                except ValueError:
                    self.log.err(f"{filename}:{linenum} Invalid symbol version {words[0].decode()}: Success\n")
                    continue
                self.add_symbol(words[1].decode("latin-1"), None, crc)
        self.add_fake_symbols()

    def load_system_map(self, filename: str) -> None:
        """System.map: every `__ksymtab_NAME` is an export of vmlinux."""
        with open(filename, "rb") as f:
            for linenum, raw in enumerate(f, 1):
                parts = raw.split(b" ", 2)
                if len(parts) < 3:
                    # depmod prints the line with its newline, then its own.
                    self.log.err(f"{filename}:{linenum}: invalid line: {raw.decode('latin-1')}\n")
                    continue
                p = parts[2]
                if p.startswith(b"__ksymtab_"):
                    self.add_symbol(p[len(b"__ksymtab_"):].split(b"\n", 1)[0].decode("latin-1"), None, 0)
        self.add_fake_symbols()

    # -- loading ----------------------------------------------------------------
    def load(self) -> None:
        for m in self.modules:
            try:
                m.info = read_depinfo_file(m.path)
            except (OSError, ValueError, KernelError) as exc:
                self.log.err(f"failed to load symbols from {m.path}: {exc}\n")
                m.info = DepInfo((), (), ())
                continue
            for name, crc in m.info.exports:
                self.add_symbol(name, m, crc)
        cfg = self.cfg
        for m in self.modules:
            for name, crc, weak in m.info.needs:
                sym = self.find_symbol(name)
                if sym is None:
                    if cfg.print_unknown and not weak:
                        self.log.warn(f"{m.path} needs unknown symbol {name}\n")
                    continue
                if cfg.check_symvers and sym.crc != crc and not weak and cfg.print_unknown:
                    self.log.warn(f"{m.path} disagrees about version of symbol {name}\n")
                owner = sym.owner
                if owner is not None and owner not in m.deps:
                    m.deps.append(owner)
                    owner.users += 1
        self._calculate_dependencies()

    def _calculate_dependencies(self) -> None:
        users = [m.users for m in self.modules]
        roots = [i for i, u in enumerate(users) if u == 0]
        n_sorted = 0
        while roots:
            src = self.modules[roots.pop()]
            src.dep_sort_idx = n_sorted
            n_sorted += 1
            for dst in src.deps:
                users[dst.idx] -= 1
                if users[dst.idx] == 0:
                    roots.append(dst.idx)
        if n_sorted < len(self.modules):
            self._report_cycles(users)
            raise CycleError()
        for m in self.modules:
            m.deps.sort(key=lambda d: d.dep_sort_idx)

    def _report_cycles(self, users: list[int]) -> None:
        """depmod_report_cycles: each loop as `a -> b -> a`, then the count of modules in loops."""
        roots = [m for i, m in enumerate(self.modules) if users[i] > 0]
        in_loops: set[str] = set()
        while roots:
            root = roots.pop(0)
            stack: list[tuple[Mod, tuple | None]] = [(root, None)]   # (mod, parent vertex)
            while stack:
                vertex = stack.pop()
                m = vertex[0]
                if m.visited and m is root:
                    chain = []
                    v = vertex[1]
                    while v is not None:
                        chain.append(v[0])
                        in_loops.add(v[0].name)
                        v = v[1]
                    for mod in chain:
                        if mod in roots:
                            roots.remove(mod)
                    names = [mod.name for mod in reversed(chain)] + [m.name]
                    self.log.err(f"Cycle detected: {' -> '.join(names)}\n")
                    continue
                m.visited = True
                if not m.deps:
                    if m in roots:
                        roots.remove(m)
                    continue
                for dep in m.deps:
                    stack.append((dep, vertex))
        self.log.err(f"Found {len(in_loops)} modules in dependency cycles!\n")

    # -- output -----------------------------------------------------------------
    def all_deps(self, m: Mod) -> list[Mod]:
        """mod_get_all_sorted_dependencies: the transitive closure, in topological order."""
        seen: list[Mod] = []
        seen_set: set[int] = set()

        def fill(mod: Mod) -> None:
            for d in mod.deps:
                if id(d) in seen_set:
                    continue
                seen_set.add(id(d))
                seen.append(d)
                fill(d)
        fill(m)
        seen.sort(key=lambda d: d.dep_sort_idx)
        return seen

    def dep_lines(self) -> list[tuple[Mod, str]]:
        out = []
        for m in self.modules:
            deps = self.all_deps(m) if m.deps else []
            out.append((m, m.out_path + ":" + "".join(" " + d.out_path for d in deps)))
        return out

    def output_deps(self) -> bytes:
        return "".join(line + "\n" for _, line in self.dep_lines()).encode("latin-1")

    def output_deps_bin(self) -> bytes:
        idx = Index()
        for m, line in self.dep_lines():
            idx.insert(m.name, line, m.idx)
        return idx.write()

    def _info(self, key: str) -> list[tuple[Mod, str]]:
        if key not in self._info_cache:
            self._info_cache[key] = [(m, v) for m in self.modules for k, v in m.info.modinfo if k == key]
        return self._info_cache[key]

    def output_aliases(self) -> bytes:
        lines = ["# Aliases extracted from modules themselves.\n"]
        lines += [f"alias {v} {m.name}\n" for m, v in self._info("alias")]
        return "".join(lines).encode("latin-1")

    def output_aliases_bin(self) -> bytes:
        idx = Index()
        for m, v in self._info("alias"):
            alias = alias_normalize(v)
            if alias is None:
                self.log.warn(f"Unmatched bracket in {v}\n")
                continue
            idx.insert(alias, m.name, m.idx)
        return idx.write()

    def output_softdeps(self) -> bytes:
        lines = ["# Soft dependencies extracted from modules themselves.\n"]
        lines += [f"softdep {m.name} {v}\n" for m, v in self._info("softdep")]
        return "".join(lines).encode("latin-1")

    def _owned_symbols(self) -> list[Symbol]:
        if self._owned is None:
            self._owned = [self.symbols[k] for k in walk_order(
                [k for k, s in self.symbols.items() if s.owner is not None], SYMBOLS_BUCKETS)]
        return self._owned

    def output_symbols(self) -> bytes:
        lines = ["# Aliases for symbols, used by symbol_request().\n"]
        lines += [f"alias symbol:{s.name} {s.owner.name}\n" for s in self._owned_symbols()]
        return "".join(lines).encode("latin-1")

    def output_symbols_bin(self) -> bytes:
        idx = Index()
        for s in self._owned_symbols():
            idx.insert("symbol:" + s.name, s.owner.name, s.owner.idx)
        return idx.write()

    def _tree_file(self, name: str) -> bytes | None:
        """A file depmod reads from the tree (dfdopen), warning as it does when it cannot."""
        try:
            with open(os.path.join(self.cfg.dirname, name), "rb") as f:
                return f.read()
        except OSError as exc:
            self.log.warn(f"could not open {name} at {self.cfg.dirname}: {exc.strerror}\n")
            return None

    def output_builtin_bin(self) -> bytes:
        raw = self._tree_file("modules.builtin")
        if raw is None:
            return b""          # depmod leaves the file it opened empty
        lines = raw.splitlines(keepends=True)
        idx = Index()
        for line in lines:
            text = line.decode("latin-1")
            if not text[:1].isascii() or not text[:1].isalpha():
                self.log.err(f"Invalid modules.builtin line: {text}")
                continue
            idx.insert(modname(text.rstrip("\n")), "", 0)
        return idx.write()

    def output_builtin_alias_bin(self) -> bytes:
        raw = self._tree_file("modules.builtin.modinfo")
        if raw is None:
            return b""
        idx = Index()
        stream = _Stream(raw)
        while not stream.eof:
            name = stream.until(ord("."))
            if not name:
                continue
            key = stream.until(ord("="))
            if key != b"alias":
                stream.until(0)
                continue
            value = stream.until(0)
            if not value:
                continue
            text = value.decode("latin-1")
            alias = alias_normalize(text)
            if alias is None:
                self.log.warn(f"Unmatched bracket in {text}\n")
                continue
            idx.insert(alias, name.decode("latin-1"), 0)
        return idx.write()

    def output_devname(self) -> bytes:
        lines = []
        for m in self.modules:
            devname, kind, major, minor = None, "", 0, 0
            for k, v in m.info.modinfo:
                if k != "alias":
                    continue
                if v.startswith("devname:"):
                    devname = v[len("devname:"):]
                elif (hit := _MAJOR_MINOR.match(v)) is not None:
                    kind, major, minor = hit.group(1)[0], int(hit.group(2)), int(hit.group(3))
                if kind and devname is not None:
                    break
            if devname is None:
                continue
            if not kind:
                self.log.err(f"Module '{m.name}' has devname ({devname}) but lacks major and minor "
                             f"information. Ignoring.\n")
                continue
            if not lines:
                lines.append("# Device nodes to trigger on-demand module loading.\n")
            lines.append(f"{m.name} {devname} {kind}{major}:{minor}\n")
        return "".join(lines).encode("latin-1")

    def outputs(self) -> list[tuple[str, object]]:
        """depmod_output's files in its order; `.bin` ones are None on stdout (-n)."""
        return [
            ("modules.dep", self.output_deps), ("modules.dep.bin", self.output_deps_bin),
            ("modules.alias", self.output_aliases), ("modules.alias.bin", self.output_aliases_bin),
            ("modules.softdep", self.output_softdeps), ("modules.symbols", self.output_symbols),
            ("modules.symbols.bin", self.output_symbols_bin), ("modules.builtin.bin", self.output_builtin_bin),
            ("modules.builtin.alias.bin", self.output_builtin_alias_bin), ("modules.devname", self.output_devname),
        ]

    def write(self, stdout=None) -> None:
        if stdout is not None:
            for name, produce in self.outputs():
                if not name.endswith(".bin"):
                    stdout.write(produce())
            return
        stamp = f"{os.getpid()}.{time.time_ns() // 1000 % 1000000}.{int(time.time())}"
        for name, produce in self.outputs():
            content = produce()
            final = os.path.join(self.cfg.dirname, name)
            tmp = f"{final}.{stamp}"
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            try:
                os.write(fd, content)
            finally:
                os.close(fd)
            os.replace(tmp, final)


def _text(path: str) -> str:
    """A file system path as the latin-1 text of its bytes, so output bytes are the path's bytes."""
    return os.fsencode(path).decode("latin-1")


_MAJOR_MINOR = re.compile(r"(char|block)-major-\s*\+?(\d+)-\s*\+?(\d+)")


class _Stream:
    """depmod's fgetc loops over modules.builtin.modinfo (flush_stream_to)."""

    def __init__(self, raw: bytes) -> None:
        self.raw, self.pos = raw, 0

    @property
    def eof(self) -> bool:
        return self.pos >= len(self.raw)

    def until(self, endchar: int) -> bytes:
        """Read up to `endchar`, a NUL or the end; the text if `endchar` ended it, else b""."""
        start, raw, n = self.pos, self.raw, len(self.raw)
        i = start
        while i < n and raw[i] != endchar and raw[i] != 0:
            i += 1
        self.pos = i + 1
        return raw[start:i] if i < n and raw[i] == endchar else b""


def make_parser(prog: str = "kdepmod") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Generate modules.dep and map files, as kmod's depmod.")
    p.add_argument("-V", "--version", action="version", version=f"%(prog)s (kloader) {__version__}")
    p.add_argument("-a", "--all", action="store_true", help="probe all modules (the default)")
    p.add_argument("-b", "--basedir", metavar="DIR", help="use an image of a module tree under DIR")
    p.add_argument("-C", "--config", action="append", metavar="PATH", help="depmod.d file or directory")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-E", "--symvers", metavar="Module.symvers", help="vmlinux's exports and CRCs")
    g.add_argument("-F", "--filesyms", metavar="System.map", help="vmlinux's exports")
    p.add_argument("-e", "--errsyms", action="store_true", help="report unknown symbols and CRC mismatches")
    p.add_argument("-n", "--show", "--dry-run", dest="dry_run", action="store_true",
                   help="write the text files to stdout instead of the tree")
    p.add_argument("-v", "--verbose", action="store_true", help="accepted; kdepmod has no verbose trace")
    p.add_argument("release", nargs="?", metavar="RELEASE")
    return p


def run(argv: list[str], *, prog: str = "kdepmod", stdout=None, stderr=None) -> int:
    """The whole command; returns depmod's exit status."""
    args = make_parser(prog).parse_args(argv)
    log = Log(prog, stderr)

    release = args.release or os.uname().release
    if not is_version_number(release):
        log.err(f"Bad version passed {release}\n")
        return 1
    root = os.path.abspath(args.basedir) if args.basedir else ""
    cfg = Config(release, f"{root}/lib/modules/{release}")
    cfg.check_symvers = args.symvers is not None
    cfg.print_unknown = args.errsyms
    depmod = Depmod(cfg, log)
    try:
        if args.symvers:
            depmod.load_symvers(args.symvers)
        elif args.filesyms:
            depmod.load_system_map(args.filesyms)
        elif cfg.print_unknown:
            log.warn("-e needs -E or -F\n")
            cfg.print_unknown = False
    except OSError as exc:
        log.crit(f"could not load {args.symvers or args.filesyms}: {exc.strerror}\n")
        return 1
    cfg.load(args.config, log)
    try:
        depmod.search()
    except OSError as exc:
        log.err(f"could not open directory {cfg.dirname}: {exc.strerror}\n")
        log.crit(f"could not search modules: {exc.strerror}\n")
        return 1
    depmod.build_array()
    try:
        depmod.load()
    except CycleError:
        return 1
    try:
        depmod.write((stdout or sys.stdout.buffer) if args.dry_run else None)
    except OSError as exc:
        log.crit(f"could not write the index files in {cfg.dirname}: {exc.strerror}\n")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
