"""GNU ld as the oracle: link each object at the addresses kloader chose and
compare every relocated allocatable section byte for byte.

kloader's layout decides the addresses; a generated linker script puts each
input section at exactly that address, `--defsym` gives each undefined symbol
the address kloader was told, and ld does a real (not `-r`) link without
relaxation.  Mergeable-string flags are cleared in the copy handed to ld, so
ld cannot deduplicate strings: kloader, like Linux, never merges.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

import elfobjs
from kloaderd.config import MODULES_VADDR
from kloaderd.elf.defs import SHF_ALLOC, SHN_COMMON, SHN_UNDEF, SHT_NOBITS
from kloaderd.elf.image import Image, parse
from kloaderd.errors import KernelError
from kloaderd.link import Linked, link, layout_sections

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SHF_MERGE_STRINGS = 0x10 | 0x20
INIT_BASE = MODULES_VADDR + 0x0100_0000
PERCPU_BASE = 0x0002_0000            # small, like Linux's per-CPU offsets
SCRATCH = 0x0100_0000                # where ld may put the sections Linux does not lay out

pytestmark = pytest.mark.skipif(shutil.which("ld") is None, reason="GNU ld not installed")


def fake_externals(image: Image) -> dict[str, int]:
    """Kernel-like addresses: functions in kernel text, the rest in kernel data; weak ones left unresolved."""
    out = {}
    for i, name in enumerate(sorted(set(image.undefined))):
        out[name] = 0xFFFFFFFF81000000 + 0x40 * i if i % 2 else 0xFFFFFFFF82000000 + 0x100 * i
    return out


def without_merge(data: bytes) -> bytes:
    """The same object with SHF_MERGE|SHF_STRINGS cleared, so ld keeps string sections verbatim."""
    out = bytearray(data)
    shoff, = struct.unpack_from("<Q", out, 0x28)
    shnum, = struct.unpack_from("<H", out, 0x3C)
    for i in range(shnum):
        at = shoff + 64 * i + 8
        flags, = struct.unpack_from("<Q", out, at)
        struct.pack_into("<Q", out, at, flags & ~SHF_MERGE_STRINGS)
    return bytes(out)


def ld_link(tmp: Path, image: Image, placed: dict[int, int], externals: dict[str, int]) -> ELFFile:
    obj = tmp / "input.o"
    obj.write_bytes(without_merge(image.data))
    names = [s.name for s in image.sections if s.flags & SHF_ALLOC or s.index in placed]
    assert len(names) == len(set(names)), "input section names must be unique for the script"
    lines = ["SECTIONS {"]
    scratch = SCRATCH
    for s in image.sections[1:]:
        if s.index in placed:
            lines.append(f"  .k{s.index} {placed[s.index]:#x} : {{ KEEP(input.o({s.name})) }}")
        elif s.type != 0 and _alloc_in_file(image, s.index):
            # .modinfo, __versions, .data..percpu: allocatable in the file, not laid out by Linux.
            addr = PERCPU_BASE if s.index == image.percpu_index else scratch
            lines.append(f"  .k{s.index} {addr:#x} : {{ KEEP(input.o({s.name})) }}")
            scratch += (s.size + 0xFFF) & ~0xFFF
    lines.append("}")
    # Quoted assignments, not --defsym: a kernel symbol such as `edd` reads as an
    # expression there.
    lines += [f'"{name}" = {addr:#x};' for name, addr in externals.items()]
    (tmp / "link.ld").write_text("\n".join(lines) + "\n")
    cmd = ["ld", "-m", "elf_x86_64", "-static", "-nostdlib", "--no-relax", "-z", "max-page-size=4096",
           "-z", "noexecstack", "-e", "0", "--no-dynamic-linker", "-T", "link.ld", "-o", "out.elf", "input.o"]
    assert "-r" not in cmd
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return ELFFile(io.BytesIO((tmp / "out.elf").read_bytes()))


def compare_with_ld(image: Image, linked: Linked, out: ELFFile) -> int:
    """Assert every laid-out section's bytes are ld's at the same address; the count compared.

    ld drops an input `.note.gnu.build-id` (it makes its own or none): a
    section ld dropped is compared with its bytes in the object, which is
    exact only when no relocation patches it, so that is asserted too.
    """
    patched = {r.target for r in image.rela}
    compared = 0
    for index, addr in linked.section_addr.items():
        sec = image.sections[index]
        where, off = linked.layout.place(index)
        ours = (linked.core if where == "core" else linked.init)[off:off + sec.size]
        theirs = out.get_section_by_name(f".k{index}")
        if theirs is None:
            assert sec.name == ".note.gnu.build-id" and index not in patched, f"ld dropped {sec.name}"
            expected = sec.data
        else:
            assert theirs["sh_addr"] == addr, sec.name
            expected = bytes(sec.size) if sec.type == SHT_NOBITS else theirs.data()
        assert ours == expected, f"{sec.name} differs from ld's"
        compared += 1
    return compared


def _alloc_in_file(image: Image, index: int) -> bool:
    flags, = struct.unpack_from("<Q", image.data, _shoff(image) + 64 * index + 8)
    return bool(flags & SHF_ALLOC)


def _shoff(image: Image) -> int:
    return struct.unpack_from("<Q", image.data, 0x28)[0]


def objects() -> list:
    own = [pytest.param(name, id=f"own:{name}") for name in elfobjs.SOURCES]
    own += [pytest.param(f"kbuild-like:{name}", id=f"own:kbuild-like:{name}") for name in elfobjs.SOURCES]
    fixtures = [pytest.param(p, id=f"fixture:{p.name}") for p in sorted(FIXTURES.glob("*.ko"))]
    return own + fixtures


@pytest.mark.parametrize("which", objects())
def test_every_allocated_section_matches_ld(tmp_path, which):
    if isinstance(which, Path):
        data = which.read_bytes()
    elif which.startswith("kbuild-like:"):
        name = which.split(":", 1)[1]
        data = elfobjs.kbuild_like(tmp_path, name, elfobjs.SOURCES[name])
    else:
        data = elfobjs.compile_c(tmp_path, which, elfobjs.SOURCES[which])
    image = parse(data)
    layout = layout_sections(image)
    externals = fake_externals(image)
    if any(s.shndx == SHN_COMMON for s in image.symbols):
        with pytest.raises(KernelError, match="please compile with -fno-common"):
            link(image, layout, MODULES_VADDR, INIT_BASE, externals)
        pytest.skip("SHN_COMMON: kloader refuses it like Linux, so there is nothing to compare")
    linked = link(image, layout, MODULES_VADDR, INIT_BASE, externals, percpu_base=PERCPU_BASE)
    placed = linked.section_addr
    out = ld_link(tmp_path, image, placed, externals)

    compared = compare_with_ld(image, linked, out)
    assert compared == len(placed) > 0
    # Undefined symbols got the addresses ld got.
    for sym in image.symbols:
        if sym.shndx == SHN_UNDEF and sym.name in externals:
            assert linked.symbol_value(sym.index) == externals[sym.name]
