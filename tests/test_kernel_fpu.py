"""The FPU in kernel code as the x86 crypto and RAID modules use it: which
xstate features the kernel enables on the emulated CPU, and the
kernel_fpu_begin_mask()/kernel_fpu_end() section around SSE code."""

from __future__ import annotations

import pytest

from guestcode import build
from kloaderd.arch.x86.cpuinfo import cpuid
from kloaderd.kernel.kernel import Kernel, KernelOptions

CODE = r"""
int cpu_has_xfeatures(unsigned long long xfeatures_needed, const char **feature_name);
void kernel_fpu_begin_mask(unsigned int kfpu_mask);
void kernel_fpu_end(void);
_Bool irq_fpu_usable(void);

const char *name;
char copy[64];
static void keep(void) { int i; for (i = 0; i < 63 && name[i]; i++) copy[i] = name[i]; copy[i] = 0; }
long has(unsigned long long features) { long r = cpu_has_xfeatures(features, &name); keep(); return r; }
long section(void)
{
    unsigned int odd = 0x1f00, mxcsr;               /* exceptions unmasked: not the default */
    long usable_before = irq_fpu_usable(), usable_inside;
    asm volatile("ldmxcsr %0" : : "m"(odd));
    kernel_fpu_begin_mask(2);                       /* KFPU_MXCSR */
    usable_inside = irq_fpu_usable();
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    kernel_fpu_end();
    return (long)mxcsr << 8 | usable_before << 4 | usable_inside << 1 | irq_fpu_usable();
}
long nested(void) { kernel_fpu_begin_mask(3); kernel_fpu_begin_mask(3); kernel_fpu_end(); kernel_fpu_end(); return 0; }
"""


@pytest.fixture
def kernel() -> Kernel:
    return Kernel(KernelOptions())


@pytest.fixture
def machine(kernel):
    return kernel.machine


@pytest.fixture
def g(machine):
    return build(machine, CODE)


def _name(machine, g) -> str:
    return machine.mem.read_cstr(g["copy"], 64).decode()


@pytest.mark.trio
async def test_xfeatures_are_what_the_cpu_offers_and_its_cpuid_backs(machine, g):
    assert await machine.call(g["has"], 0b11) == 1                       # x87 and SSE
    assert _name(machine, g) == "SSE registers"                          # the highest needed
    avx = bool(cpuid(1)[2] >> 28 & 1)
    assert await machine.call(g["has"], 0b111) == int(avx)
    assert _name(machine, g) == "AVX registers"                          # missing, or the highest needed
    assert await machine.call(g["has"], 1 << 17) == 0
    assert _name(machine, g) == "AMX Tile config"


@pytest.mark.trio
async def test_a_kernel_fpu_section_resets_mxcsr_and_is_not_reentered(machine, g, kernel):
    result = await machine.call(g["section"])
    assert result >> 8 == 0x1F80                          # MXCSR_DEFAULT inside the section
    assert result & 0xFF == 0b10001                       # usable before and after, not inside
    assert not [r for r in kernel.log.records() if r.text.startswith("WARNING")]
    await machine.call(g["nested"])
    warnings = [r.text for r in kernel.log.records() if r.text.startswith("WARNING")]
    # the second begin finds the CPU in use; the first end ended it, so the second has none
    assert [w.split(" at ")[1].split()[1].split("+")[0] for w in warnings] == \
        ["kernel_fpu_begin_mask", "kernel_fpu_end"]
