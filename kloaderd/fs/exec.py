"""Binary formats: `__register_binfmt` and `unregister_binfmt` (Linux's
fs/exec.c), the registry a module like binfmt_misc adds itself to.

As Linux: the `struct linux_binfmt` goes on `formats` through its `lh`
(in guest memory), at the head when `insert` is set (`insert_binfmt`), at
the tail otherwise (`register_binfmt`); a NULL format is a BUG
(`BUG_ON(!fmt)`).  Each format is a registration, reported if its module goes
without unregistering it.  kloader execs nothing: no format is ever called.

`struct linux_binfmt` is read at the running kernel's offsets
(kloaderd/kernel/layouts.py).
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.layouts import struct
from ..kernel.oops import KernelBug
from ..kernel.registry import record_listed
from ..lib.list import GuestList

BINFMT = struct("struct linux_binfmt", "linux/binfmts.h", "lh", "module", "load_binary")
STRUCTS = (BINFMT,)         # what these functions read at the kernel's offsets


class Formats:
    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)


@export("__register_binfmt", "void __register_binfmt(struct linux_binfmt *fmt, int insert)", nargs=2)
def __register_binfmt(ctx: Any, fmt: int, insert: int) -> None:
    if not fmt:
        raise KernelBug("fs/exec.c:85")                 # BUG_ON(!fmt)
    formats, off = ctx.kernel.subsystem(Formats).list, ctx.kernel.layouts[BINFMT]
    if insert & 0xFFFFFFFF:
        formats.add(ctx, fmt + off.lh)
    else:
        formats.add_tail(ctx, fmt + off.lh)
    loader = ctx.kernel.symbolize(ctx.mem.read_u64(fmt + off.load_binary)) or "no load_binary"
    record_listed(ctx.kernel, "binfmt", fmt, f"binary format {fmt:#x} ({loader})",
                  formats, off.lh, ctx.mem.read_u64(fmt + off.module))


@export("unregister_binfmt", "void unregister_binfmt(struct linux_binfmt *fmt)", nargs=1)
def unregister_binfmt(ctx: Any, fmt: int) -> None:
    ctx.kernel.subsystem(Formats).list.delete(ctx, fmt + ctx.kernel.layouts[BINFMT].lh)
    ctx.kernel.registrations.registry("binfmt").remove(fmt)
