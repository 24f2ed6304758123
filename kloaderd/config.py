"""Constants the emulated kernel and the module build tools must agree on.

These are kloader's `include/generated/utsrelease.h` and `vermagic.h`: a module
built with `kmodbuild` carries `VERMAGIC`, and the kernel checks it on load.
Addresses are Linux's x86-64 layout (Documentation/arch/x86/x86_64/mm.rst).
"""

UTS_RELEASE = "6.6.0-kloader"
VERMAGIC = f"{UTS_RELEASE} SMP preempt mod_unload modversions "

MODULE_NAME_LEN = 56          # sizeof(struct module.name), as Linux (64 - sizeof(unsigned long))
PAGE_SIZE = 4096

KERNEL_TEXT_BASE = 0xFFFFFFFF81000000   # __START_KERNEL_map + 16 MiB
MODULES_VADDR = 0xFFFFFFFFA0000000      # __START_KERNEL_map + KERNEL_IMAGE_SIZE (512 MiB)
MODULES_END = 0xFFFFFFFFFF000000
MODULES_LEN = MODULES_END - MODULES_VADDR
