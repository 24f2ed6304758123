"""lib/iomap.c: `ioread*`/`iowrite*` over a cookie that is either a port
(`ioport_map`: the port plus PIO_OFFSET) or an ioremap'd address.

A port cookie goes to port I/O, where nothing answers (all ones; see
arch/x86/ioport.py); an address is read and written as memory, so an
ioremap'd range answers as its device page does (all ones, writes dropped)
and any other mapped address as what is there.  A cookie below PIO_OFFSET
is Linux's "Bad IO access at port %#lx (%s)" (WARN, ten times at most) and
reads all ones.  `ioport_map` of a port past 0xffff is NULL.
"""

from __future__ import annotations

from typing import Any

from ..arch.x86.ioport import port_read
from ..kernel.api import export
from ..kernel.panic import warn

PIO_OFFSET, PIO_MASK, PIO_RESERVED = 0x10000, 0xFFFF, 0x40000
BAD_IO_REPORTS = 10
_REP_MAX = 1 << 20           # the most elements one _rep call moves


class BadIo:
    """bad_io_access's `static int count = 10`, per kernel."""

    def __init__(self, kernel: Any) -> None:
        self.left = BAD_IO_REPORTS


def _kind(ctx: Any, addr: int, access: str) -> str:
    """IO_COND: "mmio", "pio" or "bad" (reported)."""
    if addr >= PIO_RESERVED:
        return "mmio"
    if addr > PIO_OFFSET:
        return "pio"
    state = ctx.kernel.subsystem(BadIo)
    if state.left:
        state.left -= 1
        warn(ctx, f"Bad IO access at port {addr:#x} ({access})", "lib/iomap.c:47", None)
    return "bad"


def _read(ctx: Any, addr: int, size: int, big: bool, access: str) -> int:
    kind = _kind(ctx, addr, access)
    if kind != "mmio":
        return port_read(addr & PIO_MASK, size)
    return int.from_bytes(ctx.mem.read(addr, size), "big" if big else "little")


def _write(ctx: Any, value: int, addr: int, size: int, big: bool, access: str) -> None:
    if _kind(ctx, addr, access) == "mmio":
        ctx.mem.write(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "big" if big else "little"))


def _export_rw(bits: int, big: bool) -> None:
    size, suffix = bits // 8, "be" if big else ""
    ctype = {1: "u8", 2: "u16", 4: "u32"}[size]
    read_name, write_name = f"ioread{bits}{suffix}", f"iowrite{bits}{suffix}"
    port_read_op = {1: "inb", 2: "inw", 4: "inl"}[size]
    port_write_op = {1: "outb", 2: "outw", 4: "outl"}[size]

    def reader(ctx: Any, addr: int) -> int:
        return _read(ctx, addr, size, big, port_read_op)

    def writer(ctx: Any, value: int, addr: int) -> None:
        _write(ctx, value, addr, size, big, port_write_op)
    reader.__qualname__ = reader.__name__ = read_name
    writer.__qualname__ = writer.__name__ = write_name
    export(read_name, f"unsigned int {read_name}(const void __iomem *addr)", nargs=1)(reader)
    export(write_name, f"void {write_name}({ctype} val, void __iomem *addr)", nargs=2)(writer)

    if big:
        return

    def read_rep(ctx: Any, addr: int, dst: int, count: int) -> None:
        count = min(count, _REP_MAX)
        data = b"".join(_read(ctx, addr, size, False, port_read_op).to_bytes(size, "little")
                        for _ in range(count))
        ctx.mem.write(dst, data)

    def write_rep(ctx: Any, addr: int, src: int, count: int) -> None:
        count = min(count, _REP_MAX)
        data = ctx.mem.read(src, count * size)
        for i in range(count):
            _write(ctx, int.from_bytes(data[i * size:(i + 1) * size], "little"), addr, size, False, port_write_op)
    read_rep.__qualname__ = read_rep.__name__ = f"{read_name}_rep"
    write_rep.__qualname__ = write_rep.__name__ = f"{write_name}_rep"
    export(f"{read_name}_rep", f"void {read_name}_rep(const void __iomem *addr, void *dst, unsigned long count)",
           nargs=3)(read_rep)
    export(f"{write_name}_rep", f"void {write_name}_rep(void __iomem *addr, const void *src, "
           "unsigned long count)", nargs=3)(write_rep)


for _bits in (8, 16, 32):
    _export_rw(_bits, False)
for _bits in (16, 32):
    _export_rw(_bits, True)


@export("ioport_map", "void __iomem *ioport_map(unsigned long port, unsigned int nr)", nargs=2)
def ioport_map(ctx: Any, port: int, nr: int) -> int:
    return 0 if port > PIO_MASK else port + PIO_OFFSET


@export("ioport_unmap", "void ioport_unmap(void __iomem *addr)", nargs=1)
def ioport_unmap(ctx: Any, addr: int) -> None:
    return None
