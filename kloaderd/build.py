"""kmodbuild: build a loadable module the way kbuild does, without a kernel tree.

Linux builds an external module in three steps, and so does this:

1. compile each source with the kernel's flags (`-mcmodel=kernel`, no red
   zone, no SSE, freestanding) against the kernel's headers — here the ones
   shipped in `kloaderd/include`;
2. modpost: read the object's symbols and write `NAME.mod.c`, which defines
   `__this_module` (with `.init`/`.exit` only when the module has them),
   `.modinfo` `name=`, `vermagic=` and `depends=`, and `__versions`, the
   modversions CRC of every core-kernel symbol the module imports;
3. `ld -r` the objects and the compiled `.mod.c` into `NAME.ko`.

The result is an ordinary ELF relocatable object with Linux's section
conventions, so kloaderd reads it through the same path as a kbuild `.ko`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from kloaderd import __version__, config
from kloaderd.elf.image import parse as parse_image
from kloaderd.errors import KernelError

INCLUDE_DIR = Path(__file__).resolve().with_name("include")

# What kbuild passes that fixes the C dialect and its meaning: a native
# build of the same source (tests/native.py) uses these too, so both agree.
LANGUAGE_CFLAGS: tuple[str, ...] = (
    "-std=gnu11",
    "-nostdinc",
    "-ffreestanding",
    "-fno-common",
    "-fno-strict-aliasing",
    "-fno-delete-null-pointer-checks",
    "-fno-strict-overflow",
    "-O2",
    "-Wall", "-Wundef",
    "-Werror=implicit-function-declaration", "-Werror=implicit-int",
    "-Werror=strict-prototypes",
    "-Wno-format-security",
    "-DMODULE",
)

# How kbuild generates x86-64 kernel code: Linux's address model, no red
# zone (interrupts use the stack), no FPU/SIMD, no stack protector, no
# unwind tables; and, as arch/x86/Makefile does with CONFIG_RETPOLINE and
# CONFIG_RETHUNK (every distribution kernel), indirect calls and jumps through
# the `__x86_indirect_thunk_*` thunks, returns through `__x86_return_thunk`,
# and no jump tables (they are indirect jumps).  The thunks are where the
# sanitizer sees a module call through a function pointer (docs/sanitizer.md);
# `--cflags '-mindirect-branch=keep -mfunction-return=keep -fjump-tables'`
# builds as a kernel without them.
KERNEL_CODEGEN_CFLAGS: tuple[str, ...] = (
    "-fno-PIE",
    "-fno-pic",
    "-mcmodel=kernel",
    "-mno-red-zone",
    "-mno-sse", "-mno-mmx", "-mno-sse2", "-mno-3dnow", "-mno-avx",
    "-mno-80387", "-mno-fp-ret-in-387", "-mskip-rax-setup",
    "-mpreferred-stack-boundary=3",
    "-fcf-protection=none",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-mindirect-branch=thunk-extern", "-mindirect-branch-register",
    "-mfunction-return=thunk-extern",
    "-fno-jump-tables",
)

# A host program (the native runs of tests/native.py), linked with -no-pie.
NATIVE_CODEGEN_CFLAGS: tuple[str, ...] = ("-fno-pie", "-DKLOADER_NATIVE")

MODVERSION_NAME_MAX = config.MODULE_NAME_LEN - 1


class BuildError(Exception):
    """A build that cannot go on; the message is meant for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def modname_of(output: Path) -> str:
    """KBUILD_MODNAME: the file's stem with '-' made '_', as kbuild does."""
    name = output.name
    if name.endswith(".ko"):
        name = name[:-3]
    return name.replace("-", "_")


def compile_flags(modname: str, basename: str, *, include_dirs: Iterable[str | Path] = (),
                  defines: Iterable[str] = (), cflags: Iterable[str] = (),
                  native: bool = False) -> list[str]:
    """The gcc flags for one translation unit of module `modname`.

    `native` compiles the same source for a host program instead of the
    kernel (same headers and dialect, host code model).
    """
    flags = [*LANGUAGE_CFLAGS, *(NATIVE_CODEGEN_CFLAGS if native else KERNEL_CODEGEN_CFLAGS)]
    flags += ["-I", str(INCLUDE_DIR)]
    for d in include_dirs:
        flags += ["-I", str(d)]
    flags += [f'-DKBUILD_MODNAME="{modname}"', f'-DKBUILD_BASENAME="{basename}"']
    flags += [f"-D{d}" for d in defines]
    flags += list(cflags)
    return flags


def run_tool(argv: list[str], what: str, verbose: bool) -> None:
    """Run a tool; its diagnostics go to our stderr, failure to BuildError."""
    if verbose:
        print(shlex.join(argv), flush=True)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        raise BuildError(
            f"kmodbuild: cannot run '{argv[0]}': not found in PATH "
            f"(kmodbuild needs gcc and GNU ld from binutils)") from None
    except PermissionError as e:
        raise BuildError(f"kmodbuild: cannot run '{argv[0]}': {e.strerror}") from None
    output = (proc.stdout + proc.stderr).rstrip()
    if proc.returncode != 0:
        detail = f"\n{output}" if output else ""
        raise BuildError(f"kmodbuild: {what} failed (exit {proc.returncode}){detail}")
    if output:
        print(output, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ObjectSymbols:
    """What modpost needs to know about a relocatable object."""

    defined: frozenset[str]
    undefined: tuple[str, ...]      # in symbol-table order, no duplicates
    weak: frozenset[str]            # the undefined ones that may stay unresolved
    exports: dict[str, bool]        # name -> GPL-only, from __ksymtab / __ksymtab_gpl
    modinfo: tuple[tuple[str, str], ...]


def read_object(path: Path) -> ObjectSymbols:
    """Symbols, exports and .modinfo of an ELF relocatable object."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            defined: set[str] = set()
            undefined: dict[str, None] = {}
            weak: set[str] = set()
            exports: dict[str, bool] = {}
            symtab = elf.get_section_by_name(".symtab")
            if isinstance(symtab, SymbolTableSection):
                for sym in symtab.iter_symbols():
                    name = sym.name
                    if not name:
                        continue
                    shndx = sym["st_shndx"]
                    bind = sym["st_info"]["bind"]
                    if shndx == "SHN_UNDEF":
                        if bind in ("STB_GLOBAL", "STB_WEAK"):
                            undefined[name] = None
                        if bind == "STB_WEAK":
                            weak.add(name)
                        continue
                    if bind in ("STB_GLOBAL", "STB_WEAK"):
                        defined.add(name)
                    if name.startswith("__ksymtab_") and isinstance(shndx, int):
                        secname = elf.get_section(shndx).name
                        if secname in ("__ksymtab", "__ksymtab_gpl"):
                            exports[name[len("__ksymtab_"):]] = secname == "__ksymtab_gpl"
            modinfo_sec = elf.get_section_by_name(".modinfo")
            raw = modinfo_sec.data() if modinfo_sec is not None else b""
    except (OSError, ELFError) as e:
        raise BuildError(f"kmodbuild: cannot read {path}: {e}") from None
    modinfo = []
    for entry in raw.split(b"\0"):
        key, sep, value = entry.decode("utf-8", "replace").partition("=")
        if sep:
            modinfo.append((key, value))
    return ObjectSymbols(frozenset(defined), tuple(u for u in undefined if u not in defined),
                         frozenset(weak), exports, tuple(modinfo))


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mod_c_source(*, vermagic: str, has_init: bool, has_exit: bool,
                 versions: Sequence[tuple[int, str]], depends: Sequence[str]) -> str:
    """The text of NAME.mod.c, as modpost writes it."""
    lines = [
        "#include <linux/module.h>",
        "",
        "MODULE_INFO(name, KBUILD_MODNAME);",
        f"MODULE_INFO(vermagic, {_c_string(vermagic)});",
        "",
        "__visible struct module __this_module",
        '__section(".gnu.linkonce.this_module") = {',
        "\t.name = KBUILD_MODNAME,",
    ]
    if has_init:
        lines.append("\t.init = init_module,")
    if has_exit:
        lines.append("\t.exit = cleanup_module,")
    lines += ["};", ""]
    if versions:
        lines += ["static const struct modversion_info ____versions[]",
                  '__used __section("__versions") = {']
        lines += [f"\t{{ {crc:#010x}, {_c_string(name)} }}," for crc, name in versions]
        lines += ["};", ""]
    lines.append(f"MODULE_INFO(depends, {_c_string(','.join(depends))});")
    return "\n".join(lines) + "\n"


def _core_exports() -> dict[str, tuple[int, bool]]:
    """The core kernel's exports from the API registry: name -> (CRC, GPL-only)."""
    from kloaderd.kernel import api

    api.load_all()
    return {name: (api.symbol_crc(name), entry.gpl)
            for name, entry in (*api.FUNCTIONS.items(), *api.OBJECTS.items())}


def _warn(message: str) -> None:
    print(f"WARNING: modpost: {message}", file=sys.stderr, flush=True)


def _check_module(path: Path) -> None:
    """An --extra-symbols module must be one the loader would accept as an
    image (a bad e_shstrndx, a section outside the file...): pyelftools
    reads such a file without complaint and finds no exports in it, so the
    build would go on as if it had none."""
    try:
        parse_image(path.read_bytes())
    except OSError as e:
        raise BuildError(f"kmodbuild: cannot read {path}: {e.strerror}") from None
    except KernelError as e:
        raise BuildError(f"kmodbuild: {path}: not a usable module "
                         f"({os.strerror(e.errno)}): {e.message}") from None


def modpost(obj: ObjectSymbols, modname: str, *, vermagic: str,
            extra_symbols: Sequence[Path]) -> str:
    """Check the linked object as modpost does and return its .mod.c text.

    Modpost's errors (an undefined symbol, a GPL-only symbol used by a
    proprietary module, no MODULE_LICENSE) are warnings here, as with
    KBUILD_MODPOST_WARN=1: kloader's fixtures include such modules on purpose,
    and the loader is what must refuse them.
    """
    # Where each importable symbol comes from: None for the core kernel
    # (which carries CRCs), else the module that exports it.  The core wins,
    # then the first --extra-symbols module, as modpost's lookup order.
    owners: dict[str, tuple[str | None, bool]] = {}
    for path in extra_symbols:
        _check_module(Path(path))
        other = read_object(Path(path))
        other_name = dict(other.modinfo).get("name") or modname_of(Path(path))
        for name, gpl_only in other.exports.items():
            owners.setdefault(name, (other_name, gpl_only))
    core = _core_exports()
    owners.update((name, (None, gpl_only)) for name, (_, gpl_only) in core.items())

    licenses = [v for k, v in obj.modinfo if k == "license"]
    ko = f"{modname}.ko"
    if not licenses:
        _warn(f"missing MODULE_LICENSE() in {modname}.o")
    gpl_ok = bool(licenses) and licenses[0] in config.GPL_COMPATIBLE

    versions: list[tuple[int, str]] = []
    depends: list[str] = []
    for name in obj.undefined:
        if name == "__this_module":
            continue
        if name not in owners:
            if name not in obj.weak:
                _warn(f"\"{name}\" [{ko}] undefined!")
            continue
        owner, gpl_only = owners[name]
        if gpl_only and not gpl_ok:
            _warn(f"GPL-incompatible module {ko} uses GPL-only symbol '{name}'")
        if owner is not None:
            if owner not in depends:
                depends.append(owner)
        elif len(name) > MODVERSION_NAME_MAX:
            _warn(f"too long symbol \"{name}\" [{ko}]: no version recorded")
        else:
            versions.append((core[name][0], name))

    return mod_c_source(vermagic=vermagic,
                        has_init="init_module" in obj.defined,
                        has_exit="cleanup_module" in obj.defined,
                        versions=versions, depends=depends)


def build_module(sources: Sequence[str | Path], output: str | Path, *,
                 include_dirs: Iterable[str | Path] = (), defines: Iterable[str] = (),
                 vermagic: str | None = None, extra_symbols: Iterable[str | Path] = (),
                 cflags: Iterable[str] = (), verbose: bool = False,
                 kernel: str | Path | None = None) -> Path:
    """Compile `sources` into the loadable module `output` (NAME.ko).

    With `kernel` (a build tree DIR or a RELEASE), the kernel's own kbuild
    builds it (kloaderd/kbuild.py) and `vermagic`/`extra_symbols` do not apply.
    Raises BuildError with a message for a person (the compiler's or
    linker's own output included) when a tool is missing or fails.
    """
    sources = [Path(s) for s in sources]
    output = Path(output)
    if not sources:
        raise BuildError("kmodbuild: no source files given")
    for src in sources:
        if not src.is_file():
            raise BuildError(f"kmodbuild: {src}: no such file")
    modname = modname_of(output)
    if not modname or len(modname) > MODVERSION_NAME_MAX:
        raise BuildError(f"kmodbuild: bad module name {modname!r} "
                         f"(1 to {MODVERSION_NAME_MAX} characters)")
    include_dirs = [Path(d).resolve() for d in include_dirs]
    defines = list(defines)
    cflags = list(cflags)
    if kernel:
        from .errors import KernelError
        from .kbuild import KbuildError, build_with_kbuild
        try:
            return build_with_kbuild(sources, output, kernel, include_dirs=include_dirs,
                                     defines=defines, cflags=cflags, verbose=verbose)
        except (KbuildError, KernelError) as exc:
            raise BuildError(getattr(exc, "message", None) or str(exc)) from None
    cc = os.environ.get("CC", "gcc")
    ld = os.environ.get("LD", "ld")
    ld_r = [ld, "-r", "-m", "elf_x86_64", "--build-id=none"]

    with tempfile.TemporaryDirectory(prefix=f"kmodbuild-{modname}-") as tmp:
        tmpdir = Path(tmp)
        objects = []
        for i, src in enumerate(sources):
            obj = tmpdir / f"{i}-{src.stem}.o"
            # __FILE__ (BUG() records it) relative to the source's directory,
            # so the object does not depend on where the tree is checked out.
            flags = compile_flags(modname, src.stem.replace("-", "_"),
                                  include_dirs=include_dirs, defines=defines,
                                  cflags=[f"-fmacro-prefix-map={src.resolve().parent}/=", *cflags])
            run_tool([cc, *flags, "-c", "-o", str(obj), str(src)], f"compiling {src}", verbose)
            objects.append(obj)

        # A composite module is first linked into one NAME.o, as kbuild does.
        if len(objects) == 1:
            module_o = objects[0]
        else:
            module_o = tmpdir / f"{modname}.o"
            run_tool([*ld_r, "-o", str(module_o), *map(str, objects)],
                 f"linking {modname}.o", verbose)

        mod_c = tmpdir / f"{modname}.mod.c"
        mod_c.write_text(modpost(read_object(module_o), modname,
                                 vermagic=vermagic if vermagic is not None else config.VERMAGIC,
                                 extra_symbols=[Path(p) for p in extra_symbols]))
        mod_o = tmpdir / f"{modname}.mod.o"
        flags = compile_flags(modname, f"{modname}.mod", cflags=cflags)
        run_tool([cc, *flags, "-c", "-o", str(mod_o), str(mod_c)], f"compiling {mod_c.name}", verbose)

        # Link beside the target and rename, so a failure never leaves half a .ko.
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(f".{output.name}.tmp")
        try:
            run_tool([*ld_r, "-o", str(partial), str(module_o), str(mod_o)],
                 f"linking {output.name}", verbose)
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
    return output


def make_parser() -> argparse.ArgumentParser:
    """kmodbuild's options: main() parses with it, tools/command_docs.py documents it."""
    p = argparse.ArgumentParser(
        prog="kmodbuild",
        description="Build a loadable kernel module (.ko) for kloader the way kbuild does.",
        epilog="Options -fFLAG are passed to the compiler as they are (e.g. -fcommon).")
    p.add_argument("--version", action="version", version=f"%(prog)s (kloader) {__version__}")
    p.add_argument("sources", nargs="+", metavar="SRC.c", type=Path)
    p.add_argument("-o", dest="output", required=True, metavar="NAME.ko", type=Path,
                   help="the module to write; NAME becomes the module's name")
    p.add_argument("-I", dest="include_dirs", action="append", default=[], metavar="DIR",
                   help="add DIR to the header search path")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="X[=Y]",
                   help="define a preprocessor macro")
    p.add_argument("-v", dest="verbose", action="store_true",
                   help="print each command as it runs")
    p.add_argument("--vermagic", metavar="STR",
                   help=f"vermagic to record (default {config.VERMAGIC!r})")
    p.add_argument("--extra-symbols", action="append", default=[], metavar="OTHER.ko", type=Path,
                   help="a module whose exports this one may use (it becomes a depends= entry); "
                        "repeat for several")
    p.add_argument("--kernel", metavar="DIR|RELEASE",
                   help="build with this real kernel's own kbuild (make -C DIR M=...), for "
                        "kloaderd --kernel DIR: its headers, vermagic and CRCs")
    p.add_argument("--cflags", action="append", default=[], metavar="FLAGS",
                   help="extra compiler flags (split like a shell would)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    passthrough = [a for a in args_in if a.startswith("-f")]
    args = make_parser().parse_args([a for a in args_in if not a.startswith("-f")])
    cflags = [f for chunk in args.cflags for f in shlex.split(chunk)] + passthrough
    try:
        build_module(args.sources, args.output, include_dirs=args.include_dirs,
                     defines=args.defines, vermagic=args.vermagic,
                     extra_symbols=args.extra_symbols, cflags=cflags, verbose=args.verbose,
                     kernel=args.kernel)
    except BuildError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
