"""Entering and leaving guest code: the Unicorn calls every entry and every
kernel call makes, as plain C calls.

Entering a function costs a handful of Unicorn calls (the return address
written on the stack, the registers written, `emu_start`, the registers read
where it stopped), and a kernel call two (its arguments read, its result
written).  Through the binding each C call costs about 0.8 µs of `ctypes`
argument conversion (its `argtypes`) on top of what the C function does —
together more than `emu_start` itself.  `EntryRegs` calls the same C
functions through untyped function pointers with arguments converted once
(the register id and value arrays, the engine handle) or converted by hand
(`c_uint64` of an address), which costs about 0.3 µs a call, so entering
guest code costs little more than the `emu_start` it must make (issue 14:
guest entry ≤ 3× a bare `emu_start`).

Arch-specific, as Linux's arch/x86/entry: the register sets are x86-64's.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

from unicorn import Uc, UcError
from unicorn import x86_const as X
from unicorn.unicorn_const import UC_ERR_EXCEPTION
from unicorn.unicorn_py3.unicorn import uclib

_MASK64 = (1 << 64) - 1
ARG_REGS = (X.UC_X86_REG_RDI, X.UC_X86_REG_RSI, X.UC_X86_REG_RDX,
            X.UC_X86_REG_RCX, X.UC_X86_REG_R8, X.UC_X86_REG_R9)
# Written at every entry: the argument registers, the other GPRs (zero), %rsp,
# %rip, %rflags and the GS base.
_ENTRY_REGS = (*ARG_REGS, X.UC_X86_REG_RAX, X.UC_X86_REG_RBX, X.UC_X86_REG_RBP,
               X.UC_X86_REG_R10, X.UC_X86_REG_R11, X.UC_X86_REG_R12, X.UC_X86_REG_R13,
               X.UC_X86_REG_R14, X.UC_X86_REG_R15, X.UC_X86_REG_RSP, X.UC_X86_REG_RIP,
               X.UC_X86_REG_RFLAGS, X.UC_X86_REG_GS_BASE)
_ENTRY = struct.Struct(f"<{len(_ENTRY_REGS)}Q")
_ZEROS = (0,) * 15                 # the argument registers not passed, then the other GPRs
_RFLAGS_IF = 0x202                 # IF set, as in a kernel thread


def _untyped(name: str, restype: Any = ctypes.c_int) -> Any:
    """`uclib.<name>` without argtypes: every argument must be a ctypes
    object (or bytes, for a `char *`) of exactly the C parameter's type."""
    fn = uclib._FuncPtr((name, uclib))
    fn.restype = restype
    return fn


_uc_emu_start = _untyped("uc_emu_start")
_uc_mem_write = _untyped("uc_mem_write")
_uc_reg_read_batch = _untyped("uc_reg_read_batch")
_uc_reg_write_batch = _untyped("uc_reg_write_batch")


class _Batch:
    """The three arrays uc_reg_{read,write}_batch take for some registers:
    ids, values, and a pointer to each value."""

    def __init__(self, ids: tuple[int, ...]) -> None:
        self.values = (ctypes.c_uint64 * len(ids))()
        # Reading them back: one unpack instead of a ctypes item access each
        # (tuple() of a 7-register array is 1.8 µs, this 0.2 µs).
        self.unpack = struct.Struct(f"<{len(ids)}Q").unpack_from
        base = ctypes.addressof(self.values)
        self.ids = (ctypes.c_int * len(ids))(*ids)
        self.ptrs = (ctypes.c_void_p * len(ids))(*(base + 8 * i for i in range(len(ids))))
        self.count = ctypes.c_int(len(ids))


class EntryRegs:
    """One CPU's hot Unicorn calls: entering a function, running it,
    reading where it stopped, and a kernel call's arguments and result."""

    def __init__(self, uc: Uc) -> None:
        self.uc = uc
        self._uch = uc._uch
        self._entry = _Batch(_ENTRY_REGS)
        self._stop = _Batch((X.UC_X86_REG_RIP, X.UC_X86_REG_R11, X.UC_X86_REG_RAX, X.UC_X86_REG_RSP))
        self._args = _Batch((*ARG_REGS, X.UC_X86_REG_RSP))
        self._done = _Batch((X.UC_X86_REG_RAX, X.UC_X86_REG_R11))
        self._no_limit = ctypes.c_uint64(0)      # emu_start's timeout and count: none

    def enter(self, args: tuple[int, ...], rsp: int, rip: int, gs_base: int,
              frame: bytes = b"", frame_at: Any = None) -> None:
        """A function's entry, as a new kernel thread starts: `frame` (its
        return address) written at physical `frame_at` (a c_uint64, when
        the caller has not written the stack itself), its register
        arguments, every other GPR zero, IF set, GS at the per-CPU area."""
        uch = self._uch
        if frame_at is not None:
            err = _uc_mem_write(uch, frame_at, frame, ctypes.c_uint64(len(frame)))
            if err:
                raise UcError(err)
        entry = self._entry
        if args:
            regs = [a & _MASK64 for a in args[:6]]
            _ENTRY.pack_into(entry.values, 0, *regs, *_ZEROS[len(regs):], rsp, rip & _MASK64,
                             _RFLAGS_IF, gs_base)
        else:
            _ENTRY.pack_into(entry.values, 0, *_ZEROS, rsp, rip & _MASK64, _RFLAGS_IF, gs_base)
        if _uc_reg_write_batch(uch, entry.ids, entry.ptrs, entry.count):
            raise UcError(UC_ERR_EXCEPTION)

    def emu_start(self, begin: int, until: int) -> None:
        """`Uc.emu_start(begin, until)`, including its report of an
        exception a hook raised (the binding stores it and stops)."""
        uc = self.uc
        uc._hook_exception = None
        err = _uc_emu_start(self._uch, ctypes.c_uint64(begin), ctypes.c_uint64(until),
                            self._no_limit, self._no_limit)
        if err:
            raise UcError(err)
        if uc._hook_exception is not None:
            raise uc._hook_exception

    def stopped(self) -> tuple[int, int, int, int]:
        """(%rip, %r11, %rax, %rsp) where a slice ended."""
        stop = self._stop
        if _uc_reg_read_batch(self._uch, stop.ids, stop.ptrs, stop.count):
            raise UcError(UC_ERR_EXCEPTION)
        return stop.unpack(stop.values)

    def read(self) -> tuple[int, ...]:
        """(rdi, rsi, rdx, rcx, r8, r9, rsp): a kernel call's arguments."""
        args = self._args
        if _uc_reg_read_batch(self._uch, args.ids, args.ptrs, args.count):
            raise UcError(UC_ERR_EXCEPTION)
        return args.unpack(args.values)

    def done(self, value: int, token: int) -> None:
        """A kernel call's result in %rax, and its completion token in %r11."""
        done = self._done
        done.values[0], done.values[1] = value, token
        if _uc_reg_write_batch(self._uch, done.ids, done.ptrs, done.count):
            raise UcError(UC_ERR_EXCEPTION)
