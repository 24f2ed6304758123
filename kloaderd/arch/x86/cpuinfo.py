"""`boot_cpu_data`: the kernel's `struct cpuinfo_x86` describing the CPU
Unicorn emulates, from what its CPUID instruction answers.

Modules read it inline (`boot_cpu_has(X86_FEATURE_XMM4_2)`,
`boot_cpu_data.x86_model`), so it is memory of the running kernel's
layout (kernel/layouts.py: 6.10 moved family, model and vendor into the
`x86_vfm` word and dropped `x86_max_cores`).  Filled as
arch/x86/kernel/cpu/common.c's get_cpu_cap() fills it: vendor, family,
model and stepping from leaf 1; the capability words that are CPUID
registers (0: 1.EDX, 1: 0x80000001.EDX, 4: 1.ECX, 6: 0x80000001.ECX,
9: 7.EBX, 10: 0xd/1.EAX, 16: 7.ECX, 18: 7.EDX); the brand string; address
sizes from 0x80000008.

Where kloader differs: Linux's synthetic capability words (3, 7, 8, 11...:
X86_FEATURE_CONSTANT_TSC, retpolines, ...) are left zero, no bug bits are
set, and `loops_per_jiffy` is a 2 GHz CPU's at HZ=250 rather than measured.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Any

from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
from unicorn import x86_const as X

from ...config import HZ
from ...kernel.layouts import constants
from ...kernel.layouts import struct as declare

CPUINFO = declare("struct cpuinfo_x86", "asm/processor.h", "x86", "x86_vendor", "x86_model", "x86_stepping",
                  "x86_virt_bits", "x86_phys_bits", "extended_cpuid_level", "cpuid_level", "x86_capability",
                  "x86_vendor_id", "x86_model_id", "x86_cache_alignment", "loops_per_jiffy",
                  "x86_clflush_size", "x86_cache_bits", optional=("x86_max_cores", "booted_cores"))
CPUFEATURES = constants("asm/cpufeatures.h", "asm/cpufeatures.h", "NCAPINTS")
STRUCTS = (CPUINFO, CPUFEATURES)

NCAPINTS = 22               # the CPUID words kloader fills all fall in every release's NCAPINTS
VENDORS = {b"GenuineIntel": 0, b"CyrixInstead": 1, b"AuthenticAMD": 2, b"UMC UMC UMC ": 3,
           b"CentaurHauls": 5, b"GenuineTMx86": 7, b"Geode by NSC": 8, b"HygonGenuine": 9,
           b"  Shanghai  ": 10}
X86_VENDOR_UNKNOWN = 0xFF
CPU_HZ = 2_000_000_000


@dataclass(frozen=True)
class Cpu:
    """What get_cpu_cap() learns of the emulated CPU, before it is laid out."""
    family: int
    vendor: int
    model: int
    stepping: int
    level: int
    extended: int
    words: tuple[int, ...]          # x86_capability[NCAPINTS]
    vendor_id: bytes
    brand: bytes
    virt_bits: int
    phys_bits: int
    clflush: int


@functools.cache
def cpuid(leaf: int, subleaf: int = 0) -> tuple[int, int, int, int]:
    """(eax, ebx, ecx, edx): CPUID run on a Unicorn CPU of the model the
    machine runs (Unicorn's default; kernel/cpu.py sets none)."""
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0x1000, 0x1000)
    uc.mem_write(0x1000, b"\x0f\xa2")
    uc.reg_write(X.UC_X86_REG_RAX, leaf)
    uc.reg_write(X.UC_X86_REG_RCX, subleaf)
    uc.emu_start(0x1000, 0x1002)
    regs = (X.UC_X86_REG_EAX, X.UC_X86_REG_EBX, X.UC_X86_REG_ECX, X.UC_X86_REG_EDX)
    return tuple(uc.reg_read(r) for r in regs)          # type: ignore[return-value]


@functools.cache
def cpu() -> Cpu:
    level, ebx, ecx, edx = cpuid(0)
    vendor = struct.pack("<III", ebx, edx, ecx)
    eax1, ebx1, ecx1, edx1 = cpuid(1)
    family = eax1 >> 8 & 0xF
    model = eax1 >> 4 & 0xF
    if family == 0xF:
        family += eax1 >> 20 & 0xFF
    if family >= 6:
        model += (eax1 >> 16 & 0xF) << 4
    words = [0] * NCAPINTS
    words[0], words[4] = edx1, ecx1
    if level >= 7:
        _, words[9], words[16], words[18] = cpuid(7)
    if level >= 0xD:
        words[10] = cpuid(0xD, 1)[0]
    extended = cpuid(0x80000000)[0]
    if extended >= 0x80000001:
        _, _, words[6], words[1] = cpuid(0x80000001)
    brand = b""
    if extended >= 0x80000004:
        brand = b"".join(struct.pack("<IIII", *cpuid(leaf)) for leaf in range(0x80000002, 0x80000005))
    virt, phys = 48, 36
    if extended >= 0x80000008:
        sizes = cpuid(0x80000008)[0]
        virt, phys = sizes >> 8 & 0xFF, sizes & 0xFF
    return Cpu(family, VENDORS.get(vendor, X86_VENDOR_UNKNOWN), model, eax1 & 0xF, level, extended,
               tuple(words), vendor, brand.split(b"\0")[0].strip()[:63], virt, phys,
               (ebx1 >> 8 & 0xFF) * 8 if edx1 & 1 << 19 else 64)


def boot_cpu_data(layouts: Any) -> bytes:
    """The structure's bytes, at `layouts`' offsets (a kernel's Layouts)."""
    at, ncapints = layouts[CPUINFO], layouts[CPUFEATURES].NCAPINTS
    c = cpu()
    data = bytearray(at.size)
    data[at.x86], data[at.x86_vendor], data[at.x86_model], data[at.x86_stepping] = \
        c.family, c.vendor, c.model, c.stepping
    data[at.x86_virt_bits], data[at.x86_phys_bits] = c.virt_bits, c.phys_bits
    struct.pack_into("<I", data, at.extended_cpuid_level, c.extended)
    struct.pack_into("<I", data, at.cpuid_level, c.level)
    words = c.words[:ncapints]
    struct.pack_into(f"<{len(words)}I", data, at.x86_capability, *words)
    data[at.x86_vendor_id:at.x86_vendor_id + 12] = c.vendor_id
    data[at.x86_model_id:at.x86_model_id + len(c.brand)] = c.brand
    struct.pack_into("<i", data, at.x86_cache_alignment, c.clflush)
    struct.pack_into("<Q", data, at.loops_per_jiffy, CPU_HZ // HZ)
    struct.pack_into("<H", data, at.x86_clflush_size, c.clflush)
    for cores in (at.x86_max_cores, at.booted_cores):         # before 6.10's topology rework
        if cores is not None:
            struct.pack_into("<H", data, cores, 1)
    data[at.x86_cache_bits] = c.phys_bits
    return bytes(data)


def cpu_has(feature: int) -> bool:
    """test_bit(feature, boot_cpu_data.x86_capability)."""
    word, bit = divmod(feature, 32)
    return word < NCAPINTS and bool(cpu().words[word] >> bit & 1)
