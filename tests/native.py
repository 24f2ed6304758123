"""Run a fixture module's C source natively, as a host program.

The source is compiled with kloader's own kernel headers, kbuild's C
dialect and `-DKLOADER_NATIVE` (kloaderd.build.compile_flags(native=True)),
and linked with fixtures/native/shim.c, compiled the same way, which
implements the kernel API those headers declare on top of libc and runs
init then exit.  What init and exit print is what the module would
print in kloader, so the two can be compared line by line.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from kloaderd.build import BuildError, compile_flags, modname_of, run_tool

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SHIM = FIXTURES / "native" / "shim.c"
SHIM_INCLUDE = FIXTURES / "native" / "include"
FIXTURE_INCLUDE = FIXTURES / "include"


class NativeRunError(RuntimeError):
    """The native program failed to build or exited unsuccessfully."""


def native_lines(sources: list[Path], params: dict[str, str] | None = None, *,
                 modname: str | None = None) -> list[str]:
    """Build `sources` with the shim, run it with `params`, return its stdout lines."""
    sources = [Path(s) for s in sources]
    name = modname or modname_of(Path(sources[0].stem))
    cc = os.environ.get("CC", "gcc")
    with tempfile.TemporaryDirectory(prefix=f"kloader-native-{name}-") as tmp:
        tmpdir = Path(tmp)
        units = [(src, [FIXTURE_INCLUDE]) for src in sources] + [(SHIM, [SHIM_INCLUDE])]
        objects = []
        try:
            for i, (src, include_dirs) in enumerate(units):
                obj = tmpdir / f"{i}-{src.stem}.o"
                flags = compile_flags(name, src.stem, include_dirs=include_dirs, native=True)
                run_tool([cc, *flags, "-c", "-o", str(obj), str(src)], f"compiling {src}", False)
                objects.append(str(obj))
            program = tmpdir / name
            run_tool([cc, "-no-pie", "-o", str(program), *objects], f"linking native {name}", False)
        except BuildError as e:
            raise NativeRunError(str(e)) from None
        args = [f"{k}={v}" for k, v in (params or {}).items()]
        proc = subprocess.run([str(program), *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise NativeRunError(f"native {name} exited with status {proc.returncode}:\n"
                             f"{proc.stderr}{proc.stdout}")
    return proc.stdout.splitlines()
