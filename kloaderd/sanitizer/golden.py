"""The Golden Rule: "If you are calling through a function pointer into a
(different) module, you must hold a reference to that module.  Otherwise
you risk sleeping in the module while it is unloaded."

Two kinds of entry are checked:

* the emulated kernel's own subsystems (the VFS calling `fops->read`, a
  timer's function...) enter modules through `call_pointer`;
* module code calls through a function pointer with the retpoline thunks
  (`call __x86_indirect_thunk_rax`: kmodbuild compiles as kbuild does with
  CONFIG_RETPOLINE), which are machine code in kernel text inside the CPU's
  one hooked range (`Machine.watch`): the hook sees every indirect call and
  nothing else, so direct calls and kernel calls cost nothing more.

An entry into M is *allowed* — as the FAQ reasons — when it comes from M's
own code, when M is still in its init or already in its exit (someone is
running M's code, so M cannot go), in atomic context (nothing sleeps, and
removal waits for the CPU), when the caller's module depends on M (it
cannot outlive M), or while anybody holds a reference on M.  Otherwise it is
reported once per (caller, callee) pair, and the call goes on.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Callable

from unicorn import x86_const as X

from ..config import MODULES_END, MODULES_VADDR
from ..errors import KernelError
from ..kernel.api.compiler import THUNK_REGS
from ..kernel.module import ModuleState
from ..kernel.oops import Oops
from ..kernel.printk import KERN_ERR, Problem

if TYPE_CHECKING:
    from ..kernel.internal import KernelServices
    from ..kernel.module import Module
    from ..kernel.sched import Task

_RSP = X.UC_X86_REG_RSP
_CALL_REL32 = 0xE8
_MASK64 = (1 << 64) - 1


class GoldenRule:
    kernel: "KernelServices"

    def __init__(self, kernel: "KernelServices") -> None:
        self.kernel = kernel
        self.golden_reports = 0
        self._reported: set[tuple[Any, int]] = set()
        machine = kernel.machine
        symbols = machine.kernel_symbols()
        self._thunks = {symbols[f"__x86_indirect_thunk_{reg}"]: getattr(X, f"UC_X86_REG_{reg.upper()}")
                        for reg in THUNK_REGS}
        machine.watch = self._on_thunk

    # -- where code lives ------------------------------------------------------

    def module_at(self, address: int) -> "Module | None":
        """The loaded module whose core or (not yet freed) init holds `address`."""
        if not MODULES_VADDR <= address < MODULES_END:
            return None
        return self.kernel.registrations.module_at(address)

    # -- the check ---------------------------------------------------------------

    def allowed(self, callee: "Module", caller: "Module | None", task: "Task | None") -> bool:
        if caller is callee:
            return True                                   # its own code
        if task is not None and task.preempt_count:
            return True                                   # atomic: cannot sleep in it
        if callee.state in (ModuleState.COMING, ModuleState.GOING) and \
                task is not None and task.module is callee:
            return True                                   # during its own init or exit
        if callee.refcount:
            return True                                   # somebody holds a reference
        return caller is not None and callee in caller.uses   # the caller depends on it

    def check_entry(self, target: int, caller_addr: int | None, task: "Task | None",
                    via: str = "") -> None:
        callee = self.module_at(target)
        if callee is None:
            return
        caller = self.module_at(caller_addr) if caller_addr is not None else None
        if self.allowed(callee, caller, task):
            return
        key = (caller_addr if caller_addr is not None else via, target)
        if key in self._reported:
            return
        self._reported.add(key)
        self.golden_reports += 1
        self._report(callee, caller, target, caller_addr, task, via)

    def _report(self, callee: "Module", caller: "Module | None", target: int,
                caller_addr: int | None, task: "Task | None", via: str) -> None:
        machine = self.kernel.machine
        where = machine.symbol_name(caller_addr) if caller_addr is not None else via
        who = caller.name if caller is not None else "the kernel"
        lines = [
            "==================================================================",
            f"BUG: golden rule: call into module {callee.name} without a reference in {where}",
            f"callee: {machine.symbol_name(target)}",
            f"{callee.name} is {callee.state.value} with no reference held; {who} does not depend on it "
            "and the call is in process context,",
            f"so {callee.name} could be unloaded while the call sleeps in it: "
            f"take try_module_get() on its owner first",
        ]
        if task is not None:
            lines.append(f"CPU: 0 PID: {task.pid} Comm: {task.comm} {self.kernel.taint_string()}")
        lines.append("==================================================================")
        for i, line in enumerate(lines):
            self.kernel.log.emit(KERN_ERR, line, None, problem=Problem.SANITIZER if i == 1 else None)

    # -- entries made by module code: the retpoline thunks ------------------------------

    def _on_thunk(self, uc: Any, address: int) -> None:
        reg = self._thunks.get(address)
        if reg is None:
            return
        target = uc.reg_read(reg)
        if not MODULES_VADDR <= target < MODULES_END:
            return                                        # into the kernel: always there
        mem = self.kernel.mem
        try:
            ret = mem.read_u64(uc.reg_read(_RSP))
            site = ret - 5
            code = mem.read(site, 5)
        except Exception:
            return
        # A call through the thunk pushed the return address after `call thunk`;
        # a jump through it (a tail call) did not, and its caller is unknown.
        if code[0] != _CALL_REL32 or (ret + int.from_bytes(code[1:], "little", signed=True)) & _MASK64 != address:
            return
        self.check_entry(target, site, self.kernel.machine.current)

    # -- entries made by the kernel's subsystems --------------------------------------------

    async def call_deferred(self, claim: Callable[[], tuple[int, int] | None], *, via: str, comm: str,
                            preempt_count: int = 0, check: bool = False) -> int | None:
        """Run a deferred call (a timer's function, a tasklet, a work item):
        take the CPU first, then `claim()` takes the call off its queue and
        gives (function, argument) — or None if it was cancelled, or freed
        with its module, while this waited for the CPU: then nothing runs.

        From taking the CPU to the function's first instruction nothing else
        runs, so what `claim` saw is what runs: as Linux takes a timer off
        its wheel (`expire_timers`) or a work item off its pool's list
        (`process_one_work`) in the step that calls it.  A module freed
        before then (its exit returned while this waited) still finds the
        call queued, reports it and cancels it: it never runs into freed code."""
        sched = self.kernel.machine.sched
        task = sched.new_task(comm)
        try:
            await sched.acquire(task)
            claimed = claim()
            if claimed is None:
                return None
            function, argument = claimed
            task.module = self.module_at(function)
            return await self.call_pointer(function, argument, via=via, comm=comm,
                                           preempt_count=preempt_count, task=task, check=check)
        finally:
            sched.exit_task(task)

    async def call_pointer(self, address: int, *args: int, via: str, comm: str = "kworker/0:1",
                           preempt_count: int = 0, task: "Task | None" = None,
                           check: bool = True) -> int:
        """Call module code through a function pointer from a subsystem: the
        entry checked (in process context; `check=False` for a module's own
        deferred work — a timer, work, a thread it started — whose lifetime
        rule is "cancel it before you go", checked when it goes), run as a
        task (or on `task`), an oops logged and turned into EFAULT."""
        kernel = self.kernel
        if check and not preempt_count:
            self.check_entry(address, None, None, via)
        module = self.module_at(address)
        try:
            return await kernel.machine.call(address, *args, module=module,
                                             name=comm, task=task, preempt_count=preempt_count)
        except Oops as oops:
            kernel.report_oops(oops, getattr(module, "name", None))
            raise KernelError(errno.EFAULT, f"{via}: the call into {kernel.symbolize(address) or hex(address)} "
                                            f"oopsed: {oops.lines[0]}") from None
