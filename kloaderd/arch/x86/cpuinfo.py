"""`boot_cpu_data`: Linux 6.1's `struct cpuinfo_x86` describing the CPU
Unicorn emulates, from what its CPUID instruction answers.

Modules read it inline (`boot_cpu_has(X86_FEATURE_XMM4_2)`,
`boot_cpu_data.x86_model`), so it is memory of Linux's layout (measured
with tools/struct_probe.py against Debian's 6.1 build tree; under other
releases it stays not emulated).  Filled as arch/x86/kernel/cpu/common.c's
get_cpu_cap() fills it: vendor, family, model and stepping from leaf 1; the
capability words that are CPUID registers (0: 1.EDX, 1: 0x80000001.EDX,
4: 1.ECX, 6: 0x80000001.ECX, 9: 7.EBX, 10: 0xd/1.EAX, 16: 7.ECX,
18: 7.EDX); the brand string; address sizes from 0x80000008.

Where kloader differs: Linux's synthetic capability words (3, 7, 8, 11...:
X86_FEATURE_CONSTANT_TSC, retpolines, ...) are left zero, no bug bits are
set, and `loops_per_jiffy` is a 2 GHz CPU's at HZ=250 rather than measured.
"""

from __future__ import annotations

import functools
import struct

from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
from unicorn import x86_const as X

from ...config import HZ

LAYOUTS = (6, 1)
SIZE = 288
# offsets in struct cpuinfo_x86 (6.1, x86-64)
X86, VENDOR, MODEL, STEPPING = 0, 1, 2, 3
VIRT_BITS, PHYS_BITS, EXTENDED_LEVEL, CPUID_LEVEL, CAPABILITY = 28, 29, 32, 36, 40
VENDOR_ID, MODEL_ID, CACHE_ALIGNMENT, LOOPS_PER_JIFFY = 136, 152, 220, 240
MAX_CORES, CLFLUSH_SIZE, BOOTED_CORES, CACHE_BITS = 256, 262, 264, 284
NCAPINTS = 21
VENDORS = {b"GenuineIntel": 0, b"CyrixInstead": 1, b"AuthenticAMD": 2, b"UMC UMC UMC ": 3,
           b"CentaurHauls": 5, b"GenuineTMx86": 7, b"Geode by NSC": 8, b"HygonGenuine": 9,
           b"  Shanghai  ": 10}
X86_VENDOR_UNKNOWN = 0xFF
CPU_HZ = 2_000_000_000


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
def boot_cpu_data() -> bytes:
    """The structure's bytes."""
    data = bytearray(SIZE)
    level, ebx, ecx, edx = cpuid(0)
    vendor = struct.pack("<III", ebx, edx, ecx)
    eax1, ebx1, ecx1, edx1 = cpuid(1)
    family = eax1 >> 8 & 0xF
    model = eax1 >> 4 & 0xF
    if family == 0xF:
        family += eax1 >> 20 & 0xFF
    if family >= 6:
        model += (eax1 >> 16 & 0xF) << 4
    data[X86], data[VENDOR] = family, VENDORS.get(vendor, X86_VENDOR_UNKNOWN)
    data[MODEL], data[STEPPING] = model, eax1 & 0xF
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
    clflush = (ebx1 >> 8 & 0xFF) * 8 if edx1 & 1 << 19 else 64
    data[VIRT_BITS], data[PHYS_BITS] = virt, phys
    struct.pack_into("<II", data, EXTENDED_LEVEL, extended, level)
    struct.pack_into(f"<{NCAPINTS}I", data, CAPABILITY, *words)
    data[VENDOR_ID:VENDOR_ID + 12] = vendor
    brand = brand.split(b"\0")[0].strip()[:63]
    data[MODEL_ID:MODEL_ID + len(brand)] = brand
    struct.pack_into("<i", data, CACHE_ALIGNMENT, clflush)
    struct.pack_into("<Q", data, LOOPS_PER_JIFFY, CPU_HZ // HZ)
    struct.pack_into("<H", data, MAX_CORES, 1)
    struct.pack_into("<H", data, CLFLUSH_SIZE, clflush)
    struct.pack_into("<H", data, BOOTED_CORES, 1)
    data[CACHE_BITS] = phys
    return bytes(data)


def cpu_has(feature: int) -> bool:
    """test_bit(feature, boot_cpu_data.x86_capability)."""
    word, bit = divmod(feature, 32)
    if word >= NCAPINTS:
        return False
    return bool(struct.unpack_from("<I", boot_cpu_data(), CAPABILITY + 4 * word)[0] >> bit & 1)
