"""Helpers the compiler emits calls to: ftrace's entry hook, the retpoline
and return thunks, and the stack protector's failure path.

All but `__stack_chk_fail` are real machine code in kernel text (a `ret`,
a `jmp *%reg`): they run at full emulation speed and must not touch any
register, which a Python hook (it writes %rax) would.
"""

from __future__ import annotations

from typing import Any

from ..oops import Panic
from . import export

# The registers arch/x86/include/asm/GEN-for-each-reg.h makes thunks for
# (all general purpose registers but %rsp), with their ModRM numbers.
THUNK_REGS = {"rax": 0, "rbx": 3, "rcx": 1, "rdx": 2, "rsi": 6, "rdi": 7, "rbp": 5,
               "r8": 8, "r9": 9, "r10": 10, "r11": 11, "r12": 12, "r13": 13, "r14": 14, "r15": 15}


def _jmp_indirect(regno: int) -> bytes:
    """`jmp *%reg`, then `int3` against straight-line speculation, as Linux."""
    rex = b"\x41" if regno >= 8 else b""
    return rex + bytes((0xFF, 0xE0 | (regno & 7), 0xCC))


def _machine_code(name: str, code: bytes, watched: bool = False) -> None:
    """`watched`: the CPU tells its `watch` callback on every entry (the
    sanitizer sees each indirect call); the code itself runs unchanged."""
    def impl(ctx: Any) -> None:
        raise AssertionError(f"{name} is machine code; the CPU never dispatches it")
    impl.machine_code = code            # type: ignore[attr-defined]
    impl.watched = watched              # type: ignore[attr-defined]
    export(name, f"void {name}(void)", nargs=0)(impl)


_machine_code("__fentry__", b"\xc3")                    # ftrace disabled: a plain return
_machine_code("__x86_return_thunk", b"\xc3\xcc")
for _reg, _num in THUNK_REGS.items():
    _machine_code(f"__x86_indirect_thunk_{_reg}", _jmp_indirect(_num), watched=True)


@export("__stack_chk_fail", "void __stack_chk_fail(void)", nargs=0)
def __stack_chk_fail(ctx: Any) -> None:
    """A function found its canary overwritten on return: Linux panics."""
    where = ctx.machine.symbol_name(ctx.caller)
    raise Panic(f"stack-protector: Kernel stack is corrupted in: {where}")
