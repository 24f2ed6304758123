"""Reading a module image: validate like Linux, then decode once, immutably.

`parse` is kloader's `elf_validity_cache_copy` + `setup_load_info`: every
offset, size and index is checked against the image with `struct` before any
of it is used, so malformed input can only ever produce
`KernelError(ENOEXEC)` (or EFBIG / EBADMSG where Linux returns those).  The
result, an `Image`, is plain immutable data: the linker, the kernel and
`kmodinfo` all read the same decoded tables and nobody touches the raw ELF
again.  A section's bytes are a read-only view of the image, not a copy:
the module file is held once, however large (a 56 MiB image used to be held
twice more by its sections and the linker's copies).

Section flags in the `Image` are the ones Linux works with after its own
edits: `.modinfo`, `__versions` and `.data..percpu` lose SHF_ALLOC (they are
not laid out), `.data..ro_after_init` and `__jump_table` gain
SHF_RO_AFTER_INIT.
"""

from __future__ import annotations

import errno
import mmap
import struct
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import repeat
from operator import add, and_, attrgetter, itemgetter, rshift
from typing import NamedTuple

from kloaderd.arch import ignore_undef_symbol
from kloaderd.config import MODULE_NAME_LEN
from kloaderd.errors import KernelError, enoexec
from kloaderd.elf.defs import (
    EHDR_SIZE, ELFCLASS64, ELFDATA2LSB, ELFMAG, EM_X86_64, ET_REL, R_X86_64_64,
    R_X86_64_PC32, RELA_SIZE, REL_SIZE, SHDR_SIZE, SHF_ALLOC, SHF_EXECINSTR,
    SHF_RO_AFTER_INIT, SHF_WRITE, SHN_ABS, SHN_COMMON, SHN_LIVEPATCH, SHN_UNDEF,
    SHT_NOBITS, SHT_NULL, SHT_REL, SHT_RELA, SHT_STRTAB, SHT_SYMTAB, STB_WEAK,
    SYM_SIZE,
)

MODULE_SIG_STRING = b"~Module signature appended~\n"
MODULE_SIGNATURE_SIZE = 12      # sizeof(struct module_signature)
PKEY_ID_PKCS7 = 2

THIS_MODULE_SECTION = ".gnu.linkonce.this_module"
THIS_MODULE_NAME_OFFSET = 24    # offsetof(struct module, name)
THIS_MODULE_MIN_SIZE = THIS_MODULE_NAME_OFFSET + MODULE_NAME_LEN

KSYMTAB_PREL_SIZE = 12          # struct kernel_symbol with PREL32 fields (Linux >= 4.19 on x86-64)
MODVERSION_INFO_SIZE = 64       # struct modversion_info
KERNEL_PARAM_SIZE = 40          # struct kernel_param
KERNEL_PARAM_PERM_OFFSET = 24
KERNEL_PARAM_OPS_OFFSET = 16

# Alignment and total allocation a module may claim.  Linux would fail the
# vmalloc with ENOMEM; kloader refuses the claim before allocating anything.
MAX_ALIGN = 2 << 20
MAX_ALLOC = 64 << 20

SPECIAL_SHNDX = frozenset({SHN_UNDEF, SHN_ABS, SHN_COMMON, SHN_LIVEPATCH})

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_U32 = struct.Struct("<I")
_S32 = struct.Struct("<i")
_U16 = struct.Struct("<H")


class Section(NamedTuple):
    index: int
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    addralign: int
    entsize: int
    link: int
    info: int
    data: memoryview    # a read-only view of the image; empty for SHT_NOBITS


class Symbol(NamedTuple):
    index: int
    name: str
    value: int
    size: int
    bind: int
    type: int
    shndx: int


_new_symbol = partial(tuple.__new__, Symbol)      # Symbol from one tuple, without a Python-level __new__


_new_section = partial(tuple.__new__, Section)
_HEADER = itemgetter(slice(0, -1))                  # a Section's fields but its bytes (`data`, the last)


class RelaSection(NamedTuple):
    """A relocation section: raw `Elf64_Rela` (or `Elf64_Rel`) entries, decoded in bulk by the relocator."""
    index: int          # the relocation section itself
    target: int         # sh_info: the section the entries patch
    data: memoryview
    count: int
    rela: bool          # False for SHT_REL, which x86-64 modules may not use


class Export(NamedTuple):
    name: str
    gpl: bool
    section: int        # index of __ksymtab / __ksymtab_gpl
    offset: int         # entry offset inside it
    entry_size: int     # 12 (PREL32), 16 or 24 (absolute pointers)


class Param(NamedTuple):
    name: str
    section: int        # index of __param
    offset: int         # entry offset inside it
    perm: int
    ops: str | None     # name of the symbol `ops` points at (e.g. "param_ops_int")


@dataclass(frozen=True)
class Image:
    name: str
    data: bytes                          # the ELF, signature stripped (a view of what was parsed)
    sections: tuple[Section, ...]
    symbols: tuple[Symbol, ...]
    rela: tuple[RelaSection, ...]
    modinfo: tuple[tuple[str, str], ...]
    exports: tuple[Export, ...]
    crcs: tuple[int, ...] | None         # parallel to exports, if __kcrctab* present
    versions: tuple[tuple[str, int], ...]
    params: tuple[Param, ...]
    init: Symbol | None
    exit: Symbol | None
    undefined: tuple[str, ...]
    weak_undefined: tuple[str, ...]
    symtab_index: int
    this_module_index: int
    percpu_index: int                    # 0 when the module has no per-CPU data
    signed: bool = False
    _by_name: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def section(self, name: str) -> Section | None:
        """The first section called `name` (Linux's `find_sec`), or None."""
        i = self._by_name.get(name)
        return None if i is None else self.sections[i]

    def modinfo_all(self, key: str) -> list[str]:
        return [v for k, v in self.modinfo if k == key]

    def modinfo_get(self, key: str) -> str | None:
        for k, v in self.modinfo:
            if k == key:
                return v
        return None

    @property
    def license(self) -> str | None:
        return self.modinfo_get("license")

    def metadata(self, symbols: tuple[Symbol, ...]) -> Image:
        """What a loaded module still needs of its file: names, `.modinfo`,
        section headers without their bytes, and `symbols` (those kallsyms
        keeps).  The tables only loading reads (relocations, imports,
        versions, exports, parameters) and the file itself go."""
        # Each section as it is but for its bytes, in C passes (a `_replace`
        # per section cost a small module's load a twentieth of its time).
        headers = map(add, map(_HEADER, self.sections), repeat((memoryview(b""),)))
        return replace(self, data=b"", sections=tuple(map(_new_section, headers)),
                       symbols=symbols, rela=(), exports=(), crcs=None, versions=(), params=(),
                       undefined=(), weak_undefined=())

    @property
    def vermagic(self) -> str | None:
        return self.modinfo_get("vermagic")


def parse(data: bytes, *, max_size: int = 64 << 20) -> Image:
    """Validate and decode a module image; refuse anything Linux would refuse.

    `data` is read in place when it is `bytes` or a mapping (a big image
    received into an `AnonBuffer`): sections are views of it, and an appended
    signature is cut off by size, not by a copy."""
    if len(data) > max_size:
        raise KernelError(errno.EFBIG, f"module image is {len(data)} bytes, more than the {max_size} byte limit")
    if not isinstance(data, (bytes, mmap.mmap)):
        data = bytes(data)              # a bytearray or view its owner might change
    size, signed = _strip_signature(data)
    return _Parser(data, size, signed).run()


def _strip_signature(data: bytes) -> tuple[int, bool]:
    """The size of the module without an appended signature, as
    `mod_verify_sig` cuts it off (kloader does not verify it)."""
    if len(data) <= len(MODULE_SIG_STRING) or data[-len(MODULE_SIG_STRING):] != MODULE_SIG_STRING:
        return len(data), False
    body = len(data) - len(MODULE_SIG_STRING)
    if body <= MODULE_SIGNATURE_SIZE:
        raise KernelError(errno.EBADMSG, "module: signature trailer too short")
    ms = data[body - MODULE_SIGNATURE_SIZE:body]
    sig_len = int.from_bytes(ms[8:12], "big")
    if sig_len >= body - MODULE_SIGNATURE_SIZE:
        raise KernelError(errno.EBADMSG, "module: signature length exceeds the module")
    if ms[2] == PKEY_ID_PKCS7 and any(ms[0:2] + ms[3:8]):
        raise KernelError(errno.EBADMSG, "module: PKCS#7 signature info has unexpected non-zero params")
    return body - MODULE_SIGNATURE_SIZE - sig_len, True


def _cstr(buf: bytes, start: int, end: int) -> str | None:
    """The NUL-terminated string at buf[start:], which must end before `end`."""
    nul = buf.find(b"\0", start, end)
    if nul < 0:
        return None
    return buf[start:nul].decode("utf-8", "replace")


class Ehdr(NamedTuple):
    """Elf64_Ehdr, as read."""
    e_ident: bytes
    e_type: int
    e_machine: int
    e_version: int
    e_entry: int
    e_phoff: int
    e_shoff: int
    e_flags: int
    e_ehsize: int
    e_phentsize: int
    e_phnum: int
    e_shentsize: int
    e_shnum: int
    e_shstrndx: int


class Shdr(NamedTuple):
    """Elf64_Shdr, as read (before Linux's flag edits, which `Section` carries)."""
    sh_name: int
    sh_type: int
    sh_flags: int
    sh_addr: int
    sh_offset: int
    sh_size: int
    sh_link: int
    sh_info: int
    sh_addralign: int
    sh_entsize: int


_new_shdr = partial(tuple.__new__, Shdr)
_SH_OFFSET = attrgetter("sh_offset")
_SH_SIZE = attrgetter("sh_size")


class _Parser:
    """One parse: Linux's checks in Linux's order, then the module's tables.

    `run` is the sequence; each step is named after the Linux function it
    stands for (6.12 split `elf_validity_cache_copy` into these), checks what
    that function checks, and caches what it caches on the parser, as Linux
    caches into `struct load_info`.  The messages are kloader's existing
    ones, Linux's wording where Linux has one.
    """

    def __init__(self, data: bytes, size: int, signed: bool) -> None:
        self.data = data
        self.size = size                        # of the ELF: a signature may follow it in data
        self.signed = signed
        self.name: str | None = None
        self.ehdr: Ehdr
        self.sechdrs: list[Shdr]
        self.names: list[str]                   # section names, by index
        self.find: dict[str, int]               # find_sec(): name -> first index
        self.modinfo: tuple[tuple[str, str], ...] = ()
        self.mod_idx = self.sym_idx = self.str_idx = 0
        self.sections: list[Section]
        self.symbols: tuple[Symbol, ...]
        self.rela_by_target: dict[int, list[RelaSection]] = {}
        self._bytes: dict[int, bytes] = {}     # section_bytes()

    # -- messages -----------------------------------------------------------
    def modname(self) -> str:
        return self.name or "(missing .modinfo section or name field)"

    def run(self) -> Image:
        # elf_validity_cache_copy()
        self.elf_validity_cache_sechdrs()
        self.elf_validity_cache_secstrings()
        self.elf_validity_cache_index()
        self.elf_validity_cache_strtab()
        self.module_name()
        # setup_load_info() and after: the tables, decoded once.
        self.rewrite_section_headers()
        self.symbols = self._symbols(self.sections[self.sym_idx], self.ehdr.e_shnum)
        rela = self._relocations(self.sym_idx, self.ehdr.e_shnum, len(self.symbols))
        for r in rela:
            self.rela_by_target.setdefault(r.target, []).append(r)
        exports, crcs = self.exported_symbols()
        undefined, weak, init, exit_ = self.entry_points_and_undefined()
        find = self.find
        return Image(
            name=self.name or "", data=self.data if self.size == len(self.data) else
            memoryview(self.data)[:self.size], sections=tuple(self.sections), symbols=self.symbols,
            rela=tuple(rela), modinfo=self.modinfo, exports=exports, crcs=crcs,
            versions=self._versions(find.get("__versions")), params=self._params(find.get("__param")),
            init=init, exit=exit_, undefined=undefined, weak_undefined=weak,
            symtab_index=self.sym_idx, this_module_index=self.mod_idx,
            percpu_index=find.get(".data..percpu", 0), signed=self.signed, _by_name=find,
        )

    # -- validation (elf_validity_cache_copy) ----------------------------------
    def elf_validity_ehdr(self) -> None:
        """The ELF header: long enough, magic, 64-bit little-endian, ET_REL, x86-64."""
        n = self.size
        if n < EHDR_SIZE:
            raise enoexec(f"Invalid ELF header len {n}")
        ehdr = self.ehdr = Ehdr._make(_EHDR.unpack_from(self.data))
        ident = ehdr.e_ident
        if ident[:4] != ELFMAG:
            raise enoexec("Invalid ELF header magic: != \\177ELF")
        if ident[4] != ELFCLASS64 or ident[5] != ELFDATA2LSB:
            raise enoexec(f"Invalid ELF header class/data: {ident[4]}/{ident[5]} (need ELFCLASS64, ELFDATA2LSB)")
        if ehdr.e_type != ET_REL:
            raise enoexec(f"Invalid ELF header type: {ehdr.e_type} != {ET_REL}")
        if ehdr.e_machine != EM_X86_64:
            raise enoexec(f"Invalid architecture in ELF header: {ehdr.e_machine}")

    def elf_validity_cache_sechdrs(self) -> None:
        """The section header table inside the image, section 0 null, every
        section's bytes inside the image (validate_section_offset)."""
        self.elf_validity_ehdr()
        ehdr, n = self.ehdr, self.size
        if ehdr.e_shentsize != SHDR_SIZE:
            raise enoexec("Invalid ELF section header size")
        if ehdr.e_shoff >= n or ehdr.e_shnum * SHDR_SIZE > n - ehdr.e_shoff:
            raise enoexec("Invalid ELF section header overflow")
        if ehdr.e_shnum == 0:               # no section 0 to check, no name table to index
            self.elf_validity_cache_secstrings()
        table = self.data[ehdr.e_shoff:ehdr.e_shoff + ehdr.e_shnum * SHDR_SIZE]
        sechdrs = self.sechdrs = list(map(_new_shdr, _SHDR.iter_unpack(table)))
        s0 = sechdrs[0]
        if s0.sh_type != SHT_NULL or s0.sh_size != 0 or s0.sh_addr != 0:
            raise enoexec(f"ELF Spec violation: section 0 type({s0.sh_type})!=SH_NULL or non-zero len or addr")
        if max(map(add, map(_SH_OFFSET, sechdrs), map(_SH_SIZE, sechdrs))) <= n:
            return                          # the usual: every section's bytes inside, whatever its type
        for i, (_name, sh_type, _flags, _addr, offset, size, *_rest) in enumerate(sechdrs[1:], 1):
            if offset + size > n and sh_type != SHT_NULL and sh_type != SHT_NOBITS:
                raise enoexec(f"Invalid ELF section in module (section {i} type {sh_type})")

    def elf_validity_cache_secstrings(self) -> None:
        """The section name table: a valid index, real bytes, NUL-terminated,
        every section's name inside it.  Caches the names."""
        ehdr = self.ehdr
        shstrndx, shnum = ehdr.e_shstrndx, ehdr.e_shnum
        if shstrndx == SHN_UNDEF or shstrndx >= shnum:
            raise enoexec(f"Invalid ELF section name index: {shstrndx} || e_shstrndx ({shstrndx}) >= e_shnum ({shnum})")
        strhdr = self.sechdrs[shstrndx]
        if strhdr.sh_type == SHT_NOBITS or not self._inside(strhdr):
            raise enoexec(f"Invalid ELF section hdr(type {strhdr.sh_type})")
        if strhdr.sh_size == 0:
            raise enoexec("empty section name table")
        secstrings = self.data[strhdr.sh_offset:strhdr.sh_offset + strhdr.sh_size]
        if secstrings[-1] != 0:
            raise enoexec("ELF Spec violation: section name table isn't null terminated")
        nstr = len(secstrings)
        offsets = [0 if sh.sh_type == SHT_NULL else sh.sh_name for sh in self.sechdrs]   # SHT_NULL: no name
        if max(offsets) >= nstr:
            i = next(i for i, at in enumerate(offsets) if at >= nstr)
            raise enoexec(f"Invalid ELF section name in module (section {i} type {self.sechdrs[i].sh_type})")
        # The table ends with NUL, so each name's end is found.
        ends = map(secstrings.find, repeat(b"\0"), offsets)
        raw = list(map(secstrings.__getitem__, map(slice, offsets, ends)))
        try:
            names = list(map(bytes.decode, raw))
        except UnicodeDecodeError:
            names = [name.decode("utf-8", "replace") for name in raw]
        names[0] = ""
        self.names = names
        # The first section of each name: later ones are overwritten by earlier.
        self.find = dict(zip(reversed(names[1:]), range(shnum - 1, 0, -1)))

    def elf_validity_cache_index(self) -> None:
        """.modinfo (and the name it gives), .gnu.linkonce.this_module, the
        symbol table and its string table: each present as often as it must be."""
        self.elf_validity_cache_index_info()
        self.elf_validity_cache_index_mod()
        self.elf_validity_cache_index_sym()
        self.elf_validity_cache_index_str()

    def _unique(self, name: str) -> list[int]:
        """find_any_unique_sec(): every section called `name` (usually one)."""
        first = self.find.get(name)
        if first is None:
            return []
        if self.names.count(name) == 1:     # the usual: no need to look for others
            return [first] if self.sechdrs[first].sh_type != SHT_NULL else []
        return [i for i, n in enumerate(self.names) if n == name and self.sechdrs[i].sh_type != SHT_NULL]

    def elf_validity_cache_index_info(self) -> None:
        found = self._unique(".modinfo")
        if len(found) > 1:
            raise enoexec("Only one .modinfo section must exist.")
        if found:
            self.modinfo = self._modinfo(self.sechdrs[found[0]])
            self.name = next((v for k, v in self.modinfo if k == "name"), None)

    def elf_validity_cache_index_mod(self) -> None:
        found = self._unique(THIS_MODULE_SECTION)
        if not found:
            raise enoexec("No module found in object")
        if len(found) > 1:
            raise enoexec(f"module {self.modname()}: Only one {THIS_MODULE_SECTION} section must exist.")
        self.mod_idx = found[0]
        mh = self.sechdrs[self.mod_idx]
        if not mh.sh_flags & SHF_ALLOC:
            raise enoexec(f"module {self.modname()}: {THIS_MODULE_SECTION} must occupy memory during process execution")
        if mh.sh_size < THIS_MODULE_MIN_SIZE:
            raise enoexec(f"module {self.modname()}: {THIS_MODULE_SECTION} section size must be at least "
                          f"sizeof(struct module) ({THIS_MODULE_MIN_SIZE}), not {mh.sh_size}")

    def elf_validity_cache_index_sym(self) -> None:
        found = [i for i, sh in enumerate(self.sechdrs) if i and sh.sh_type == SHT_SYMTAB]
        if len(found) != 1:
            raise enoexec(f"{self.modname()}: module has no symbols (stripped?)")
        self.sym_idx = found[0]

    def elf_validity_cache_index_str(self) -> None:
        link, shnum = self.sechdrs[self.sym_idx].sh_link, self.ehdr.e_shnum
        if link == SHN_UNDEF or link >= shnum:
            raise enoexec(f"Invalid ELF sh_link!=SHN_UNDEF({link}) or (sh_link({link}) >= hdr->e_shnum({shnum})")
        self.str_idx = link

    def elf_validity_cache_strtab(self) -> None:
        """The symbol table's entries and string table are well-formed (each
        symbol's name offset is checked as the symbols are decoded)."""
        symtab, strtab = self.sechdrs[self.sym_idx], self.sechdrs[self.str_idx]
        if symtab.sh_entsize != SYM_SIZE or symtab.sh_size % SYM_SIZE:
            raise enoexec(f"{self.name}: symbol table entry size {symtab.sh_entsize} / size {symtab.sh_size} "
                          f"is not a multiple of {SYM_SIZE}")
        if strtab.sh_type != SHT_STRTAB:
            raise enoexec(f"{self.name}: symbol table's sh_link {self.str_idx} is not a string table")
        if strtab.sh_size == 0 or self.data[strtab.sh_offset + strtab.sh_size - 1] != 0:
            raise enoexec(f"{self.name}: symbol string table is empty or not NUL-terminated")

    def module_name(self) -> None:
        """No `name=` in .modinfo: the name in struct module, as Linux falls back."""
        if self.name is None:
            at = self.sechdrs[self.mod_idx].sh_offset + THIS_MODULE_NAME_OFFSET
            raw = self.data[at:at + MODULE_NAME_LEN]
            self.name = _cstr(raw, 0, len(raw))
        if not self.name:
            raise enoexec("module has no name (no modinfo name= and an empty struct module name)")

    def _inside(self, sh: Shdr) -> bool:
        """validate_section_offset(): the section's bytes lie inside the image, without overflow."""
        return sh.sh_type == SHT_NOBITS or sh.sh_offset + sh.sh_size <= self.size

    def _modinfo(self, sh: Shdr) -> tuple[tuple[str, str], ...]:
        raw = self.data[sh.sh_offset:sh.sh_offset + sh.sh_size]
        if raw and raw[-1] != 0:
            raise enoexec(".modinfo section is not NUL-terminated")
        out = []
        for item in raw.split(b"\0"):
            key, eq, value = item.partition(b"=")
            if eq and key:
                out.append((key.decode("utf-8", "replace"), value.decode("utf-8", "replace")))
        return tuple(out)

    # -- the sections as the loader works with them (setup_load_info) -------------
    def rewrite_section_headers(self) -> None:
        """Linux's flag edits — .modinfo, __versions and .data..percpu are not
        laid out; .data..ro_after_init and __jump_table become read-only after
        init — then each allocated section's flags and alignment checked, and
        the total memory the module claims bounded."""
        mod, names, find = self.name, self.names, self.find
        flags = [sh.sh_flags for sh in self.sechdrs]
        for clear in ("__versions", ".modinfo", ".data..percpu"):
            if clear in find:
                flags[find[clear]] &= ~SHF_ALLOC
        for ro in (".data..ro_after_init", "__jump_table"):
            if ro in find:
                flags[find[ro]] |= SHF_RO_AFTER_INIT
        alloc_total = 0
        view = memoryview(self.data).toreadonly()[:self.size]
        sections = self.sections = [Section(0, "", SHT_NULL, 0, 0, 0, 0, 0, 0, 0, 0, view[0:0])]
        append = sections.append
        for i, (_name, sh_type, _flags, addr, offset, size, link, info, align, entsize) \
                in enumerate(self.sechdrs[1:], 1):
            fl = flags[i]
            if fl & SHF_ALLOC:
                if (fl & (SHF_WRITE | SHF_EXECINSTR)) == SHF_WRITE | SHF_EXECINSTR:
                    raise enoexec(f"{mod}: section {names[i]} (index {i}) has invalid WRITE|EXEC flags")
                if align & (align - 1) or align > MAX_ALIGN:
                    raise enoexec(f"{mod}: section {names[i]} (index {i}) has invalid alignment {align}")
                alloc_total += size + align
            body = view[0:0] if sh_type == SHT_NOBITS or sh_type == SHT_NULL else view[offset:offset + size]
            append(_new_section((i, names[i], sh_type, fl, addr, offset, size, align, entsize, link, info, body)))
        if alloc_total > MAX_ALLOC:
            raise KernelError(errno.EFBIG, f"{mod}: sections claim {alloc_total} bytes of module memory, "
                                           f"more than the {MAX_ALLOC} byte limit")

    def exported_symbols(self) -> tuple[tuple[Export, ...], tuple[int, ...] | None]:
        """__ksymtab then __ksymtab_gpl, with their CRCs if __kcrctab* are present."""
        exports: list[Export] = []
        crcs: list[int] = []
        have_crcs = False
        for tab, crctab, gpl in (("__ksymtab", "__kcrctab", False), ("__ksymtab_gpl", "__kcrctab_gpl", True)):
            got = self._exports(self.find.get(tab), gpl)
            exports.extend(got)
            ci = self.find.get(crctab)
            if ci is not None:
                have_crcs = True
                crcs.extend(self._crcs(self.sections[ci], len(got)))
            elif got:
                crcs.extend([0] * len(got))
        return tuple(exports), tuple(crcs) if have_crcs else None

    def entry_points_and_undefined(self) -> tuple[tuple[str, ...], tuple[str, ...], Symbol | None, Symbol | None]:
        """The names to resolve (strong, then weak), init_module and cleanup_module."""
        undefined: list[str] = []
        weak: list[str] = []
        init = exit_ = None
        for s in self.symbols[1:]:
            if s.shndx == SHN_UNDEF:
                if s.bind == STB_WEAK:
                    weak.append(s.name)
                elif not ignore_undef_symbol(s.name):
                    undefined.append(s.name)
            elif s.name == "init_module" and init is None:
                init = s
            elif s.name == "cleanup_module" and exit_ is None:
                exit_ = s
        return tuple(undefined), tuple(weak), init, exit_

    def _symbols(self, symtab: Section, shnum: int) -> tuple[Symbol, ...]:
        """Every symbol, its name offset and section index checked (the table's
        shape and its string table were checked by elf_validity_cache_strtab)."""
        mod = self.name
        strtab = self.section_bytes(symtab.link)
        nstr = len(strtab)
        if not symtab.size:
            raise enoexec(f"{mod}: module has no symbols (stripped?)")
        # Columns, read straight out of the table (Elf64_Sym: u32 st_name, u8
        # st_info, u8 st_other, u16 st_shndx, u64 st_value, u64 st_size; its
        # size is a multiple of 24, checked), then checked and decoded a whole
        # column at a time: a distribution module has ~10,000 symbols, and
        # this runs on every load, so no tuple per row is made on the way.
        table = symtab.data
        st_names = table.cast("I")[0::6].tolist()
        infos = table.cast("B")[4::24].tolist()
        shndxs = table.cast("H")[3::12].tolist()
        values = table.cast("Q")[1::3].tolist()
        sizes = table.cast("Q")[2::3].tolist()
        if max(st_names) >= nstr or not {x for x in set(shndxs) if x >= shnum} <= SPECIAL_SHNDX:
            self._bad_symbol(st_names, shndxs, nstr, shnum)
        raw = list(map(strtab.__getitem__, map(slice, st_names, map(strtab.find, repeat(b"\0"), st_names))))
        try:
            names = list(map(bytes.decode, raw))
        except UnicodeDecodeError:
            names = [name.decode("utf-8", "replace") for name in raw]
        if strtab[0]:                   # st_name 0 means no name even where the table does not start with NUL
            names = [name if at else "" for name, at in zip(names, st_names)]
        binds = map(rshift, infos, repeat(4))
        types = map(and_, infos, repeat(0xF))
        return tuple(map(_new_symbol, zip(range(len(names)), names, values, sizes, binds, types, shndxs)))

    def _bad_symbol(self, st_names: list[int], shndxs: list[int], nstr: int, shnum: int) -> None:
        """Refuse the first symbol whose name or section index is out of range."""
        for i, (st_name, shndx) in enumerate(zip(st_names, shndxs)):
            if st_name >= nstr:
                raise enoexec(f"{self.name}: symbol {i} name offset {st_name} is outside the string table")
            if shndx >= shnum and shndx not in SPECIAL_SHNDX:
                raise enoexec(f"{self.name}: symbol {i} has invalid section index {shndx:#x}")

    def _relocations(self, sym_idx: int, shnum: int, nsyms: int) -> list[RelaSection]:
        mod = self.name
        out = []
        for s in self.sections:
            if s.type not in (SHT_RELA, SHT_REL):
                continue
            is_rela = s.type == SHT_RELA
            esize = RELA_SIZE if is_rela else REL_SIZE
            if s.entsize != esize or s.size % esize:
                raise enoexec(f"{mod}: relocation section {s.name} has entry size {s.entsize}, size {s.size} (need {esize})")
            if s.info == 0 or s.info >= shnum or self.sections[s.info].type == SHT_NULL:
                raise enoexec(f"{mod}: relocation section {s.name} applies to invalid section {s.info}")
            if s.link != sym_idx:
                raise enoexec(f"{mod}: relocation section {s.name} sh_link {s.link} is not the symbol table {sym_idx}")
            count = s.size // esize
            if count:
                infos = memoryview(s.data).cast("Q")[1::esize // 8]
                top = max(infos) >> 32
                if top >= nsyms:
                    raise enoexec(f"{mod}: relocation section {s.name} refers to symbol {top}, beyond the {nsyms} symbols")
            out.append(RelaSection(s.index, s.info, s.data, count, is_rela))
        return out

    # -- the module's tables, decoded statically ----------------------------------
    def section_bytes(self, index: int) -> bytes:
        """A section's bytes as `bytes` (to search and decode), copied once per parse."""
        got = self._bytes.get(index)
        if got is None:
            got = self._bytes[index] = bytes(self.sections[index].data)
        return got

    def _reloc_at(self, section: int) -> dict[int, tuple[int, int, int]]:
        """offset -> (type, symbol, addend) for the RELA entries patching `section`."""
        out: dict[int, tuple[int, int, int]] = {}
        for r in self.rela_by_target.get(section, ()):
            if r.rela:
                for off, info, addend in struct.iter_unpack("<QQq", r.data):
                    out[off] = (info & 0xFFFFFFFF, info >> 32, addend)
        return out

    def _string_at(self, symbol: int, addend: int, what: str) -> str:
        """The C string a relocation `symbol + addend` points at, read from the object."""
        sym = self.symbols[symbol]
        if sym.shndx == SHN_UNDEF or sym.shndx >= len(self.sections):
            raise enoexec(f"{self.name}: {what} does not point into the module")
        sec = self.sections[sym.shndx]
        start = sym.value + addend
        data = self.section_bytes(sym.shndx)
        s = _cstr(data, start, len(data)) if 0 <= start < len(data) else None
        if s is None:
            raise enoexec(f"{self.name}: {what} does not point at a string inside {sec.name or 'its section'}")
        return s

    def _exports(self, idx: int | None, gpl: bool) -> list[Export]:
        if idx is None:
            return []
        sec = self._allocated(idx)
        relocs = self._reloc_at(idx)
        size = sec.size
        strings = self.sections_named("__ksymtab_strings")
        if all(t == R_X86_64_PC32 for t, _s, _a in relocs.values()):
            esize, name_off, name_type = KSYMTAB_PREL_SIZE, 4, R_X86_64_PC32
        else:
            esize, name_off, name_type = self._absolute_ksymtab_size(size, relocs, strings), 8, R_X86_64_64
        if size % esize:
            raise enoexec(f"{self.name}: {sec.name} size {size} is not a multiple of its {esize}-byte entries")
        out = []
        for off in range(0, size, esize):
            what = f"{sec.name} entry at {off:#x}"
            r = relocs.get(off + name_off)
            if r is None or r[0] != name_type or off not in relocs:
                raise enoexec(f"{self.name}: {what} lacks the relocations of a struct kernel_symbol")
            # PREL32: the field holds S + A - P, so the string is at S + A.
            out.append(Export(self._string_at(r[1], r[2], what + " name"), gpl, idx, off, esize))
        return out

    def _allocated(self, idx: int) -> Section:
        """A table the kernel reads at run time: it must be laid out."""
        sec = self.sections[idx]
        if sec.size and not sec.flags & SHF_ALLOC:
            raise enoexec(f"{self.name}: section {sec.name} must occupy memory (SHF_ALLOC)")
        return sec

    def sections_named(self, name: str) -> set[int]:
        return {s.index for s in self.sections if s.name == name}

    def _absolute_ksymtab_size(self, size: int, relocs: dict, strings: set[int]) -> int:
        """16-byte {value, name} or 24-byte {value, name, namespace}: values never point at strings."""
        for esize in (16, 24):
            if size % esize == 0 and all(
                off in relocs and self.symbols[relocs[off][1]].shndx not in strings
                for off in range(0, size, esize)
            ):
                return esize
        return 16

    def _crcs(self, sec: Section, n: int) -> list[int]:
        if sec.size != 4 * n:
            raise enoexec(f"{self.name}: {sec.name} has {sec.size // 4} CRCs for {n} exports")
        return [c for (c,) in _U32.iter_unpack(sec.data)]

    def _versions(self, idx: int | None) -> tuple[tuple[str, int], ...]:
        if idx is None:
            return ()
        raw = self.section_bytes(idx)
        out = []
        for off in range(0, len(raw) - MODVERSION_INFO_SIZE + 1, MODVERSION_INFO_SIZE):
            crc = int.from_bytes(raw[off:off + 8], "little")
            name = raw[off + 8:off + MODVERSION_INFO_SIZE].split(b"\0", 1)[0].decode("utf-8", "replace")
            out.append((name, crc))
        return tuple(out)

    def _params(self, idx: int | None) -> tuple[Param, ...]:
        if idx is None:
            return ()
        sec = self._allocated(idx)
        if sec.size % KERNEL_PARAM_SIZE:
            raise enoexec(f"{self.name}: __param size {sec.size} is not a multiple of {KERNEL_PARAM_SIZE}")
        relocs = self._reloc_at(idx)
        out = []
        for off in range(0, sec.size, KERNEL_PARAM_SIZE):
            what = f"__param entry at {off:#x}"
            r = relocs.get(off)
            if r is None or r[0] != R_X86_64_64:
                raise enoexec(f"{self.name}: {what} has no name")
            name = self._string_at(r[1], r[2], what + " name")
            ops_r = relocs.get(off + KERNEL_PARAM_OPS_OFFSET)
            ops = self.symbols[ops_r[1]].name if ops_r else None
            perm = _U16.unpack_from(sec.data, off + KERNEL_PARAM_PERM_OFFSET)[0] if sec.data else 0
            out.append(Param(name, idx, off, perm, ops))
        return tuple(out)
