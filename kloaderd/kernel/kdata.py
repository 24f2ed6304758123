"""Kernel data a real kernel exports and modules read directly.

`kmalloc()` of a constant size reads `kmalloc_caches`, `__pa()` reads
`page_offset_base` and `phys_base`, `for_each_possible_cpu()` reads
`__cpu_possible_mask` and `nr_cpu_ids`.  Under a profile these are real memory of Linux's size for
that kernel (sizes follow its `.config`: `NR_CPUS`, the kmalloc cache
types), holding what they hold on a one-CPU machine.

An export that is data but not listed here stays a not-emulated stub: its
address is execute-only, so a module that *reads* it oopses naming it
("kloader: kernel object X is not emulated") instead of reading garbage.
Add an object here when its size and meaning are known for the releases
profiles cover (6.1 and later); an implementation module of
`kloaderd/kernel/api` may instead export it with `export_object`, which wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable


if TYPE_CHECKING:
    from .layouts import Layouts, Struct
    from .profile import KernelProfile

KMALLOC_SHIFT_HIGH = 13                # SLUB: PAGE_SHIFT + 1


@dataclass(frozen=True)
class DataExport:
    size: Callable[["KernelProfile"], int] | None = None
    # (profile, per_cpu_base, the kernel's Layouts) -> the initial bytes; None: zeroed
    value: Callable[["KernelProfile", int, "Layouts"], bytes] | None = None
    writable: bool = True
    # The Linux (major, minor) whose layout `value` writes (a struct); None: any release.
    layouts: tuple[int, int] | None = None
    # Instead of `size`: a structure the running kernel's layouts size (zeroed,
    # or `value` at its offsets, or filled by its subsystem); not backed where
    # its layout is not known.
    struct: "Struct | None" = None

    def holds_for(self, profile: "KernelProfile") -> bool:
        return self.layouts is None or self.layouts == profile.version

    def sized(self, profile: "KernelProfile", layouts: "Layouts") -> int | None:
        """Its size in this kernel, or None where it cannot be backed."""
        if self.struct is None:
            return self.size(profile) if self.size is not None else None
        return layouts[self.struct].size if layouts.has(self.struct) else None


def _home(spec: DataExport) -> object:
    return getattr(spec.size, "__module__", spec.struct)


def export_data(name: str, spec: DataExport) -> None:
    """A subsystem backs kernel data it owns (`init_net` is the network
    namespaces'), as `api.export_object` but sized by the profile."""
    old = DATA_EXPORTS.get(name)
    if old is not None and _home(old) != _home(spec):   # (a re-import is not)
        raise ValueError(f"kernel data {name} exported twice")
    DATA_EXPORTS[name] = spec


def _fixed(size: int) -> Callable[["KernelProfile"], int]:
    return lambda _profile: size


def _u64(value: int) -> Callable[["KernelProfile", int], bytes]:
    return lambda _profile, _base, _layouts: value.to_bytes(8, "little")


def _u32(value: int) -> Callable[["KernelProfile", int], bytes]:
    return lambda _profile, _base, _layouts: value.to_bytes(4, "little")


def nr_cpus(profile: "KernelProfile") -> int:
    return int(profile.config.get("CONFIG_NR_CPUS", "64"))


def _cpumask_size(profile: "KernelProfile") -> int:
    """struct cpumask: NR_CPUS bits, in unsigned longs."""
    return -(-nr_cpus(profile) // 64) * 8


def _cpu0_mask(_profile: "KernelProfile", _base: int, _layouts: "Layouts") -> bytes:
    return b"\x01"          # CPU 0 online, possible, present, active


def kmalloc_types(profile: "KernelProfile") -> int:
    """NR_KMALLOC_TYPES (include/linux/slab.h): normal, then one per option."""
    types = 1
    if profile.enabled("RANDOM_KMALLOC_CACHES"):
        types += 15                                       # RANDOM_KMALLOC_CACHES_NR
    types += 1                                            # KMALLOC_RECLAIM
    types += profile.enabled("ZONE_DMA")                  # KMALLOC_DMA
    types += profile.enabled("MEMCG_KMEM") or profile.enabled("MEMCG") and profile.version >= (6, 10)
    return types


def _boot_cpu_data(_profile: "KernelProfile", _base: int, layouts: "Layouts") -> bytes:
    from ..arch.x86.cpuinfo import boot_cpu_data
    return boot_cpu_data(layouts)


def _cpuinfo() -> "Struct":
    from ..arch.x86.cpuinfo import CPUINFO
    return CPUINFO


def _per_cpu_offset(_profile: "KernelProfile", base: int, _layouts: "Layouts") -> bytes:
    return base.to_bytes(8, "little")                     # [0]; the other CPUs do not exist


DATA_EXPORTS: dict[str, DataExport] = {
    # struct kmem_cache *kmalloc_caches[NR_KMALLOC_TYPES][KMALLOC_SHIFT_HIGH + 1]: the
    # caches are kloader's slab, which kmalloc_trace() reaches by size, so the pointers are NULL.
    "kmalloc_caches": DataExport(lambda p: kmalloc_types(p) * (KMALLOC_SHIFT_HIGH + 1) * 8),
    "phys_base": DataExport(_fixed(8), _u64(0)),
    "nr_cpu_ids": DataExport(_fixed(4), _u32(1)),
    "nr_node_ids": DataExport(_fixed(4), _u32(1)),
    "__num_online_cpus": DataExport(_fixed(4), _u32(1)),
    "__per_cpu_offset": DataExport(lambda p: 8 * nr_cpus(p), _per_cpu_offset),
    "__cpu_online_mask": DataExport(_cpumask_size, _cpu0_mask),
    "__cpu_possible_mask": DataExport(_cpumask_size, _cpu0_mask),
    "__cpu_present_mask": DataExport(_cpumask_size, _cpu0_mask),
    "__cpu_active_mask": DataExport(_cpumask_size, _cpu0_mask),
    # The machine: the CPU Unicorn emulates (arch/x86/cpuinfo.py), on no
    # hypervisor (X86_HYPER_NATIVE; CPUID 0x40000000 names none) and not a
    # Xen guest (XEN_NATIVE), without ACPI tables (acpi_disabled).
    "boot_cpu_data": DataExport(value=_boot_cpu_data, struct=_cpuinfo()),
    "x86_hyper_type": DataExport(_fixed(4), _u32(0)),
    "xen_domain_type": DataExport(_fixed(4), _u32(0)),
    "acpi_disabled": DataExport(_fixed(4), _u32(1)),
    # struct atomic_notifier_head {spinlock; head}: an empty chain modules
    # register on with atomic_notifier_chain_register (kernel/notifier.py);
    # no panic happens, so it is never called.
    "panic_notifier_list": DataExport(_fixed(16)),
    # atomic_long_t: what the machine has to give (the heap limit), set at boot (mm/page_alloc.py).
    "_totalram_pages": DataExport(_fixed(8)),
}
