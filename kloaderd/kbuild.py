"""kmodbuild --kernel: build an external module with a real kernel's own kbuild.

`make -C BUILD M=DIR modules`, exactly what the kernel's documentation
(Documentation/kbuild/modules.rst) tells module authors to run, against the
build tree a kernel profile reads.  The result carries that kernel's
vermagic and its Module.symvers CRCs in `__versions`, so it loads unforced
under `kloaderd --kernel BUILD`.

Debian's arch build directory (`linux-headers-RELEASE`) is a Makefile that
includes the `-common` tree by absolute path, `/usr/src/linux-headers-…-common`.
Where that path exists (an installed kernel) make runs on the build dir as
is; where it does not (the packages unpacked elsewhere, as the corpus is),
the `-common` tree beside the build dir is used with `O=BUILD`, and the
compiler the kernel was built with (`CONFIG_CC_VERSION_TEXT`) is named
explicitly, as the arch Makefile would have.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from .kernel.profile import KernelProfile


class KbuildError(Exception):
    """kbuild cannot run here, or failed: the message says what to do."""


def _source_tree(build: Path) -> tuple[Path, bool]:
    """(where make runs, whether that is the build dir itself)."""
    try:
        makefile = (build / "Makefile").read_text(errors="replace")
    except OSError as exc:
        raise KbuildError(f"kmodbuild: {build}/Makefile: {exc.strerror}: not a build tree kbuild "
                          "can run in (linux-headers, or a tree after `make modules_prepare`)") from None
    match = re.search(r"^include\s+(\S+)/Makefile\s*$", makefile, re.M)
    if match is None or Path(match.group(1)).is_dir():
        return build, True
    beside = build.parent / Path(match.group(1)).name
    if not (beside / "Makefile").is_file():
        raise KbuildError(f"kmodbuild: {build}/Makefile includes {match.group(1)}/Makefile, which "
                          f"is not there nor beside the build dir: install "
                          f"{Path(match.group(1)).name} (Debian's linux-headers-…-common)")
    return beside, False


def kernel_compiler(profile: KernelProfile) -> str:
    """The compiler named in CONFIG_CC_VERSION_TEXT ("gcc-12 (Debian …)")."""
    text = profile.config.get("CONFIG_CC_VERSION_TEXT", "gcc")
    return text.split()[0] if text.split() else "gcc"


def kbuild_command(profile: KernelProfile, work: Path, verbose: bool = False,
                   target: str = "modules") -> list[str]:
    """The make command line that builds `target` (the module) in `work`, or KbuildError
    naming what is missing (make, the kernel's compiler, the -common tree)."""
    if shutil.which("make") is None:
        raise KbuildError("kmodbuild: make is not on PATH: install make (kbuild is a set of "
                          "Makefiles)")
    build = profile.tree
    source, as_is = _source_tree(build)
    cc = kernel_compiler(profile)
    if shutil.which(cc) is None:
        raise KbuildError(f"kmodbuild: {build} was built with {cc} "
                          f"({profile.config.get('CONFIG_CC_VERSION_TEXT', '?')}), which is not "
                          f"on PATH: install it (Debian: apt-get install {cc})")
    scripts = build / "scripts"
    if not scripts.exists():
        raise KbuildError(f"kmodbuild: {build}/scripts is missing or a dangling link: install the "
                          "kernel's kbuild package (Debian: linux-kbuild-MAJOR.MINOR)")
    argv = ["make", "-C", str(source)]
    if not as_is:
        argv += [f"O={build}", "ARCH=x86", f"CC={cc}"]
    if profile.enabled("DEBUG_INFO_BTF_MODULES") and (build / "vmlinux").is_file() \
            and shutil.which("pahole") is None:
        # scripts/Makefile.modfinal runs pahole for a .BTF section; without it the
        # module is still whole (a kernel loads it without BTF), so say so and go on.
        print("kmodbuild: pahole is not on PATH: building without BTF type information "
              "(install dwarves to get the .BTF section CONFIG_DEBUG_INFO_BTF_MODULES adds)",
              file=sys.stderr)
        argv.append("CONFIG_DEBUG_INFO_BTF_MODULES=")
    argv += [f"M={work}", f"V={1 if verbose else 0}", target]
    return argv


def build_with_kbuild(sources: Sequence[Path], output: Path, kernel: str | Path, *,
                      include_dirs: Iterable[Path] = (), defines: Iterable[str] = (),
                      cflags: Iterable[str] = (), verbose: bool = False) -> Path:
    """Build `sources` into `output` (NAME.ko) with the kernel's kbuild."""
    profile = KernelProfile(kernel)
    modname = output.name.removesuffix(".ko")
    with tempfile.TemporaryDirectory(prefix=f"kmodbuild-{modname}-") as tmp:
        work = Path(tmp)
        objects = []
        for src in sources:
            # kbuild compiles what lies in M=; a source named as the module
            # would be NAME.o twice, so composite parts get a prefix.
            stem = src.stem if len(sources) == 1 and src.stem == modname else f"{modname}-{src.stem}"
            shutil.copyfile(src, work / f"{stem}.c")
            objects.append(f"{stem}.o")
        lines = [f"obj-m := {modname}.o"]
        if objects != [f"{modname}.o"]:
            lines.append(f"{modname}-y := {' '.join(objects)}")
        flags = [f"-D{d}" for d in defines] + [f"-I{Path(d).resolve()}" for d in include_dirs]
        flags += list(cflags)
        if flags:
            lines.append(f"ccflags-y := {' '.join(flags)}")
        (work / "Kbuild").write_text("\n".join(lines) + "\n")
        argv = kbuild_command(profile, work, verbose)
        if verbose:
            print(" ".join(argv), flush=True)
        done = subprocess.run(argv, capture_output=not verbose, text=True,
                              env={**os.environ, "LC_ALL": "C"})
        if done.returncode != 0:
            detail = (done.stderr or "").strip()[-3000:] if not verbose else ""
            raise KbuildError(f"kmodbuild: kbuild failed for {modname} against {profile.tree}"
                              + (f":\n{detail}" if detail else ""))
        built = work / f"{modname}.ko"
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(f".{output.name}.tmp")
        shutil.copyfile(built, partial)
        os.replace(partial, output)
    return output
