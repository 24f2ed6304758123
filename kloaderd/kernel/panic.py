"""kernel/panic.c: WARN() reports made by kernel functions, and `__warn_printk`.

A kernel function that finds its caller misbehaving (a list corrupted, a
refcount saturated, a mutex unlocked by a stranger) warns as Linux's
`__warn()` does: the cut-here line, the message, `WARNING: CPU: 0 PID: N at
FILE:LINE FUNCTION+0x0/0x10`, the call trace, the end marker, and taint W.
Where it differs: the location names the kernel function's stub in the
emulated kernel (there is no C source line behind it); FILE:LINE is the one
Linux reports for the same WARN, so a search for it finds Linux's code.

`fortify_panic` is where a FORTIFY_SOURCE check in module code (a memcpy
past the end of a known object) ends: "detected buffer overflow in memcpy"
and BUG(), the calling task's oops.

`__warn_printk` is the first half of a real module's WARN(): on x86 the
macro prints the message through it and then executes `ud2` with a
`__bug_table` entry flagged BUGFLAG_WARNING, whose trap prints the WARNING
line and resumes (kernel/bug.py).
"""

from __future__ import annotations

from typing import Any

from .api import export
from .api.printk import CUT_HERE, format_guest
from .oops import KernelBug
from .printk import KERN_EMERG, KERN_WARNING, Problem

END_TRACE = "---[ end trace 0000000000000000 ]---"


def _module(ctx: Any) -> str | None:
    return getattr(ctx.module, "name", None)


def warn(ctx: Any, message: str, where: str, function: str | None = None) -> None:
    """A WARN() splat from kernel function `function` (default: none named)
    at Linux's `where` ("lib/refcount.c:25"), called from module code."""
    log, module = ctx.kernel.log, _module(ctx)
    location = where
    if function is not None:
        address = ctx.machine.kernel_symbols().get(function)
        symbol = ctx.kernel.symbolize(address, True) if address is not None else None
        location += f" {symbol or function}"
    text = message.rstrip("\n").split("\n") if message else []     # WARN_ON(): no message
    for line in (CUT_HERE, *text,
                 f"WARNING: CPU: 0 PID: {ctx.task.pid} at {location}",
                 "Call Trace:", " <TASK>", f" {ctx.machine.symbol_name(ctx.caller)}", " </TASK>",
                 END_TRACE):
        log.emit(KERN_WARNING, line, module,
                 problem=Problem.WARNING if line.startswith("WARNING: CPU") else None)
    ctx.kernel.add_taint("W")


class Once:
    """The WARN_ONCE sites that have fired in one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.fired: set[str] = set()


def warn_once(ctx: Any, message: str, where: str, function: str | None = None) -> None:
    """WARN_ONCE(): the first report from the site `where` only."""
    fired = ctx.kernel.subsystem(Once).fired
    if where not in fired:
        fired.add(where)
        warn(ctx, message, where, function)


@export("__warn_printk", "void __warn_printk(const char *fmt, ...)", nargs=1, variadic=True)
def __warn_printk(ctx: Any, fmt: int) -> None:
    """pr_warn(CUT_HERE) then vprintk(fmt, args): the WARNING line follows
    from the `ud2` the WARN() macro executes next."""
    ctx.kernel.log.emit(KERN_WARNING, CUT_HERE, _module(ctx))
    ctx.kernel.log.printk(format_guest(ctx, fmt, ctx.va())[0], _module(ctx))


@export("fortify_panic", "void fortify_panic(const char *name)", nargs=1)
def fortify_panic(ctx: Any, name: int) -> None:
    """A FORTIFY_SOURCE check failed in the caller: pr_emerg, then BUG()."""
    text = ctx.mem.read_cstr(name, 256).decode("utf-8", "replace")
    ctx.kernel.log.emit(KERN_EMERG, f"detected buffer overflow in {text}", _module(ctx))
    raise KernelBug("lib/string_helpers.c:1027")
