"""Port I/O on a machine without devices: x86's `in` and `out`.

A module's `inb`/`outb` (and `inw`, `inl`, the `_p` and string forms) are
the CPU's own instructions, inlined from <asm/io.h>.  Nothing on kloader's
machine decodes any port — not even the legacy ones /proc/ioports lists as
reserved (the PIC, the timer, the keyboard controller are not emulated) —
so every port answers as an unclaimed one does on a PC: `in` reads all
ones (0xff, 0xffff, 0xffffffff), `out` goes nowhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unicorn import UC_HOOK_INSN
from unicorn.x86_const import UC_X86_INS_IN, UC_X86_INS_OUT

from ...kernel.api import at_boot

if TYPE_CHECKING:
    from ...kernel.kernel import Kernel


def port_read(port: int, size: int) -> int:
    """What a read of `size` bytes from `port` returns: no device, all ones."""
    return (1 << (8 * size)) - 1


def _in(uc: Any, port: int, size: int, data: Any) -> int:
    return port_read(port, size)


def _out(uc: Any, port: int, size: int, value: int, data: Any) -> None:
    return None


@at_boot
def _port_io(kernel: "Kernel") -> None:
    uc = kernel.machine.uc
    uc.hook_add(UC_HOOK_INSN, _in, None, 1, 0, UC_X86_INS_IN)
    uc.hook_add(UC_HOOK_INSN, _out, None, 1, 0, UC_X86_INS_OUT)
