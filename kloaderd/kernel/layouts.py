"""Structure layouts per kernel: where the emulation finds `f_op` in a
`struct file` or `probe` in a `struct platform_driver` of *this* kernel.

Kernel functions read and write real modules' structures, and the offsets
of their members move between releases (and with a kernel's `.config`):
`struct file_operations` gained and lost members between 6.1 and 6.12,
`struct device` and `struct bus_type` changed.  So no offset is a constant
of the code.  A file of the emulation declares the members it reads
(`struct("struct file", "linux/fs.h", "f_pos", "f_op")`) and reads them
through the kernel it runs in (`kernel.layouts[FILE].f_pos`); the
functions of a file that declares `STRUCTS = (FILE, ...)` are emulated only
for a kernel whose layouts give every member of those structures.

Where a kernel's layouts come from, resolved once when it is made:

* kloader's own kernel: `include/layouts/kloader.json`, what kloader's
  headers (`kloaderd/include/linux/`) say, Linux 6.1's where they do not
  declare a member;
* a profile: the committed table of the same release and `.config`
  (`include/layouts/RELEASE.json`, measured from Debian's trees by
  `tools/struct_probe.py --write`), else a table measured from the
  build tree with its own kbuild at profile load and kept in
  `~/.cache/kloader/layouts/`, else none: the functions that read
  structures are not emulated (stubs that say so), never run with another
  release's offsets, and the kernel log says why, once.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Callable, Iterable, TypeVar

if TYPE_CHECKING:
    from .profile import KernelProfile

TABLES = Path(__file__).resolve().parent.parent / "include" / "layouts"
KLOADER = "kloader"                     # the table of kloader's own headers
SIZEOF = "sizeof"


@dataclass(frozen=True)
class Struct:
    """A C structure the emulation reads: its name, the header declaring
    it, the members whose offsets it needs ("d_name.name" for a member of a
    member), and those some releases do not have (`optional`: None in a
    kernel without them, and the code does without)."""
    name: str
    header: str
    members: tuple[str, ...]
    optional: tuple[str, ...] = ()
    # Members whose own size moves between releases (`struct cred`'s usage,
    # atomic_t then atomic_long_t): measured as "sizeof.MEMBER", read as
    # `layouts[CRED].sizeof_usage`.
    sized: tuple[str, ...] = ()

    def expressions(self) -> dict[str, str]:
        """{key in a table: the C constant expression that measures it}."""
        exprs = {SIZEOF: f"sizeof({self.name})"}
        exprs.update({m: f"__builtin_offsetof({self.name}, {m})" for m in self.members + self.optional})
        exprs.update({f"{SIZEOF}.{m}": f"sizeof((({self.name} *)0)->{m})" for m in self.sized})
        return exprs

    def required(self) -> tuple[str, ...]:
        return (SIZEOF, *self.members, *(f"{SIZEOF}.{m}" for m in self.sized))


@dataclass(frozen=True)
class Constants(Struct):
    """Values of a header's enum constants or macros the emulation uses
    (`enum cpuhp_state`'s CPUHP_AP_ONLINE_DYN, `__GFP_BITS_SHIFT`): they
    move between releases as offsets do, so they are measured as offsets
    are.  `name` names the group in the tables; no size."""

    def expressions(self) -> dict[str, str]:
        return {m: m for m in self.members + self.optional}

    def required(self) -> tuple[str, ...]:
        return self.members


# Every structure (or group of constants) some file of the emulation reads, by name.
STRUCTS: dict[str, Struct] = {}


def struct(name: str, header: str, *members: str, optional: tuple[str, ...] = (),
           sized: tuple[str, ...] = ()) -> Struct:
    """Declare that the emulation reads `members` of `name` (and its size,
    and the sizes of the members `sized`)."""
    return _declare(Struct(name, header, tuple(members), tuple(optional), tuple(sized)))


def constants(name: str, header: str, *members: str, optional: tuple[str, ...] = ()) -> Constants:
    """Declare that the emulation uses the values of `members`, C constant
    expressions of `header` (read as `kernel.layouts[GROUP].NAME`; those
    `optional` None in a release without them)."""
    return _declare(Constants(name, header, tuple(members), tuple(optional)))


_S = TypeVar("_S", bound=Struct)


def _declare(declared: _S) -> _S:
    old = STRUCTS.setdefault(declared.name, declared)
    if old != declared:
        raise ValueError(f"{declared.name} declared twice, differently: {old.members} and {declared.members}")
    return declared


def _attribute(member: str) -> str:
    """The view's attribute for a member: `class` is `class_`, as a keyword."""
    name = "size" if member == SIZEOF else member.replace(".", "_")
    return f"{name}_" if keyword.iskeyword(name) else name


class Layouts:
    """The measured layouts of one kernel: `layouts[FILE].f_pos`.  Built
    once per kernel; a lookup is a dict access and an attribute read."""

    def __init__(self, structs: dict[str, dict[str, int]], source: str) -> None:
        self.source = source            # where the numbers came from, for the log and `status`
        self._table = structs
        self._views: dict[Struct, SimpleNamespace] = {}

    def has(self, struct: Struct) -> bool:
        """Whether every member `struct` declares is known for this kernel."""
        measured = self._table.get(struct.name)
        return measured is not None and all(k in measured for k in struct.required())

    def __getitem__(self, struct: Struct) -> SimpleNamespace:
        view = self._views.get(struct)
        if view is None:
            if not self.has(struct):
                raise KeyError(f"{struct.name}: no layout for this kernel ({self.source})")
            measured = self._table[struct.name]
            view = SimpleNamespace(**{_attribute(k): measured.get(k) for k in struct.expressions()})
            self._views[struct] = view
        return view


# -- the tables ---------------------------------------------------------------------------

def config_digest(config_text: str) -> str:
    """What identifies a configuration: layouts follow `.config`, not only
    the release (a kernel built twice with other options is another table)."""
    return hashlib.sha256(config_text.encode()).hexdigest()[:16]


def read_table(path: Path) -> dict | None:
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return table if isinstance(table, dict) and isinstance(table.get("structs"), dict) else None


def write_table(path: Path, release: str, digest: str, structs: dict[str, dict[str, int]]) -> None:
    """Atomically: survey workers of one profile may measure at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"release": release, "config": digest,
                       "structs": {k: structs[k] for k in sorted(structs)}}, indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kloader" / "layouts"


def _declared_digest(wanted: Iterable[Struct]) -> str:
    """What was asked of a measurement: a cached one of fewer members is stale."""
    text = json.dumps(sorted((s.name, sorted(s.expressions().items())) for s in wanted))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def kloader_layouts() -> Layouts:
    table = read_table(TABLES / f"{KLOADER}.json") or {"structs": {}}
    return Layouts(table["structs"], "kloader's headers")


# A measurement: (profile, structures) -> {struct: {key: value}} or an
# exception saying why it cannot be made here.  Tests replace it.
Measure = Callable[["KernelProfile", list[Struct]], dict[str, dict[str, int]]]


def profile_layouts(profile: "KernelProfile", log: Callable[[str], None],
                    measure: Measure | None = None) -> Layouts:
    """The layouts of a real kernel: its committed table, its cached
    measurement, a measurement now, or none (logged)."""
    from .api import load_all
    load_all()                           # every file has declared what it reads
    wanted = list(STRUCTS.values())
    release = profile.release
    digest = config_digest((profile.tree / ".config").read_text(errors="replace"))
    for path in sorted(TABLES.glob("*.json")):
        table = read_table(path)
        if table and table.get("release") == release and table.get("config") == digest:
            return Layouts(table["structs"], f"kloader's table {path.name}")
    cached = cache_dir() / f"{release}-{digest}-{_declared_digest(wanted)}.json"
    table = read_table(cached)
    if table:
        return Layouts(table["structs"], f"measured, cached in {cached}")
    try:
        structs = (measure or measure_with_kbuild)(profile, wanted)
    except Unmeasurable as exc:
        log(f"kloader: no structure layouts for {release} ({exc}): kernel functions that read "
            "kernel structures are not emulated")
        return Layouts({}, f"none ({exc})")
    write_table(cached, release, digest, structs)
    return Layouts(structs, f"measured from {profile.tree}, cached in {cached}")


# -- measuring ------------------------------------------------------------------------------

class Unmeasurable(Exception):
    """No compiler or kbuild to measure with; the message says what is missing."""


_MAX_ROUNDS = 8          # compiles before giving up on members that do not exist,
                         # plus one per header (a missing one is a fatal error of its own)


def probe_source(headers: Iterable[str], values: dict[str, str]) -> tuple[str, list[str]]:
    """A C file whose initialised data are `values`; the line of each key."""
    included = sorted(set(headers) - {"linux/module.h"})
    lines = ["#include <linux/module.h>", *(f"#include <{h}>" for h in included)]
    keys = ["", *(f"#include {h}" for h in included)]
    for n, (key, expr) in enumerate(values.items()):
        lines.append(f"const unsigned long probe_{n} = {expr};")
        keys.append(key)
    lines.append('MODULE_LICENSE("GPL");')
    keys.append("")
    return "\n".join(lines) + "\n", keys


def read_probe(obj: Path, keys: list[str]) -> dict[str, int]:
    """The values a compiled probe holds, by key."""
    from elftools.elf.elffile import ELFFile
    by_index = [k for k in keys if k and not k.startswith("#include ")]
    out: dict[str, int] = {}
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        for sym in elf.get_section_by_name(".symtab").iter_symbols():
            if sym.name.startswith("probe_") and sym["st_size"] == 8:
                data = elf.get_section(sym["st_shndx"]).data()
                value = data[sym["st_value"]:sym["st_value"] + 8]
                out[by_index[int(sym.name[6:])]] = int.from_bytes(value, "little")
    return out


Compile = Callable[[Path], "subprocess.CompletedProcess[str]"]


def measure_values(headers: Iterable[str], values: dict[str, str], compile: Compile) -> dict[str, int]:
    """{key: value of the C constant expression} for every expression that
    compiles, by `compile(dir)` (which builds dir/probe.c into dir/probe.o).
    An expression the compiler rejects (a member this release does not
    have) is left out: errors are found by line and the rest compiled again."""
    values, headers = dict(values), set(headers)
    with tempfile.TemporaryDirectory(prefix="kloader-layouts-") as tmp:
        work = Path(tmp)
        rounds = _MAX_ROUNDS + len(headers)
        for _ in range(rounds):
            source, keys = probe_source(headers, values)
            (work / "probe.c").write_text(source)
            done = compile(work)
            if done.returncode == 0:
                return read_probe(work / "probe.o", keys)
            bad = {keys[int(n) - 1] for n in re.findall(r"probe\.c:(\d+):\d+: (?:fatal )?error", done.stderr)
                   if int(n) - 1 < len(keys)} - {""}
            if not bad:
                raise Unmeasurable(f"the probe does not compile: {done.stderr.strip()[-600:]}")
            for key in bad:            # a header this tree lacks, or a member
                if key.startswith("#include "):
                    headers.discard(key.removeprefix("#include "))
                else:
                    del values[key]
    raise Unmeasurable(f"the probe still does not compile after {rounds} rounds")


def measure(structs: Iterable[Struct], compile: Compile) -> dict[str, dict[str, int]]:
    """{struct: {member or "sizeof": value}} for every member that exists:
    a struct's functions are emulated only where all of its members do."""
    structs = list(structs)
    values = {f"{s.name}\0{k}": e for s in structs for k, e in s.expressions().items()}
    result: dict[str, dict[str, int]] = {s.name: {} for s in structs}
    for key, value in measure_values([s.header for s in structs], values, compile).items():
        name, member = key.split("\0")
        result[name][member] = value
    return result


def kbuild_compiler(profile: "KernelProfile") -> Compile:
    """Compile a probe with the build tree's own kbuild, as a module is built."""
    from ..kbuild import KbuildError, kbuild_command

    def compile(work: Path) -> subprocess.CompletedProcess[str]:
        (work / "Kbuild").write_text("obj-m := probe.o\n")
        try:
            argv = kbuild_command(profile, work, target="probe.o")
        except KbuildError as exc:
            raise Unmeasurable(str(exc).removeprefix("kmodbuild: ")) from None
        return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    return compile


def kloader_compiler() -> Compile:
    """Compile a probe against kloader's own headers, with kmodbuild's flags."""
    from ..build import compile_flags

    def compile(work: Path) -> subprocess.CompletedProcess[str]:
        argv = ["gcc", *compile_flags("probe", "probe"), "-c", str(work / "probe.c"),
                "-o", str(work / "probe.o")]
        try:
            return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
        except FileNotFoundError:
            raise Unmeasurable("gcc is not on PATH") from None
    return compile


def measure_with_kbuild(profile: "KernelProfile", structs: list[Struct]) -> dict[str, dict[str, int]]:
    return measure(structs, kbuild_compiler(profile))
