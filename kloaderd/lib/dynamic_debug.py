"""lib/dynamic_debug.c: pr_debug()/dev_dbg() sites that are switched on.

A module's pr_debug() reaches `__dynamic_pr_debug` only when its site is
enabled: the static branch in front of the call follows the key in its
`struct _ddebug` (kernel/jump_label.py), and nothing in kloader (no
`dynamic_debug/control`) switches one, so sites compiled disabled stay so.  The line
is printed at KERN_DEBUG with the prefix the descriptor's flags ask for —
"[pid] " (t), "module:" (m), "function:" (f), "line:" (l), then a space —
as dynamic_emit_prefix() builds it.  `struct _ddebug` is read at the
kernel's offsets: modname, function, and after the `format` pointer the
word of bit fields lineno (18 bits), class_id (6) and flags (8) — bit
fields have no offsetof, so the word is found as the one after `format`.
"""

from __future__ import annotations

from typing import Any

from ..drivers.base.core import DEVICE, dev_name, driver_string
from .kobject import KOBJECT
from ..kernel.api import export
from ..kernel.api.printk import format_guest
from ..kernel.layouts import struct

DDEBUG = struct("struct _ddebug", "linux/dynamic_debug.h", "modname", "function", "format")
STRUCTS = (DDEBUG, DEVICE, KOBJECT)   # and dev_name()'s

POINTER = 8
INCL_MODNAME, INCL_FUNCNAME, INCL_LINENO, INCL_TID = 2, 4, 8, 16
KERN_DEBUG = b"\x017"


def _prefix(ctx: Any, desc: int) -> str:
    mem, at = ctx.mem, ctx.kernel.layouts[DDEBUG]
    bits = mem.read_u32(desc + at.format + POINTER)
    lineno, flags = bits & 0x3FFFF, bits >> 24
    text = f"[{ctx.task.pid}] " if flags & INCL_TID else ""
    after_tid = len(text)
    if flags & INCL_MODNAME:
        text += mem.read_cstr(mem.read_u64(desc + at.modname), 64).decode("utf-8", "replace") + ":"
    if flags & INCL_FUNCNAME:
        text += mem.read_cstr(mem.read_u64(desc + at.function), 128).decode("utf-8", "replace") + ":"
    if flags & INCL_LINENO:
        text += f"{lineno}:"
    if len(text) > after_tid:
        text += " "
    return text


@export("__dynamic_pr_debug", "void __dynamic_pr_debug(struct _ddebug *descriptor, "
        "const char *fmt, ...)", nargs=2, variadic=True)
def __dynamic_pr_debug(ctx: Any, desc: int, fmt: int) -> None:
    record = KERN_DEBUG + _prefix(ctx, desc).encode() + format_guest(ctx, fmt, ctx.va())[0]
    ctx.kernel.log.printk(record, getattr(ctx.module, "name", None))


@export("__dynamic_dev_dbg", "void __dynamic_dev_dbg(struct _ddebug *descriptor, "
        "const struct device *dev, const char *fmt, ...)", nargs=3, variadic=True)
def __dynamic_dev_dbg(ctx: Any, desc: int, dev: int, fmt: int) -> None:
    prefix = _prefix(ctx, desc)
    if dev:
        prefix += f"{driver_string(ctx, dev)} {dev_name(ctx, dev)}: "
    record = KERN_DEBUG + prefix.encode() + format_guest(ctx, fmt, ctx.va())[0]
    ctx.kernel.log.printk(record, getattr(ctx.module, "name", None))
