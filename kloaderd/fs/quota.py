"""fs/quota/dquot.c: quota formats (`register_quota_format`).

As Linux 6.1: the format is pushed on the front of `quota_formats` through
`qf_next` (in guest memory) and registration cannot fail; unregistering
unlinks it if present.  `struct quota_format_type` is read at the running
kernel's offsets.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.layouts import struct
from ..kernel.registry import owner_of

QFMT = struct("struct quota_format_type", "linux/quota.h", "qf_fmt_id", "qf_owner", "qf_next")
STRUCTS = (QFMT,)           # what these functions read at the kernel's offsets


class QuotaFormats:
    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.first = 0

    def unlink(self, fmt: int) -> None:
        mem, prev, node = self.kernel.mem, 0, self.first
        next_ = self.kernel.layouts[QFMT].qf_next
        while node:
            if node == fmt:
                after = mem.read_u64(fmt + next_)
                if prev:
                    mem.write_u64(prev + next_, after)
                else:
                    self.first = after
                return
            prev, node = node, mem.read_u64(node + next_)


@export("register_quota_format", "int register_quota_format(struct quota_format_type *fmt)",
        nargs=1)
def register_quota_format(ctx: Any, fmt: int) -> int:
    state, off = ctx.kernel.subsystem(QuotaFormats), ctx.kernel.layouts[QFMT]
    ctx.mem.write_u64(fmt + off.qf_next, state.first)
    state.first = fmt
    registry = ctx.kernel.registrations.registry("quota_format")
    registry.remove(fmt)
    registry.add(fmt, f"quota format {ctx.mem.read_u32(fmt + off.qf_fmt_id)}",
                 owner=owner_of(ctx.kernel, fmt, ctx.mem.read_u64(fmt + off.qf_owner)), address=fmt,
                 data=state, on_leftover=lambda entry: entry.data.unlink(entry.address))
    return 0


@export("unregister_quota_format", "void unregister_quota_format(struct quota_format_type *fmt)",
        nargs=1)
def unregister_quota_format(ctx: Any, fmt: int) -> None:
    ctx.kernel.subsystem(QuotaFormats).unlink(fmt)
    ctx.kernel.registrations.registry("quota_format").remove(fmt)
