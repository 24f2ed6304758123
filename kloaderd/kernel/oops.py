"""Oops reports, shaped like arch/x86/kernel/dumpstack.c and process_64.c print them.

The CPU decides *what* went wrong (a page fault, an invalid opcode, a soft
lockup...); this module only renders it the way a kernel developer expects to
read it in dmesg, so tools and people that grep for Linux's lines find them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

# Taint letters an oops leaves behind (kernel/panic.c taint_flags).
TAINT_DIE = "D"
TAINT_SOFTLOCKUP = "L"

_REG_LABEL = {"r8": "R08", "r9": "R09"}

# x86 page-fault error code bits (arch/x86/include/asm/trap_pf.h).
X86_PF_PROT = 1 << 0
X86_PF_WRITE = 1 << 1
X86_PF_INSTR = 1 << 4


class Oops(Exception):
    """A task died in kernel mode.  `lines` is the report as the kernel log
    shows it; the kernel logs them and adds `taint`."""

    def __init__(self, kind: str, lines: list[str], *, taint: str = TAINT_DIE,
                 rip: int = 0, address: int | None = None) -> None:
        super().__init__(lines[0] if lines else kind)
        self.kind = kind
        self.lines = lines
        self.taint = taint
        self.rip = rip
        self.address = address


class KernelBug(Exception):
    """BUG() in a kernel function on the calling task's behalf: the CPU
    reports "kernel BUG at FILE:LINE!" and an invalid-opcode oops, as the
    `ud2` of Linux's BUG() would."""

    def __init__(self, where: str) -> None:
        super().__init__(f"kernel BUG at {where}!")
        self.where = where


@dataclass
class Frame:
    """What the report needs to know about the dead task and its CPU."""
    pid: int
    comm: str
    tainted: str                       # "Not tainted" or "Tainted: G  O  "
    release: str
    regs: dict[str, int]               # rip rsp rflags rax ... r15 cr2 gs_base
    code: bytes | None = None          # bytes around RIP for the Code: line (None: unreadable)
    code_offset: int = 0               # index of the byte at RIP inside `code`
    trace: list[str] = field(default_factory=list)   # symbolized return addresses
    modules: str = ""                  # "Modules linked in:" list


def pf_error_code(access: str, present: bool) -> int:
    code = X86_PF_PROT if present else 0
    if access == "write":
        code |= X86_PF_WRITE
    elif access == "exec":
        code |= X86_PF_INSTR
    return code


def page_fault_header(address: int, access: str, present: bool, die: int) -> list[str]:
    """The lines page_fault_oops() and show_fault_oops() print before the oops."""
    code = pf_error_code(access, present)
    lines = []
    if access == "exec" and present:
        lines.append("kernel tried to execute NX-protected page - exploit attempt? (uid: 0)")
    if address < 4096:
        lines.append(f"BUG: kernel NULL pointer dereference, address: {address:016x}")
    else:
        lines.append(f"BUG: unable to handle page fault for address: {address:016x}")
    what = {"read": "read access", "write": "write access", "exec": "instruction fetch"}[access]
    lines.append(f"#PF: supervisor {what} in kernel mode")
    lines.append(f"#PF: error_code(0x{code:04x}) - "
                 f"{'permissions violation' if present else 'not-present page'}")
    lines.append("PGD 0 P4D 0 " if address < 4096 else "PGD 2a15067 P4D 2a15067 PUD 2a16063 PMD 0 ")
    lines.append(f"Oops: {code:04x} [#{die}] PREEMPT SMP NOPTI")
    return lines


def render(header: list[str], frame: Frame, symbolize: Callable[[int], str],
           footer: str = "---[ end trace 0000000000000000 ]---") -> list[str]:
    """Header lines, then the CPU/registers/trace block every oops shares."""
    r = frame.regs
    lines = list(header)
    lines.append(f"CPU: 0 PID: {frame.pid} Comm: {frame.comm} {frame.tainted} {frame.release} #1")
    lines.append("Hardware name: kloader emulated x86-64 machine, BIOS kloader 01/01/2024")
    lines.append(f"RIP: 0010:{symbolize(r['rip'])}")
    if frame.code is None:
        lines.append(f"Code: Unable to access opcode bytes at 0x{r['rip'] - 42:x}.")
    else:
        shown = [f"<{b:02x}>" if i == frame.code_offset else f"{b:02x}" for i, b in enumerate(frame.code)]
        lines.append("Code: " + " ".join(shown))
    lines.append(f"RSP: 0018:{r['rsp']:016x} EFLAGS: {r['rflags']:08x}")
    order = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9",
             "r10", "r11", "r12", "r13", "r14", "r15"]
    for i in range(0, len(order), 3):
        lines.append(" ".join(f"{_REG_LABEL.get(name, name.upper())}: {r[name]:016x}"
                              for name in order[i:i + 3]))
    lines.append(f"FS:  0000000000000000(0000) GS:{r['gs_base']:016x}(0000) knlGS:0000000000000000")
    lines.append("CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033")
    lines.append(f"CR2: {r['cr2']:016x} CR3: 0000000002a14000 CR4: 00000000003506f0")
    lines.append("Call Trace:")
    lines.append(" <TASK>")
    lines.extend(f" ? {entry}" for entry in frame.trace)
    lines.append(" </TASK>")
    lines.append(f"Modules linked in: {frame.modules}".rstrip())
    lines.append(f"CR2: {r['cr2']:016x}")
    if footer:
        lines.append(footer)
    return lines


class Panic(Exception):
    """Raised by a kernel function that panics (`__stack_chk_fail`).  The CPU
    reports it as an Oops of kind "panic" at the caller's RIP."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotEmulated(Exception):
    """Raised by the stub of a real kernel's export kloader does not
    implement.  The CPU reports it as an oops of kind "not-emulated" at the
    caller's RIP, naming the function."""

    def __init__(self, name: str) -> None:
        super().__init__(f"kernel function {name} is not emulated")
        self.name = name

