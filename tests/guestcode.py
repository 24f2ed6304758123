"""Build small pieces of real guest code for the CPU tests.

C (gcc -mcmodel=kernel, as kbuild compiles modules) or assembly is linked at
a fixed module-area address with every kernel symbol defined at its stub, and
mapped with Linux's module permissions: text r-x, rodata r--, data rw-.  The
kernel's own linker is not used, so these tests exercise the CPU alone.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from kloaderd.config import MODULES_VADDR, PAGE_SIZE, UTS_RELEASE
from kloaderd.kernel.internal import KernelServices

CFLAGS = ["-c", "-O2", "-mcmodel=kernel", "-fno-pic", "-mno-red-zone", "-ffreestanding",
          "-fno-asynchronous-unwind-tables", "-fcf-protection=none", "-fno-stack-protector"]


@dataclass
class Guest:
    symbols: dict[str, int]
    sections: dict[str, tuple[int, int]]     # name -> (address, size)

    def __getitem__(self, name: str) -> int:
        return self.symbols[name]


def build(machine, source: str, *, lang: str = "c", base: int = MODULES_VADDR,
          cflags: tuple[str, ...] = ()) -> Guest:
    """Compile, link at `base` against the machine's kernel symbols, map."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = d / f"guest.{lang}"
        src.write_text(source)
        obj = d / "guest.o"
        if lang == "c":
            subprocess.run(["gcc", *CFLAGS, *cflags, "-o", obj, src], check=True)
        else:
            subprocess.run(["as", "--64", "-o", obj, src], check=True)
        script = d / "guest.ld"
        script.write_text(f"""SECTIONS {{
  . = {base:#x};
  .text : {{ *(.text .text.*) }}
  . = ALIGN({PAGE_SIZE});
  .rodata : {{ *(.rodata .rodata.*) }}
  . = ALIGN({PAGE_SIZE});
  .data : {{ *(.data .data.*) *(.bss .bss.*) *(COMMON) }}
  /DISCARD/ : {{ *(.comment) *(.note*) *(.eh_frame) }}
}}
""")
        defsyms = [f"--defsym={name}={addr:#x}" for name, addr in machine.kernel_symbols().items()]
        linked = d / "guest.elf"
        subprocess.run(["ld", "-T", script, *defsyms, "-o", linked, obj], check=True)
        with open(linked, "rb") as f:
            elf = ELFFile(f)
            sections = {}
            for name, perms in ((".text", "r-x"), (".rodata", "r--"), (".data", "rw-")):
                sec = elf.get_section_by_name(name)
                if sec is None or not sec["sh_size"]:
                    continue
                addr, size = sec["sh_addr"], sec["sh_size"]
                machine.mem.map(addr, size, "rw-")
                if sec["sh_type"] != "SHT_NOBITS":
                    machine.mem.write(addr, sec.data())
                machine.mem.protect(addr, size, perms)
                sections[name] = (addr, size)
            symbols = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()
                       if s.name and s["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE")}
    return Guest(symbols, sections)


def unmap(machine, guest: Guest) -> None:
    for addr, size in guest.sections.values():
        machine.mem.unmap(addr, size)


class Log:
    """A stand-in for the kernel log: records (level, text, module)."""

    def __init__(self) -> None:
        self.records: list[tuple[int, str, str | None]] = []

    def emit(self, level: int, text: str, module: str | None = None, *, problem: object = None) -> None:
        self.records.append((level, text, module))

    def text(self) -> str:
        return "\n".join(text for _, text, _ in self.records)


class Kernel:
    """A kernel as small as the machine takes (cpu.MachineKernel), with what
    the API code under test uses."""

    release = UTS_RELEASE
    profile = None                     # kloader's own kernel, unless a test gives it one
    builds_in = KernelServices.builds_in

    def __init__(self) -> None:
        self.log = Log()
        self.taints: set[str] = set()

    def add_taint(self, flag: str) -> None:
        self.taints.add(flag)

    def taint_string(self) -> str:
        return "Tainted: " + "".join(sorted(self.taints)) if self.taints else "Not tainted"

    def modules_linked_in(self) -> str:
        return ""
