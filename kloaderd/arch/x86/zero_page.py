"""arch/x86/kernel/head_64.S's `empty_zero_page`: the page of zeroes
`ZERO_PAGE(0)` names (libchacha20poly1305 encrypts it for its Poly1305 key,
scatterlists point at it for padding).

As in Linux it is one page-aligned page of the kernel image, and, as every
page of the image, also seen through the direct map: a module's inline
`page_address(ZERO_PAGE(0))` computes `__va(__pa(empty_zero_page))` from
`phys_base` (0) and `page_offset_base`, which lands on that alias.  Both
views are read-only here (Linux's is writable, and nothing may write it).
Where kloader differs: the page's `struct page` in the memmap is not backed,
so `get_page(ZERO_PAGE(0))` faults rather than count a reference.
"""

from __future__ import annotations

from typing import Any

from ...config import PAGE_OFFSET, PAGE_SIZE
from ...kernel.api import at_boot, export_object

START_KERNEL_MAP = 0xFFFFFFFF80000000      # __START_KERNEL_map: the image's virtual base, physical 0

export_object("empty_zero_page", "unsigned long empty_zero_page[PAGE_SIZE / sizeof(unsigned long)]",
              PAGE_SIZE, align=PAGE_SIZE)


@at_boot
def direct_map_alias(kernel: Any) -> None:
    """Show the zero page at its direct-map address, __va(__pa(empty_zero_page))."""
    address = kernel.machine.kernel_symbols()["empty_zero_page"]
    kernel.mem.alias(PAGE_OFFSET + address - START_KERNEL_MAP, address, PAGE_SIZE, "r--")
