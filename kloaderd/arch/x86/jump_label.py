"""arch/x86/kernel/jump_label.c: one static-branch site turned into a NOP or
a JMP to its target.

A site is what `arch_static_branch()` (a NOP) or `arch_static_branch_jump()`
(a JMP) left in the text: two bytes when the compiler's jump reached its
target with a rel8, five otherwise.  As `arch_jump_entry_size()` does, the
size is read from the instruction that is there, then, as
`__jump_label_patch()` does, the bytes are checked to be the instruction the
site must hold before the change (the NOP when a JMP goes in, the JMP to
this target when the NOP goes back) and anything else is a fatal kernel
bug: Linux logs "jump_label: Fatal kernel bug, unexpected op" and BUG()s,
since the text was corrupted.  A site that already holds what is asked for
is left alone (Linux never asks; kloader's `add_module` checks each site of
a key that is no longer at its compiled state this way).

The new bytes go through the address space (`AddressSpace.write`), which is
`text_poke`: code already translated must not run in its old form, so a
write to an executable page drops Unicorn's translations.
"""

from __future__ import annotations

from typing import Any

from ...kernel.oops import KernelBug

JUMP_LABEL_NOP, JUMP_LABEL_JMP = 0, 1
NOP2 = b"\x66\x90"                     # x86_nops[2]: osp nop
NOP5 = b"\x0f\x1f\x44\x00\x00"         # x86_nops[5]: nopl 0x0(%rax,%rax,1)
JMP8, JMP32 = 0xEB, 0xE9
_MASK64 = (1 << 64) - 1


class UnexpectedOp(KernelBug):
    """The site holds neither instruction: Linux's BUG() in __jump_label_patch."""

    def __init__(self, line: str) -> None:
        super().__init__("arch/x86/kernel/jump_label.c")
        self.line = line


def _jmp(size: int, code: int, target: int) -> bytes | None:
    rel = target - (code + size)
    if size == 2:
        return bytes((JMP8, rel & 0xFF)) if -128 <= rel < 128 else None
    return bytes((JMP32,)) + (rel & 0xFFFFFFFF).to_bytes(4, "little") if -(1 << 31) <= rel < (1 << 31) \
        else None


def entry_size(insn: bytes) -> int | None:
    """arch_jump_entry_size(): 2 or 5, from the instruction at the site
    (None: neither a 2- nor a 5-byte NOP or JMP is there)."""
    if insn[:2] == NOP2 or insn[:1] == bytes((JMP8,)):
        return 2
    if insn[:5] == NOP5 or insn[:1] == bytes((JMP32,)):
        return 5
    return None


def site_type(mem: Any, code: int) -> int | None:
    """What the site holds now: JUMP_LABEL_JMP, JUMP_LABEL_NOP, or None."""
    insn = mem.read(code, 5)
    size = entry_size(insn)
    if size is None:
        return None
    return JUMP_LABEL_NOP if insn[:size] in (NOP2, NOP5) else JUMP_LABEL_JMP


def arch_jump_label_transform(mem: Any, code: int, target: int, type_: int,
                              name: str = "") -> bool:
    """Make the site at `code` a JMP to `target` (JUMP_LABEL_JMP) or a NOP:
    True if its bytes changed.  `name` is the site as %pS prints it."""
    insn = mem.read(code, 5)
    size = entry_size(insn)
    jmp = _jmp(size, code, target) if size is not None else None
    if size is None or jmp is None:
        raise UnexpectedOp(_unexpected(name, code, insn, insn, size or 0, type_))
    nop = NOP2 if size == 2 else NOP5
    want = jmp if type_ == JUMP_LABEL_JMP else nop
    if insn[:size] == want:
        return False
    expect = nop if type_ == JUMP_LABEL_JMP else jmp
    if insn[:size] != expect:
        raise UnexpectedOp(_unexpected(name, code, insn, expect, size, type_))
    mem.write(code, want)
    return True


def _unexpected(name: str, code: int, insn: bytes, expect: bytes, size: int, type_: int) -> str:
    def hex5(data: bytes) -> str:
        return " ".join(f"{b:02x}" for b in data[:5])
    return (f"jump_label: Fatal kernel bug, unexpected op at {name or hex(code)} [{code & _MASK64:016x}] "
            f"({hex5(insn)} != {hex5(expect)}) size:{size} type:{type_}")
