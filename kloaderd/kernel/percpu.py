"""The per-CPU area, as x86-64 SMP Linux lays it out (mm/percpu.c, arch/x86/kernel/setup_percpu.c).

Per-CPU variables are *offsets*: vmlinux links `.data..percpu` at address 0,
so `current_task` is a small number and `mov %gs:current_task, %rax` reads
CPU 0's copy through the GS base, which is that CPU's area
(`__per_cpu_offset[0]`, also kept in the per-CPU `this_cpu_off` for
`this_cpu_ptr()`).  Offset 0 holds `fixed_percpu_data`, whose
`stack_canary` gcc reads at `%gs:40`.

kloader's one CPU has one area at `per_cpu_base`:

* the core kernel's per-CPU exports a profile names (`PER_CPU_EXPORTS`),
  placed from `KERNEL_STATIC_START`;
* each module's `.data..percpu` (`percpu_modalloc()`): a chunk from
  `MODULE_START` on, its symbols resolved to the chunk's offset, its initial
  contents copied in (`percpu_modcopy()`), freed with the module;
* `alloc_percpu()`'s chunks (kloaderd/mm/percpu.py), from the same room.

What a per-CPU export holds is set where kloader knows its meaning (the CPU
number, `this_cpu_off`, the preempt count); the others start zeroed, as
`.data..percpu` does for variables without initialisers.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..config import PAGE_SIZE
from ..errors import KernelError
from .memory import RegionAllocator

if TYPE_CHECKING:
    from .cpu import Machine
    from .module import Module

AREA_SIZE = 8 << 20             # CPU 0's whole area: kernel statics, then module chunks
KERNEL_STATIC_START = 0x1000    # after fixed_percpu_data's page
MODULE_START = 0x10000          # PERCPU_MODULE_RESERVE lies after the kernel's statics
PREEMPT_ENABLED = 0x80000000    # x86 keeps PREEMPT_NEED_RESCHED inverted in the count


@dataclass(frozen=True)
class PerCpuExport:
    size: int
    align: int
    value: Callable[["Machine"], bytes] | None = None    # None: zeroed


def _u32(value: int) -> Callable[["Machine"], bytes]:
    return lambda _machine: value.to_bytes(4, "little")


def _this_cpu_off(machine: "Machine") -> bytes:
    return machine.per_cpu_base.to_bytes(8, "little")


def _pcpu_hot(machine: "Machine") -> bytes:
    """6.2+'s `struct pcpu_hot` (arch/x86/include/asm/current.h): current_task @0
    (written at each switch, see current_task), preempt_count @8, cpu_number @12."""
    return bytes(8) + PREEMPT_ENABLED.to_bytes(4, "little") + bytes(4) + bytes(48)


# x86-64 per-CPU exports kloader gives a meaning or honest zeroes, by name as
# Module.symvers spells them.  `current_task` (and pcpu_hot's) is written
# with the running task's task_struct at every switch (kernel/task_struct.py);
# NULL where the kernel's layouts do not place the members it fills.
PER_CPU_EXPORTS: dict[str, PerCpuExport] = {
    "fixed_percpu_data": PerCpuExport(48, 64),            # placed at offset 0, always
    "current_task": PerCpuExport(8, 8),
    "__preempt_count": PerCpuExport(4, 4, _u32(PREEMPT_ENABLED)),
    "cpu_number": PerCpuExport(4, 4, _u32(0)),
    "this_cpu_off": PerCpuExport(8, 8, _this_cpu_off),
    "pcpu_hot": PerCpuExport(64, 64, _pcpu_hot),
    "numa_node": PerCpuExport(4, 4, _u32(0)),
    "x86_cpu_to_apicid": PerCpuExport(2, 2),
}

# Exports that are another per-CPU variable under a second name: 6.8+'s
# `const_pcpu_hot` is `pcpu_hot` (vmlinux.lds.S's PROVIDE), declared const
# so that reads of `current` may be cached, and exported on its own.
PER_CPU_ALIASES = {"const_pcpu_hot": "pcpu_hot"}


class PerCpuArea:
    """CPU 0's per-CPU area: offsets handed out to the kernel's exports and
    to modules' `.data..percpu`, memory written through GS base + offset."""

    def __init__(self, machine: "Machine") -> None:
        self.machine = machine
        self.mem = machine.mem
        self.base = machine.per_cpu_base
        # The CPU maps the first page (fixed_percpu_data, the canary); the rest is ours.
        self.mem.map(self.base + PAGE_SIZE, AREA_SIZE - PAGE_SIZE, "rw-")
        self._static = KERNEL_STATIC_START
        self._modules = RegionAllocator(MODULE_START, AREA_SIZE)
        self._chunks: dict[int, int] = {}        # id(module) -> its chunk
        self._exported: dict[str, int] = {"fixed_percpu_data": 0}

    def export(self, name: str) -> int | None:
        """The offset of the core kernel's per-CPU `name` (placed, its value
        written, on first asking); None when kloader does not know `name`
        as per-CPU."""
        name = PER_CPU_ALIASES.get(name, name)
        spec = PER_CPU_EXPORTS.get(name)
        if spec is None:
            return None
        offset = self._exported.get(name)
        if offset is not None:
            return offset
        offset = self._exported[name] = -(-self._static // spec.align) * spec.align
        self._static = offset + spec.size
        assert self._static <= MODULE_START, "per-CPU exports outgrew their reserve"
        if spec.value is not None:
            self.mem.write(self.base + offset, spec.value(self.machine))
        return offset

    def offset_of(self, name: str) -> int | None:
        """Where the per-CPU export `name` was placed, if it was."""
        return self._exported.get(PER_CPU_ALIASES.get(name, name))

    def module_alloc(self, mod: "Module", size: int, align: int) -> int:
        """percpu_modalloc(): a chunk for the module's `.data..percpu`."""
        if align > PAGE_SIZE:
            raise KernelError(errno.ENOMEM, f"{mod.name}: per-cpu alignment {align} > {PAGE_SIZE}")
        try:
            offset = self._modules.alloc(max(size, 1))
        except MemoryError:
            raise KernelError(errno.ENOMEM, f"{mod.name}: Could not allocate {size} bytes "
                                            "percpu data") from None
        self._chunks[id(mod)] = offset
        return offset

    def module_copy(self, mod: "Module", offset: int, data: bytes | memoryview, size: int) -> None:
        """percpu_modcopy(): the section's initial contents into the chunk (its
        bss part zeroed: the chunk may have served a module before)."""
        self.mem.write(self.base + offset, bytes(data).ljust(size, b"\0")[:size])

    def dynamic_alloc(self, size: int) -> int | None:
        """pcpu_alloc(): a zeroed chunk from the same room as modules' (page
        granular, so any align up to PAGE_SIZE holds); None when full."""
        try:
            offset = self._modules.alloc(size)
        except MemoryError:
            return None
        self.mem.write(self.base + offset, bytes(size))
        return offset

    def dynamic_free(self, offset: int) -> None:
        self._modules.free(offset)

    def module_free(self, mod: "Module") -> None:
        offset = self._chunks.pop(id(mod), None)
        if offset is not None:
            self._modules.free(offset)
