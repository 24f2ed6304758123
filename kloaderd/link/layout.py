"""Where each section goes: Linux's `layout_sections` (the pre-6.4 form).

Two layouts, core and init.  Sections are placed in four passes — text,
read-only, ro-after-init, writable — in section-index order within a pass,
each at ALIGN(size, sh_addralign).  With CONFIG_STRICT_MODULE_RWX the pass
boundaries are page-aligned so each region gets its own page permissions.
Sections whose name starts with ".init" go to the init layout (freed after
a successful init); ".exit*" stays in core because CONFIG_MODULE_UNLOAD is
on.  The init layout has no ro-after-init region: Linux gives it the ro size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from kloaderd.config import PAGE_SIZE
from kloaderd.elf.defs import SHF_ALLOC, SHF_EXECINSTR, SHF_RO_AFTER_INIT, SHF_WRITE
from kloaderd.elf.image import Image, Section

# (required flags, forbidden flags) per pass; ARCH_SHF_SMALL is 0 on x86, so
# Linux's fifth pass places nothing new and is left out.
MASKS: tuple[tuple[int, int], ...] = (
    (SHF_EXECINSTR | SHF_ALLOC, 0),
    (SHF_ALLOC, SHF_WRITE),
    (SHF_RO_AFTER_INIT | SHF_ALLOC, 0),
    (SHF_WRITE | SHF_ALLOC, 0),
)


class Region(NamedTuple):
    kind: str           # "text", "ro", "ro_after_init", "data"
    offset: int
    size: int
    perms: str          # while init runs
    final_perms: str    # once init has succeeded (ro_after_init becomes read-only)


@dataclass(frozen=True)
class ModLayout:
    size: int
    text_size: int
    ro_size: int
    ro_after_init_size: int
    offsets: dict[int, int]     # section index -> offset in this layout

    @cached_property
    def regions(self) -> tuple[Region, ...]:
        """Non-empty permission regions [(kind, offset, size, perms, final_perms)];
        made once (a load asks for them three times)."""
        spans = (
            ("text", 0, self.text_size, "r-x", "r-x"),
            ("ro", self.text_size, self.ro_size, "r--", "r--"),
            ("ro_after_init", self.ro_size, self.ro_after_init_size, "rw-", "r--"),
            ("data", self.ro_after_init_size, self.size, "rw-", "rw-"),
        )
        return tuple(Region(k, a, b - a, p, f) for k, a, b, p, f in spans if b > a)


@dataclass(frozen=True)
class Layout:
    core: ModLayout
    init: ModLayout

    def place(self, index: int) -> tuple[str, int] | None:
        """("core" | "init", offset) for a laid-out section, else None."""
        if index in self.core.offsets:
            return "core", self.core.offsets[index]
        if index in self.init.offsets:
            return "init", self.init.offsets[index]
        return None


def strict_align(size: int) -> int:
    return (size + PAGE_SIZE - 1) & -PAGE_SIZE


def module_init_layout_section(name: str) -> bool:
    return name.startswith(".init")


def layout_sections(image: Image) -> Layout:
    """Lay out every SHF_ALLOC section of `image` as Linux does on x86-64."""
    core: list[Section] = []
    init: list[Section] = []
    for s in image.sections[1:]:
        if s.flags & SHF_ALLOC:
            (init if module_init_layout_section(s.name) else core).append(s)
    return Layout(_layout(core, init=False), _layout(init, init=True))


def _layout(candidates: list[Section], *, init: bool) -> ModLayout:
    """One layout of `candidates` (its SHF_ALLOC sections, in index order)."""
    offsets: dict[int, int] = {}
    size = text = ro = ro_after_init = 0
    for m, (need, forbid) in enumerate(MASKS):
        for s in candidates:
            if (s.flags & need) != need or s.flags & forbid or s.index in offsets:
                continue
            align = s.addralign or 1
            off = (size + align - 1) & -align
            offsets[s.index] = off
            size = off + s.size
        if m == 0:
            size = text = strict_align(size)
        elif m == 1:
            size = ro = strict_align(size)
        elif m == 2:
            if init:
                ro_after_init = ro      # ro-after-init does not apply to init_layout
            else:
                size = ro_after_init = strict_align(size)
        else:
            size = strict_align(size)
    return ModLayout(size, text, ro, ro_after_init, offsets)
