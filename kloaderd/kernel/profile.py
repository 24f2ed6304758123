"""Kernel profiles: the identity of a real kernel, read from its build tree.

The emulated kernel has one identity at a time (DESIGN.md §9): kloader's
own (its headers ship in the package, `config.UTS_RELEASE`) or a real
kernel's, given as the build tree distributions ship as
`linux-headers-RELEASE` and link from `/lib/modules/RELEASE/build`:

* `include/generated/utsrelease.h` (or `include/config/kernel.release`):
  the release, `uname -r`;
* `.config`: what `VERMAGIC_STRING` is built from (include/linux/vermagic.h);
* `Module.symvers`: every export of vmlinux — name, modversions CRC,
  `EXPORT_SYMBOL` or `_GPL`, symbol namespace;
* `System.map`, when present (Debian ships it only in the `-dbg` package):
  the addresses of kernel symbols.

Files are read on first use and kept: a kernel that is never asked for its
exports never parses Module.symvers (~15,000 lines for a Debian cloud
kernel).  Nothing here knows about the emulated machine; `Kernel` consults a
profile for its release, vermagic and export table.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..errors import KernelError

VMLINUX = "vmlinux"


@dataclass(frozen=True, slots=True)
class SymversEntry:
    """One line of Module.symvers: `CRC NAME MODULE EXPORT_TYPE NAMESPACE`."""
    name: str
    crc: int
    module: str          # "vmlinux" for the core kernel, else the module's path
    gpl: bool            # EXPORT_SYMBOL_GPL
    namespace: str       # "" when the export has none


def parse_symvers(text: str, *, module: str | None = None) -> dict[str, SymversEntry]:
    """Module.symvers, as scripts/mod/modpost.c's read_dump() reads it;
    only `module`'s exports when given (vmlinux's: what the kernel exports)."""
    entries: dict[str, SymversEntry] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("\t")
        if len(fields) < 4:
            if not line:
                continue
            raise ValueError(f"Module.symvers:{number}: expected 'CRC\\tNAME\\tMODULE\\tTYPE"
                             f"[\\tNAMESPACE]', got {line!r}")
        if module is not None and fields[2] != module:
            continue
        entries[fields[1]] = SymversEntry(fields[1], int(fields[0], 16), fields[2],
                                          fields[3].endswith("_GPL"),
                                          fields[4] if len(fields) > 4 else "")
    return entries


def parse_config(text: str) -> dict[str, str]:
    """`.config`: `CONFIG_X=value` lines; `# CONFIG_X is not set` is absence."""
    config: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_"):
            key, _, value = line.partition("=")
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            config[key] = value
    return config


def vermagic_string(release: str, config: dict[str, str], randstruct_seed: str | None = None) -> str:
    """VERMAGIC_STRING as include/linux/vermagic.h composes it on x86-64
    (MODULE_ARCH_VERMAGIC is empty there, arch/x86/include/asm/vermagic.h)."""
    def on(option: str) -> bool:
        return config.get(f"CONFIG_{option}") == "y"

    magic = f"{release} "
    if on("SMP"):
        magic += "SMP "
    if on("PREEMPT_BUILD"):
        magic += "preempt "
    elif on("PREEMPT_RT"):
        magic += "preempt_rt "
    if on("MODULE_UNLOAD"):
        magic += "mod_unload "
    if on("MODVERSIONS"):
        magic += "modversions "
    if randstruct_seed is not None:
        magic += f"RANDSTRUCT_{randstruct_seed}"
    return magic


def find_build_tree(spec: str | Path, *, roots: tuple[Path, ...] = (Path("/"),)) -> Path:
    """`--kernel DIR|RELEASE`: a directory that is a build tree, or a release
    whose tree is `/lib/modules/RELEASE/build` or `/usr/src/linux-headers-RELEASE`."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return _check_tree(path)
    text = str(spec)
    if "/" in text:
        raise KernelError(errno.ENOENT, f"kernel build tree {text}: no such directory")
    tried = []
    for root in roots:
        for candidate in (root / "lib/modules" / text / "build", root / "usr/src" / f"linux-headers-{text}"):
            tried.append(str(candidate))
            if candidate.is_dir():
                return _check_tree(candidate)
    raise KernelError(errno.ENOENT, f"kernel {text}: no build tree at {' or '.join(tried)} "
                                    f"(install linux-headers-{text}, or give --kernel DIR)")


def _check_tree(path: Path) -> Path:
    missing = [name for name in ("Module.symvers", ".config") if not (path / name).is_file()]
    if missing:
        raise KernelError(errno.ENOENT, f"kernel build tree {path}: no {' and no '.join(missing)} "
                                        "(a kernel profile needs a built tree: linux-headers, "
                                        "or a tree after `make modules_prepare` and a full build)")
    return path.resolve()


# What a kernel is built from, so a tree edited in place is read again.
_SOURCES = ("Module.symvers", ".config", "include/generated/utsrelease.h",
            "include/config/kernel.release", "System.map")
_LOADED: dict[tuple[Path, tuple[tuple[int, int] | None, ...]], "KernelProfile"] = {}
_LOADED_MAX = 4                 # trees kept parsed; the oldest goes first


def load_profile(spec: str | Path) -> "KernelProfile":
    """The profile of `spec`, parsed once per process while its files stay
    unchanged: Module.symvers alone takes ~0.1 s to read, and a process
    that builds many kernels of one tree (kloader-survey's workers, a test
    session) would pay it for each.  A profile is never written after it
    is read, so kernels may share one."""
    tree = find_build_tree(spec)
    stamps = []
    for name in _SOURCES:
        try:
            st = (tree / name).stat()
            stamps.append((st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append(None)
    key = (tree, tuple(stamps))
    profile = _LOADED.get(key)
    if profile is None:
        while len(_LOADED) >= _LOADED_MAX:
            del _LOADED[next(iter(_LOADED))]
        profile = _LOADED[key] = KernelProfile(tree)
    return profile


class KernelProfile:
    """A real kernel's identity, read lazily from its build tree."""

    def __init__(self, tree: str | Path) -> None:
        self.tree = find_build_tree(tree)

    def __repr__(self) -> str:
        return f"KernelProfile({str(self.tree)!r})"

    def _read(self, name: str) -> str:
        try:
            return (self.tree / name).read_text(errors="replace")
        except OSError as exc:
            raise KernelError(errno.ENOENT, f"kernel build tree {self.tree}: cannot read "
                                            f"{name}: {exc.strerror}") from None

    @cached_property
    def release(self) -> str:
        """UTS_RELEASE: what `uname -r` prints and vermagic begins with."""
        header = self.tree / "include/generated/utsrelease.h"
        if header.is_file():
            match = re.search(r'#define\s+UTS_RELEASE\s+"([^"]*)"', header.read_text(errors="replace"))
            if match:
                return match.group(1)
        release = self.tree / "include/config/kernel.release"
        if release.is_file():
            return release.read_text().strip()
        raise KernelError(errno.ENOENT, f"kernel build tree {self.tree}: no "
                                        "include/generated/utsrelease.h or include/config/kernel.release")

    @cached_property
    def version(self) -> tuple[int, int]:
        """(major, minor) of the release, for behaviour that changed between releases."""
        match = re.match(r"(\d+)\.(\d+)", self.release)
        if match is None:
            raise KernelError(errno.EINVAL, f"kernel release {self.release!r} does not start "
                                            "with MAJOR.MINOR")
        return int(match.group(1)), int(match.group(2))

    @cached_property
    def config(self) -> dict[str, str]:
        return parse_config(self._read(".config"))

    def enabled(self, option: str) -> bool:
        return self.config.get(f"CONFIG_{option}") == "y"

    @cached_property
    def vermagic(self) -> str:
        seed = None
        if self.enabled("RANDSTRUCT_FULL") or self.enabled("RANDSTRUCT_PERFORMANCE") \
                or self.enabled("GCC_PLUGIN_RANDSTRUCT"):
            header = self._read("include/generated/randstruct_hash.h")
            match = re.search(r'RANDSTRUCT_HASHED_SEED\s+"([^"]*)"', header)
            seed = match.group(1) if match else ""
        return vermagic_string(self.release, self.config, seed)

    def _symvers(self, module: str | None) -> dict[str, SymversEntry]:
        try:
            return parse_symvers(self._read("Module.symvers"), module=module)
        except ValueError as exc:
            raise KernelError(errno.EINVAL, f"{self.tree}/{exc}") from None

    @cached_property
    def symvers(self) -> dict[str, SymversEntry]:
        """Every export Module.symvers lists: vmlinux's and the modules'."""
        return self._symvers(None)

    @cached_property
    def exports(self) -> dict[str, SymversEntry]:
        """The core kernel's exports: what every module may link against."""
        return self._symvers(VMLINUX)

    @cached_property
    def system_map(self) -> dict[str, tuple[int, str]] | None:
        """name -> (address, type letter) from System.map, when the tree has one."""
        path = self.tree / "System.map"
        if not path.is_file():
            return None
        symbols: dict[str, tuple[int, str]] = {}
        for line in path.read_text(errors="replace").splitlines():
            fields = line.split()
            if len(fields) == 3:
                symbols.setdefault(fields[2], (int(fields[0], 16), fields[1]))
        return symbols

    def describe(self) -> dict[str, object]:
        """For `status`: which kernel is emulated, and from where."""
        return {"release": self.release, "tree": str(self.tree), "vermagic": self.vermagic,
                "exports": len(self.exports), "system_map": self.system_map is not None}
