"""fs/quota/dquot.c: quota formats (`register_quota_format`).

As Linux 6.1: the format is pushed on the front of `quota_formats` through
`qf_next` (in guest memory) and registration cannot fail; unregistering
unlinks it if present.  Layout: quota_format_type {qf_fmt_id@0,
qf_owner@16, qf_next@24}.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.registry import owner_of

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

FMT_ID, OWNER, NEXT = 0, 16, 24


class QuotaFormats:
    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.first = 0

    def unlink(self, fmt: int) -> None:
        mem, prev, node = self.kernel.mem, 0, self.first
        while node:
            if node == fmt:
                after = mem.read_u64(fmt + NEXT)
                if prev:
                    mem.write_u64(prev + NEXT, after)
                else:
                    self.first = after
                return
            prev, node = node, mem.read_u64(node + NEXT)


@export("register_quota_format", "int register_quota_format(struct quota_format_type *fmt)",
        nargs=1)
def register_quota_format(ctx: Any, fmt: int) -> int:
    state = ctx.kernel.subsystem(QuotaFormats)
    ctx.mem.write_u64(fmt + NEXT, state.first)
    state.first = fmt
    registry = ctx.kernel.registrations.registry("quota_format")
    registry.remove(fmt)
    registry.add(fmt, f"quota format {ctx.mem.read_u32(fmt + FMT_ID)}",
                 owner=owner_of(ctx.kernel, fmt, ctx.mem.read_u64(fmt + OWNER)), address=fmt,
                 data=state, on_leftover=lambda entry: entry.data.unlink(entry.address))
    return 0


@export("unregister_quota_format", "void unregister_quota_format(struct quota_format_type *fmt)",
        nargs=1)
def unregister_quota_format(ctx: Any, fmt: int) -> None:
    ctx.kernel.subsystem(QuotaFormats).unlink(fmt)
    ctx.kernel.registrations.registry("quota_format").remove(fmt)
