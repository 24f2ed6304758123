"""Oops reports, shaped like arch/x86/kernel/dumpstack.c and process_64.c print them.

The CPU (cpu.py) runs the code and stops where it went wrong; `OopsReports`,
the other half of its `Machine`, decides *which* report that is (a page
fault, an invalid opcode, a soft lockup...) and gathers the dead task's
frame; `render` prints it the way a kernel developer expects to read it in
dmesg, so tools and people that grep for Linux's lines find them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from unicorn import Uc, UcError
from unicorn import x86_const as X
from unicorn.unicorn_const import UC_ERR_EXCEPTION, UC_ERR_INSN_INVALID

from ..config import PAGE_SIZE
from .api.printk import CUT_HERE
from .bug import find_bug, mark_done
from .memory import AddressSpace, GuestFault
from .printk import KERN_WARNING

if TYPE_CHECKING:
    from .sched import Scheduler, Task

# Taint letters an oops leaves behind (kernel/panic.c taint_flags).
TAINT_DIE = "D"
TAINT_SOFTLOCKUP = "L"

_REG_LABEL = {"r8": "R08", "r9": "R09"}

# x86 page-fault error code bits (arch/x86/include/asm/trap_pf.h).
X86_PF_PROT = 1 << 0
X86_PF_WRITE = 1 << 1
X86_PF_INSTR = 1 << 4

_GPRS = {name: getattr(X, f"UC_X86_REG_{name.upper()}") for name in (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")}


_TRAPS = {0: "divide error", 3: "int3", 6: "invalid opcode", 13: "general protection fault"}
_TRAP_KINDS = {0: "divide-error", 3: "int3", 6: "invalid-opcode", 13: "general-protection"}


class SoftLockup(Exception):
    """Raised by a kernel function whose work has run its task past the
    watchdog (`CallContext.still_running`): reported as the soft lockup."""


def _describe(exc: BaseException) -> str:
    """`OverflowError: ...`, short enough for one log line."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."


def _canonical(addr: int) -> bool:
    """Bits 63..47 all equal: an address x86-64 paging can translate."""
    top = addr >> 47
    return top == 0 or top == 0x1FFFF


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


class OopsKernel(Protocol):
    """What an oops report reads of the kernel: print_tainted(), the
    release for the CPU: line, and print_modules()."""

    @property
    def release(self) -> str: ...

    def taint_string(self) -> str: ...

    def modules_linked_in(self) -> str: ...

    log: Any                   # a module's WARN() is reported there (kernel/bug.py)
    registrations: Any         # module_at(): whose code faulted (kernel/registry.py)

    def add_taint(self, flag: str) -> None: ...


class OopsReports:
    """The half of `Machine` (cpu.py) that turns what went wrong on the CPU
    into an `Oops`: which report (a page fault, a trap, a BUG() in a kernel
    function, a soft lockup), its header lines, and the frame every report
    shares (registers, Code:, the stack's return addresses, taint, modules).

    It reads the machine's CPU and memory; `_precise()`, `not_emulated_at()`
    and `symbol_name()` are the machine's own."""

    kernel: OopsKernel
    uc: Uc
    _clean_cpu: Any            # a CPU state with no exception pending
    mem: AddressSpace
    sched: Scheduler
    trap: int                  # the return address every task starts with
    _die_counter: int

    def _fault_oops(self, task: Task, err: UcError) -> Oops:
        fault = self.mem.last_fault
        if err.errno == UC_ERR_INSN_INVALID:
            return self._trap_oops(task, 6)
        if err.errno == UC_ERR_EXCEPTION and fault is not None:
            guard = self.sched.stack_guard(fault.address)
            if guard is not None:
                self._die_counter += 1
                header = [f"BUG: TASK stack guard page was hit at {fault.address:016x} "
                          f"(stack is {guard.stack_base:016x}..{guard.stack_top - 1:016x})",
                          f"stack guard page: 0000 [#{self._die_counter}] PREEMPT SMP NOPTI"]
                return self._oops(task, "stack-overflow", header, address=fault.address)
            fault = self._precise(fault)
            if fault.access != "exec" and self.not_emulated_at(fault.address) is not None:
                return self._page_fault(task, fault)
            if not _canonical(fault.address):
                # No page table walk happens: the CPU raises #GP instead.
                self._die_counter += 1
                header = [f"general protection fault, probably for non-canonical address "
                          f"0x{fault.address:x}: 0000 [#{self._die_counter}] PREEMPT SMP NOPTI"]
                return self._oops(task, "general-protection", header)
            return self._page_fault(task, fault)
        self._die_counter += 1
        header = [f"BUG: unhandled CPU exception ({err}): 0000 [#{self._die_counter}] PREEMPT SMP NOPTI"]
        return self._oops(task, "exception", header)

    def _page_fault(self, task: Task, fault: GuestFault, regs: dict[str, int] | None = None) -> Oops:
        """A page fault of module code or of a kernel function on its behalf;
        data read or written in a not-emulated export's stub names the
        object, as a call to a not-emulated function names the function."""
        self._die_counter += 1
        header = page_fault_header(fault.address, fault.access, fault.present, self._die_counter)
        kind = "null-deref" if fault.address < PAGE_SIZE else "page-fault"
        rip = regs["rip"] if regs is not None else self.uc.reg_read(X.UC_X86_REG_RIP)
        missing = self._object_read(rip, fault.address) if fault.access != "exec" else None
        if missing is not None:
            kind, header = "not-emulated", [f"kloader: kernel object {missing} is not emulated", *header]
        return self._oops(task, kind, header, address=fault.address, regs=regs)

    def _object_read(self, rip: int, address: int) -> str | None:
        """The not-emulated object a read or write at `address` (in the
        not-emulated exports' stubs) reaches.  A stub is 16 bytes, so an
        access past its start (`pv_ops` + 0x1d0, `_ctype[c]`) lands in the
        stub of a later name, often one the module never heard of: the
        object is the data import nearest below the address of the module
        whose code (at `rip`) made the access."""
        here = self.not_emulated_at(address)
        if here is None:
            return None
        module = self.kernel.registrations.module_at(rip)
        data = module.not_emulated_data if module is not None else ()
        below = bisect.bisect_right(data, address) - 1
        return self.not_emulated_at(data[below]) if below >= 0 else here

    def _trap_oops(self, task: Task, intno: int) -> Oops:
        self._die_counter += 1
        name = _TRAPS.get(intno, f"trap {intno}")
        header = [f"{name}: 0000 [#{self._die_counter}] PREEMPT SMP NOPTI"]
        rip = self.uc.reg_read(X.UC_X86_REG_RIP)
        bug = find_bug(self.kernel, rip) if intno == 6 else None
        if bug is not None:                     # BUG(): report_bug() spoke first
            header[:0] = [*([CUT_HERE] if bug.cut_here else []), f"kernel BUG at {bug.file}:{bug.line}!"
                          if bug.file else f"Kernel BUG at {self.symbol_name(rip)} "
                          "[verbose debug info unavailable]"]
        return self._oops(task, _TRAP_KINDS.get(intno, "trap"), header)

    def _warned(self, task: Task, rip: int) -> bool:
        """report_bug() for a ud2 at `rip` (kernel/bug.py): a WARN is reported
        as __warn() does and the task resumes after the ud2 (True); anything
        else is an oops.  The trap's exception state is dropped (a fresh CPU
        state with the task's registers), as for a task starting."""
        bug = find_bug(self.kernel, rip)
        if bug is None or not bug.warning:
            return False
        uc, regs = self.uc, self._registers()
        task.rip = rip + 2
        uc.context_restore(self._clean_cpu)
        for name, reg in _GPRS.items():
            uc.reg_write(reg, regs[name])
        uc.reg_write(X.UC_X86_REG_RIP, task.rip)
        uc.reg_write(X.UC_X86_REG_RFLAGS, regs["rflags"])
        uc.reg_write(X.UC_X86_REG_GS_BASE, regs["gs_base"])
        if mark_done(self.kernel, bug):
            return True
        where = f"{bug.file}:{bug.line} " if bug.file else ""
        header = [*([CUT_HERE] if bug.cut_here else []),
                  f"WARNING: CPU: 0 PID: {task.pid} at {where}{self.symbol_name(rip)}"]
        warning = self._oops(task, "warning", header, regs=regs)
        module = getattr(task.module, "name", None)
        for line in warning.lines:
            self.kernel.log.emit(KERN_WARNING, line, module)
        self.kernel.add_taint(bug.taint)
        return True

    def _api_oops(self, task: Task, exc: Exception, function: str) -> Oops:
        """A kernel function failed on the task's behalf: a guest fault is
        reported at the caller's RIP, as if the call instruction had faulted
        after returning; anything else as a BUG() in the function itself.
        Always an oops of the task: a failing kernel function never fails
        the system call that ran the module's code (EIO) or strands it."""
        if isinstance(exc, Oops):
            return exc
        if isinstance(exc, SoftLockup):
            return self._soft_lockup(task)
        regs = self._registers()
        header: list[str] = []
        if isinstance(exc, NotEmulated):
            kind, header = "not-emulated", [f"kloader: kernel function {exc.name} is not emulated"]
        elif isinstance(exc, KernelBug):
            kind, header = "bug", [f"kernel BUG at {exc.where}!"]
        elif not isinstance(exc, (GuestFault, Panic)):
            # A bug in kloader's implementation, or a use it cannot serve.
            kind, header = "kernel-bug", [
                f"kloader: kernel function {function} failed: {_describe(exc)}",
                f"kernel BUG at {function}!"]
        if header:
            # RIP is the function itself and its caller is on the stack, as
            # a BUG() at the function's first instruction shows them.
            self._die_counter += 1
            header.append(f"invalid opcode: 0000 [#{self._die_counter}] PREEMPT SMP NOPTI")
            return self._oops(task, kind, header, regs=regs)
        regs["rip"] = self.mem.read_u64(regs["rsp"])
        regs["rsp"] += 8
        if isinstance(exc, GuestFault):
            return self._page_fault(task, exc, regs)
        header = [f"Kernel panic - not syncing: {exc.message}"]
        return self._oops(task, "panic", header, regs=regs,
                          footer=f"---[ end Kernel panic - not syncing: {exc.message} ]---")

    def _soft_lockup(self, task: Task) -> Oops:
        header = [f"watchdog: BUG: soft lockup - CPU#0 stuck for {int(task.runtime)}s! "
                  f"[{task.comm}:{task.pid}]"]
        return self._oops(task, "soft-lockup", header, taint=TAINT_SOFTLOCKUP, footer="")

    def _registers(self) -> dict[str, int]:
        uc = self.uc
        regs = {name: uc.reg_read(reg) for name, reg in _GPRS.items()}
        regs["rip"] = uc.reg_read(X.UC_X86_REG_RIP)
        regs["rflags"] = uc.reg_read(X.UC_X86_REG_RFLAGS)
        regs["gs_base"] = uc.reg_read(X.UC_X86_REG_GS_BASE)
        return regs

    def _oops(self, task: Task, kind: str, header: list[str], *, taint: str = TAINT_DIE,
              address: int | None = None, regs: dict[str, int] | None = None,
              footer: str = "---[ end trace 0000000000000000 ]---") -> Oops:
        regs = regs or self._registers()
        regs["cr2"] = address if address is not None else 0
        rip = regs["rip"]
        code, code_offset = self._code_bytes(rip)
        frame = Frame(pid=task.pid, comm=task.comm, tainted=self._tainted(), release=self._release(),
                      regs=regs, code=code, code_offset=code_offset,
                      trace=self._stack_trace(task, regs["rsp"]), modules=self._modules())
        lines = render(header, frame, self.symbol_name, footer)
        return Oops(kind, lines, taint=taint, rip=rip, address=address)

    def _code_bytes(self, rip: int) -> tuple[bytes | None, int]:
        """64 bytes around RIP (42 before), or from RIP's page start on if
        the page before is unmapped: the Code: line of the oops."""
        for start in (rip - 42, max(rip - 42, rip & ~(PAGE_SIZE - 1))):
            try:
                return self.mem.read_code(start, rip + 22 - start), rip - start
            except GuestFault:
                continue
        return None, 0

    def _stack_trace(self, task: Task, rsp: int) -> list[str]:
        """Every word on the stack that points into executable code (kernel
        or module text), as Linux's unreliable (`?`) entries."""
        trace = []
        slot = max(rsp, task.stack_base) & ~7
        while slot < task.stack_top and len(trace) < 32:
            value = self.mem.read_u64(slot)
            slot += 8
            if value != self.trap and (self.mem.perms(value) or "")[2:] == "x":
                trace.append(self.symbol_name(value))
        return trace

    def _tainted(self) -> str:
        return self.kernel.taint_string()

    def _release(self) -> str:
        return self.kernel.release

    def _modules(self) -> str:
        return self.kernel.modules_linked_in()
