"""printk for module code: _printk, vprintk, warn_slowpath_fmt (WARN()).

The formatting is `kernel.printk.vsnprintf`; the text goes to the shared
`LogBuffer` with the calling module as its source and KERN_CONT caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..module import TAINT_FLAGS
from ..printk import KERN_WARNING, PRINTKRB_RECORD_MAX, Problem, VaList, vsnprintf_bounded
from . import export

FORMAT_LIMIT = 1 << 16        # longest format string read from the guest
CUT_HERE = "------------[ cut here ]------------"


def format_guest(ctx, fmt: int, args: Iterator[int], room: int = PRINTKRB_RECORD_MAX,
                 spill: Callable[[int, bytes], None] | None = None) -> tuple[bytes, int]:
    """vsnprintf with a guest format string, guest memory for %s and kallsyms
    for %pS; shared by every printf-like kernel function.  (The first `room`
    bytes, the full length): the work is bounded by `room`, never by the
    widths the format asks for, and the watchdog may end it."""
    text = ctx.mem.read_cstr(fmt, FORMAT_LIMIT)
    return vsnprintf_bounded(text, args, room, mem=ctx.mem, symbolize=ctx.kernel.symbolize,
                             check=ctx.still_running, spill=spill)


def _caller(ctx) -> str | None:
    return ctx.module.name if ctx.module is not None else None


@export("_printk", "int _printk(const char *fmt, ...)", nargs=1, variadic=True)
def _printk(ctx, fmt: int) -> int:
    return ctx.kernel.log.printk(format_guest(ctx, fmt, ctx.va())[0], _caller(ctx))


@export("vprintk", "int vprintk(const char *fmt, va_list args)", nargs=2)
def vprintk(ctx, fmt: int, args: int) -> int:
    return ctx.kernel.log.printk(format_guest(ctx, fmt, VaList(ctx.mem, args))[0], _caller(ctx))


@export("warn_slowpath_fmt",
        "void warn_slowpath_fmt(const char *file, const int line, unsigned taint, "
        "const char *fmt, ...)", nargs=4, variadic=True)
def warn_slowpath_fmt(ctx, file: int, line: int, taint: int, fmt: int) -> int:
    """__warn(): the WARNING line, the caller's message, the end marker, taint.

    The "at" address is the call's return address in module code
    (`ctx.caller`), as `__builtin_return_address(0)` in Linux.
    """
    log, caller = ctx.kernel.log, _caller(ctx)
    log.emit(KERN_WARNING, CUT_HERE, caller)
    where = f"WARNING: CPU: 0 PID: {ctx.task.pid} at "
    if file:
        where += f"{ctx.mem.read_cstr(file, 4096).decode('utf-8', 'replace')}:{line & 0xFFFFFFFF} "
    where += ctx.kernel.symbolize(ctx.caller, True) or f"{ctx.caller:#x}"
    log.emit(KERN_WARNING, where, caller, problem=Problem.WARNING)
    if fmt:
        log.printk(format_guest(ctx, fmt, ctx.va())[0], caller)
    log.emit(KERN_WARNING, "---[ end trace 0000000000000000 ]---", caller)
    bit = taint & 0xFFFFFFFF
    ctx.kernel.add_taint(TAINT_FLAGS[bit][0] if bit < len(TAINT_FLAGS) else "W")   # the bit WARN passes
    return 0
