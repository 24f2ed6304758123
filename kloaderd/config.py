"""Constants the emulated kernel and the module build tools must agree on.

These are kloader's `include/generated/utsrelease.h` and `vermagic.h`: a module
built with `kmodbuild` carries `VERMAGIC`, and the kernel checks it on load.
Addresses are Linux's x86-64 layout (Documentation/arch/x86/x86_64/mm.rst).
"""

UTS_RELEASE = "6.6.0-kloader"
VERMAGIC = f"{UTS_RELEASE} SMP preempt mod_unload modversions "

# include/linux/license.h, license_is_gpl_compatible(): the kernel decides
# taints and GPL-only symbol access by it, kmodbuild (as modpost) warns by it.
GPL_COMPATIBLE = frozenset({
    "GPL", "GPL v2", "GPL and additional rights",
    "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL",
})

MODULE_NAME_LEN = 56          # sizeof(struct module.name), as Linux (64 - sizeof(unsigned long))
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT   # 4096: the x86-64 base page

KERNEL_TEXT_BASE = 0xFFFFFFFF81000000   # __START_KERNEL_map + 16 MiB
MODULES_VADDR = 0xFFFFFFFFA0000000      # __START_KERNEL_map + KERNEL_IMAGE_SIZE (512 MiB)
MODULES_END = 0xFFFFFFFFFF000000
MODULES_LEN = MODULES_END - MODULES_VADDR

# The rest of the emulated machine's map (Documentation/arch/x86/x86_64/mm.rst).
PAGE_OFFSET = 0xFFFF888000000000        # the direct map of physical memory
PER_CPU_BASE = 0xFFFF88807FC00000       # CPU 0's per-CPU area: the GS base (canary at %gs:40)
KERNEL_HEAP_BASE = 0xFFFF888100000000   # the slab allocator grows its chunks from here
KERNEL_HEAP_END = 0xFFFF888900000000
VMALLOC_START = 0xFFFFC90000000000      # kernel stacks live here, between guard pages
VMALLOC_END = 0xFFFFE8FFFFFFF000
VMEMMAP_START = 0xFFFFEA0000000000      # the memmap: struct page of each page of the direct map
THREAD_SIZE = 16384                     # a task's kernel stack (x86-64, no KASAN)
# Physical addresses Unicorn regions are mapped at (never seen by the guest).
PHYS_BASE = 0x0000000001000000
PHYS_END = 0x0000001000000000
HZ = 250
INITIAL_JIFFIES = (-300 * HZ) & 0xFFFFFFFF
