"""Binary formats: `__register_binfmt` and `unregister_binfmt` (Linux's
fs/exec.c), the registry a module like binfmt_misc adds itself to.

As Linux: the `struct linux_binfmt` goes on `formats` through its `lh`
(in guest memory), at the head when `insert` is set (`insert_binfmt`), at
the tail otherwise (`register_binfmt`); a NULL format is a BUG
(`BUG_ON(!fmt)`).  Each format is a registration, reported if its module goes
without unregistering it.  kloader execs nothing: no format is ever called.

`struct linux_binfmt` is the same in Linux 6.1 and 6.12 (tools/struct_probe.py).
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.oops import KernelBug
from ..kernel.registry import record_listed
from ..lib.list import GuestList

LAYOUTS = ((6, 1), (6, 12))

LH, MODULE, LOAD_BINARY = 0, 16, 24


class Formats:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


@export("__register_binfmt", "void __register_binfmt(struct linux_binfmt *fmt, int insert)", nargs=2)
def __register_binfmt(ctx: Any, fmt: int, insert: int) -> None:
    if not fmt:
        raise KernelBug("fs/exec.c:85")                 # BUG_ON(!fmt)
    formats = ctx.kernel.subsystem(Formats).list
    if insert & 0xFFFFFFFF:
        formats.add(ctx, fmt + LH)
    else:
        formats.add_tail(ctx, fmt + LH)
    record_listed(ctx.kernel, "binfmt", fmt, f"binary format {fmt:#x} "
                  f"({ctx.kernel.symbolize(ctx.mem.read_u64(fmt + LOAD_BINARY)) or 'no load_binary'})",
                  formats, LH, ctx.mem.read_u64(fmt + MODULE))


@export("unregister_binfmt", "void unregister_binfmt(struct linux_binfmt *fmt)", nargs=1)
def unregister_binfmt(ctx: Any, fmt: int) -> None:
    ctx.kernel.subsystem(Formats).list.delete(ctx, fmt + LH)
    ctx.kernel.registrations.registry("binfmt").remove(fmt)
