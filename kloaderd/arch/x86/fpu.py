"""The FPU in kernel code (Linux's arch/x86/kernel/fpu/core.c and
xstate.c): what the x86 crypto and RAID modules ask before using SSE/AVX
and call around the code that does.

`cpu_has_xfeatures()` answers from the xstate features the kernel enables
on this CPU (`fpu_kernel_cfg.max_features`): those CPUID leaf 0xd offers
whose CPUID feature is present (AVX registers need AVX, ...), as
fpu__init_system_xstate() keeps them; with its name table for the report
modules print ("x86/fpu: ... AVX registers not supported").
`kernel_fpu_begin_mask()` disables preemption, marks the CPU in kernel FPU
use (a second begin is a WARNING) and resets MXCSR (KFPU_MXCSR) and the x87
control word (KFPU_387) as Linux does; `kernel_fpu_end()` undoes it (an end
without a begin is a WARNING).  Each task's FPU and SSE registers are its
own already (the CPU context saved at every switch), so there is no user
state to save.  `irq_fpu_usable()` is 6.1's: not while the CPU is in
kernel FPU use.
"""

from __future__ import annotations

from typing import Any

from unicorn import x86_const as X

from ...kernel.api import export
from ...kernel.panic import warn_once
from .cpuinfo import cpu_has, cpuid

KFPU_387, KFPU_MXCSR = 1, 2
MXCSR_DEFAULT = 0x1F80
FPU_CW_DEFAULT = 0x37F
X86_FEATURE_XSAVE = 4 * 32 + 26

# xfeature number -> the X86_FEATURE_* it needs (xsave_cpuid_features[]).
XFEATURE_CPUID = {0: 0 * 32 + 0,           # x87: FPU
                  1: 0 * 32 + 25,          # SSE: XMM
                  2: 4 * 32 + 28,          # YMM: AVX
                  3: 9 * 32 + 14,          # BNDREGS: MPX
                  4: 9 * 32 + 14,          # BNDCSR: MPX
                  5: 9 * 32 + 16,          # OPMASK: AVX512F
                  6: 9 * 32 + 16,          # ZMM_Hi256: AVX512F
                  7: 9 * 32 + 16,          # Hi16_ZMM: AVX512F
                  9: 16 * 32 + 3}          # PKRU: PKU
XFEATURE_NAMES = ("x87 floating point registers", "SSE registers", "AVX registers",
                  "MPX bounds registers", "MPX CSR", "AVX-512 opmask", "AVX-512 Hi256",
                  "AVX-512 ZMM_Hi256", "Processor Trace (unused)", "Protection Keys User registers",
                  "PASID state", "unknown xstate feature", "unknown xstate feature",
                  "unknown xstate feature", "unknown xstate feature", "unknown xstate feature",
                  "unknown xstate feature", "AMX Tile config", "AMX Tile Data",
                  "unknown xstate feature")


def max_features() -> int:
    """fpu_kernel_cfg.max_features: x87 and SSE without XSAVE; else what
    leaf 0xd offers of the features whose CPUID bit is set."""
    if not cpu_has(X86_FEATURE_XSAVE):
        return 0b11
    offered = cpuid(0xD, 0)[0] | cpuid(0xD, 0)[3] << 32
    return sum(1 << bit for bit, feature in XFEATURE_CPUID.items()
               if offered >> bit & 1 and cpu_has(feature))


class KernelFpu:
    """in_kernel_fpu of the one CPU, and the names cpu_has_xfeatures hands out."""

    def __init__(self, kernel: Any) -> None:
        self.in_use = False
        self.names: list[int] = []
        for name in XFEATURE_NAMES:
            text = name.encode() + b"\0"
            address = kernel.slab.alloc(len(text), None)
            kernel.mem.write(address, text)
            self.names.append(address)


@export("cpu_has_xfeatures", "int cpu_has_xfeatures(u64 xfeatures_needed, const char **feature_name)",
        nargs=2, gpl=True)
def cpu_has_xfeatures(ctx: Any, needed: int, feature_name: int) -> int:
    """1 when every feature needed is enabled; *feature_name the highest
    missing one's name (or the highest needed, all there)."""
    missing = needed & ~max_features()
    if feature_name:
        shown = missing or needed
        index = min(shown.bit_length() - 1, len(XFEATURE_NAMES) - 1)
        names = ctx.kernel.subsystem(KernelFpu).names
        ctx.mem.write_u64(feature_name, names[index] if index >= 0 else names[-1])
    return 0 if missing else 1


@export("kernel_fpu_begin_mask", "void kernel_fpu_begin_mask(unsigned int kfpu_mask)", nargs=1, gpl=True)
def kernel_fpu_begin_mask(ctx: Any, mask: int) -> None:
    fpu = ctx.kernel.subsystem(KernelFpu)
    ctx.task.preempt_count += 1
    if fpu.in_use:
        warn_once(ctx, None, "arch/x86/kernel/fpu/core.c:424", "kernel_fpu_begin_mask")
    fpu.in_use = True
    uc = ctx.machine.uc
    if mask & KFPU_MXCSR:
        uc.reg_write(X.UC_X86_REG_MXCSR, MXCSR_DEFAULT)
    if mask & KFPU_387:
        uc.reg_write(X.UC_X86_REG_FPCW, FPU_CW_DEFAULT)


@export("kernel_fpu_end", "void kernel_fpu_end(void)", nargs=0, gpl=True)
def kernel_fpu_end(ctx: Any) -> None:
    fpu = ctx.kernel.subsystem(KernelFpu)
    if not fpu.in_use:
        warn_once(ctx, None, "arch/x86/kernel/fpu/core.c:448", "kernel_fpu_end")
    fpu.in_use = False
    ctx.task.preempt_count = max(0, ctx.task.preempt_count - 1)


@export("irq_fpu_usable", "bool irq_fpu_usable(void)", nargs=0)
def irq_fpu_usable(ctx: Any) -> int:
    return int(not ctx.kernel.subsystem(KernelFpu).in_use)
