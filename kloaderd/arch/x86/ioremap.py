"""Mapping device memory (Linux's arch/x86/mm/ioremap.c, lib/devres.c's
managed mappings) on a machine without the device.

`ioremap(phys, size)` (and its `_uc`, `_wc`, `_wt`, `_cache`, `_prot`,
`_encrypted` variants, which differ only in caching) answers as x86's
`__ioremap_caller` does: NULL for a zero size or a range that wraps; a
physical address beyond the CPU's `x86_phys_bits` is "ioremap: invalid
physical address" and NULL; a range that overlaps "System RAM" in
/proc/iomem is WARN_ONCE "ioremap on RAM at ..." and NULL.  Any other range
is mapped, in vmalloc space, page aligned with the offset kept.  Nothing
is behind it on kloader's machine — no device decodes those addresses — so
each access answers as such a bus cycle does on a PC: a read is all ones
(0xff, 0xffff, 0xffffffff, ...: the master abort of a PCI read), a write
goes nowhere.  Every page of every mapping is one device page of the
emulated machine (`uc.mmio_map`) whose callbacks answer that way, for the
CPU's accesses (readl/writel are plain moves) and kernel functions' alike.

`iounmap` of an address no ioremap returned is "iounmap: bad address".  A
mapping still there when its module is freed is a leaked registration
("ioremap"), unmapped.

`devm_ioremap` (`_uc`, `_wc`), `devm_iounmap` and `devm_ioremap_resource`
tie a mapping (and the resource's region) to a device: released when it
is unbound.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...config import PAGE_SIZE, PHYS_END, VMALLOC_END
from ...kernel.api import export
from ...kernel.memory import RegionAllocator
from ...kernel.panic import warn_once
from ...kernel.printk import KERN_ERR, KERN_WARNING
from ...kernel.resource import (IORESOURCE_MEM, IORESOURCE_SYSTEM_RAM, IORESOURCE_TYPE_BITS, RESOURCE,
                                STRUCTS as RESOURCE_STRUCTS, __devm_release_region, devm_region,
                                format_resource, resources, then)
from .cpuinfo import cpu

if TYPE_CHECKING:
    from ...kernel.kernel import Kernel

STRUCTS = RESOURCE_STRUCTS            # what these functions read at the kernel's offsets
IOREMAP_START = 0xFFFFE00000000000     # the top of vmalloc space: apart from the kernel stacks below
DEVICE_PAGE = PHYS_END                 # the physical page nothing decodes (outside RAM's allocator)
IOREMAP_MAX = 1 << 30                  # the largest mapping kloader makes (pages are table entries)
_MASK64 = (1 << 64) - 1
MAX_ERRNO = 4095


@dataclass(eq=False)
class Mapping:
    phys: int                          # the first byte asked for
    size: int                          # bytes asked for
    base: int                          # the first mapped page
    pages: int


class IoRemap:
    """The device page and the mappings of one kernel."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.area = RegionAllocator(IOREMAP_START, VMALLOC_END)
        self.mappings: dict[int, Mapping] = {}          # by the address returned
        self.registry = kernel.registrations.registry("ioremap")
        self.phys_bits = cpu().phys_bits
        kernel.machine.uc.mmio_map(DEVICE_PAGE, PAGE_SIZE, _read_nothing, None, _write_nowhere, None)

    def map(self, phys: int, size: int, module: Any) -> int:
        offset = phys & (PAGE_SIZE - 1)
        pages = (offset + size + PAGE_SIZE - 1) // PAGE_SIZE
        base = self.area.alloc((pages + 1) * PAGE_SIZE)        # and a guard page, as get_vm_area
        self.kernel.mem.map_io(base, pages * PAGE_SIZE, DEVICE_PAGE)
        addr = base + offset
        self.mappings[addr] = Mapping(phys, size, base, pages)
        self.registry.add(addr, f"ioremap of [mem {phys:#010x}-{phys + size - 1:#010x}]", owner=module,
                          on_leftover=lambda entry: self.unmap(entry.key))
        return addr

    def unmap(self, addr: int) -> bool:
        mapping = self.mappings.pop(addr, None)
        if mapping is None:
            return False
        self.registry.remove(addr)
        self.kernel.mem.unmap(mapping.base, mapping.pages * PAGE_SIZE)
        self.area.free(mapping.base)
        return True


def _read_nothing(uc: Any, offset: int, size: int, data: Any) -> int:
    return (1 << (8 * size)) - 1


def _write_nowhere(uc: Any, offset: int, size: int, value: int, data: Any) -> None:
    return None


def ioremaps(kernel: "Kernel") -> IoRemap:
    return kernel.subsystem(IoRemap)


def _who(ctx: Any) -> str | None:
    return getattr(ctx.module, "name", None)


def _overlaps_ram(kernel: "Kernel", first: int, last: int) -> bool:
    """__ioremap_check_mem: does any System RAM entry of iomem meet the range?"""
    lay = kernel.layouts[RESOURCE]
    table, mem = resources(kernel), kernel.mem
    for res, _depth in table.entries(table.iomem):
        if mem.read_u64(res + lay.flags) & IORESOURCE_SYSTEM_RAM == IORESOURCE_SYSTEM_RAM and \
                mem.read_u64(res + lay.start) <= last and mem.read_u64(res + lay.end) >= first:
            return True
    return False


def ioremap_caller(ctx: Any, phys: int, size: int) -> int:
    """__ioremap_caller: the mapped address, or 0 (NULL)."""
    kernel = ctx.kernel
    table = ioremaps(kernel)
    last = phys + size - 1
    if not size or last > _MASK64:
        return 0
    if phys >> table.phys_bits:
        kernel.log.emit(KERN_WARNING, f"ioremap: invalid physical address {phys:x}", _who(ctx))
        warn_once(ctx, None, "arch/x86/mm/ioremap.c:199", "ioremap")
        return 0
    if _overlaps_ram(kernel, phys, last):
        warn_once(ctx, f"ioremap on RAM at 0x{phys:016x} - 0x{last:016x}", "arch/x86/mm/ioremap.c:210", "ioremap")
        return 0
    if size > IOREMAP_MAX:
        kernel.log.emit(KERN_ERR, f"ioremap: kloader maps at most {IOREMAP_MAX:#x} bytes, "
                                  f"not {size:#x}", _who(ctx))
        return 0
    return table.map(phys, size, ctx.module)


def _export_ioremap(name: str, gpl: bool = False) -> None:
    def impl(ctx: Any, phys: int, size: int) -> int:
        return ioremap_caller(ctx, phys, size)
    impl.__qualname__ = impl.__name__ = name
    export(name, f"void __iomem *{name}(resource_size_t phys_addr, unsigned long size)", nargs=2,
           gpl=gpl)(impl)


for _name in ("ioremap", "ioremap_wc", "ioremap_wt", "ioremap_cache", "ioremap_encrypted"):
    _export_ioremap(_name)
_export_ioremap("ioremap_uc", gpl=True)


@export("ioremap_prot", "void __iomem *ioremap_prot(resource_size_t phys_addr, unsigned long size, "
        "unsigned long prot_val)", nargs=3)
def ioremap_prot(ctx: Any, phys: int, size: int, prot: int) -> int:
    return ioremap_caller(ctx, phys, size)


@export("iounmap", "void iounmap(volatile void __iomem *addr)", nargs=1)
def iounmap(ctx: Any, addr: int) -> None:
    if addr < IOREMAP_START:
        return                           # below high_memory (NULL, a direct-map address): nothing
    if not ioremaps(ctx.kernel).unmap(addr):
        ctx.kernel.log.emit(KERN_ERR, f"iounmap: bad address {addr:016x}", _who(ctx))


# -- managed mappings (lib/devres.c) ----------------------------------------------

def devm_map(ctx: Any, dev: int, phys: int, size: int) -> int:
    from ...drivers.base.devres import Devres, devres
    addr = ioremap_caller(ctx, phys, size)
    if addr:
        table = ioremaps(ctx.kernel)
        devres(ctx.kernel).add(dev, Devres("ioremap", (addr,), free=lambda: table.unmap(addr)))
    return addr


def _export_devm(name: str, gpl: bool = False) -> None:
    def impl(ctx: Any, dev: int, phys: int, size: int) -> int:
        return devm_map(ctx, dev, phys, size)
    impl.__qualname__ = impl.__name__ = name
    export(name, f"void __iomem *{name}(struct device *dev, resource_size_t offset, resource_size_t size)",
           nargs=3, gpl=gpl)(impl)


_export_devm("devm_ioremap")
_export_devm("devm_ioremap_wc")
_export_devm("devm_ioremap_uc", gpl=True)


@export("devm_iounmap", "void devm_iounmap(struct device *dev, void __iomem *addr)", nargs=2)
def devm_iounmap(ctx: Any, dev: int, addr: int) -> None:
    from ...drivers.base.devres import take
    take(ctx, dev, "ioremap", (addr,), "lib/devres.c:104", "devm_iounmap")
    iounmap(ctx, addr)


def _err_ptr(code: int) -> int:
    return (-code) & _MASK64


def ioremap_resource(ctx: Any, dev: int, res: int) -> Any:
    """__devm_ioremap_resource: the resource's region requested and
    mapped for the device, or ERR_PTR(-EINVAL / -EBUSY / -ENOMEM) with
    Linux's dev_err."""
    lay = ctx.kernel.layouts[RESOURCE]
    from ...drivers.base.core import dev_name, driver_string
    kernel, mem = ctx.kernel, ctx.mem

    def dev_err(text: str) -> None:
        kernel.log.emit(KERN_ERR, f"{driver_string(ctx, dev)} {dev_name(ctx, dev)}: {text}", _who(ctx))
    if not res or mem.read_u64(res + lay.flags) & IORESOURCE_TYPE_BITS != IORESOURCE_MEM:
        dev_err("invalid resource " + (format_resource(kernel, res) if res else "(null)"))
        return _err_ptr(errno.EINVAL)
    start, end = mem.read_u64(res + lay.start), mem.read_u64(res + lay.end)
    size = (end - start + 1) & _MASK64
    name = mem.read_u64(res + lay.name)
    if not name:
        name = kernel.slab.alloc(len(dev_name(ctx, dev)) + 1, _who(ctx))   # devm_kasprintf("%s", dev_name)
        if not name:
            return _err_ptr(errno.ENOMEM)
        mem.write(name, dev_name(ctx, dev).encode() + b"\0")
        from ...drivers.base.devres import Devres, devres
        devres(kernel).add(dev, Devres("kmalloc", (name,)))

    def mapped(region: int) -> int:
        if not region:
            dev_err(f"can't request region for resource {format_resource(kernel, res)}")
            return _err_ptr(errno.EBUSY)
        addr = devm_map(ctx, dev, start, size)
        if not addr:
            dev_err(f"ioremap failed for resource {format_resource(kernel, res)}")
            __devm_release_region(ctx, dev, resources(kernel).iomem, start, size)
            return _err_ptr(errno.ENOMEM)
        return addr
    return then(devm_region(ctx, dev, resources(kernel).iomem, start, size, name), mapped)


@export("devm_ioremap_resource", "void __iomem *devm_ioremap_resource(struct device *dev, "
        "const struct resource *res)", nargs=2)
def devm_ioremap_resource(ctx: Any, dev: int, res: int) -> Any:
    return ioremap_resource(ctx, dev, res)
