"""ELF constants the reader, the layout and the relocator share.

Spelled as in `include/uapi/linux/elf.h`; `SHF_RO_AFTER_INIT` is Linux's own
flag (`include/linux/moduleloader.h`), set by the loader, never by a compiler.
"""

EHDR_SIZE = 64            # sizeof(Elf64_Ehdr)
SHDR_SIZE = 64            # sizeof(Elf64_Shdr)
SYM_SIZE = 24             # sizeof(Elf64_Sym)
RELA_SIZE = 24            # sizeof(Elf64_Rela)
REL_SIZE = 16             # sizeof(Elf64_Rel)

ELFMAG = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
ET_REL = 1
EM_X86_64 = 62

SHT_NULL = 0
SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_RELA = 4
SHT_NOBITS = 8
SHT_REL = 9

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHF_RO_AFTER_INIT = 0x00200000

SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_LIVEPATCH = 0xFF20
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
SHN_XINDEX = 0xFFFF

STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2

STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3
STT_FILE = 4

R_X86_64_NONE = 0
R_X86_64_64 = 1
R_X86_64_PC32 = 2
R_X86_64_PLT32 = 4
R_X86_64_32 = 10
R_X86_64_32S = 11
R_X86_64_PC64 = 24
