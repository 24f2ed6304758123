"""Module lifetime: what a module leaves behind when it is freed, and the
memory it leaves.

* Freed module memory is unmapped at once and its addresses *quarantined*:
  not handed to another module until `module_quarantine` more bytes have been
  freed after it (KASAN's quarantine, for module space).  So a stale
  function pointer or data pointer into a freed module always faults rather
  than running whatever was loaded there next, and the oops says which
  module the address belonged to, besides Linux's `[last unloaded: M]`.
* A pending timer, queued work or a running kthread of a module being freed
  is reported and made inert, so the daemon keeps working (debugobjects'
  `ODEBUG: free active` warning for timers and work); registrations left
  behind are reported by kloaderd/kernel/registry.py the same way.
* Put-and-return: a module that drops the last reference on itself from its
  own code while a removal waits lets the remover free the code it is about
  to return into; `module_put_and_kthread_exit` exists for exactly that.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..config import UTS_RELEASE
from ..errors import KernelError
from ..kernel.memory import GuestFault
from ..kernel.module import ModuleState
from ..kernel.oops import Oops, page_fault_header
from ..kernel.printk import KERN_ERR, KERN_WARNING, Problem

if TYPE_CHECKING:
    from ..kernel.internal import KernelServices
    from ..kernel.module import Module


@dataclass(frozen=True)
class Freed:
    name: str
    base: int
    size: int


class Lifetime:
    kernel: "KernelServices"

    def __init__(self, kernel: "KernelServices") -> None:
        self.kernel = kernel
        self._quarantine: deque[Freed] = deque()
        self.quarantined = 0                  # bytes of module space held back
        self.graveyard: deque[Freed] = deque()     # what the quarantined ranges held
        self.last_unloaded = ""               # "hello(O)", for the oops line
        # Per module going away: other subsystems' leftovers (timers, work, ...)
        self.leftover_checks: list[Callable[["Module"], None]] = []
        # Per heap object freed, while the subsystem has any active: (start, end) -> None
        self.free_checks: list[tuple[Sized, Callable[[int, int], None]]] = []
        kernel.slab.on_free = self.debug_check_no_obj_freed

    # -- quarantine -----------------------------------------------------------

    def quarantine(self, name: str, base: int, size: int) -> None:
        """Hold [base, base+size) back from the module allocator for a while."""
        freed = Freed(name, base, size)
        self._quarantine.append(freed)
        self.graveyard.append(freed)
        self.quarantined += size
        area = self.kernel.module_area
        while self.quarantined > self.kernel.options.module_quarantine and self._quarantine:
            old = self._quarantine.popleft()
            self.graveyard.remove(old)
            self.quarantined -= old.size
            area.free(old.base)

    def freed_at(self, address: int) -> Freed | None:
        for freed in reversed(self.graveyard):
            if freed.base <= address < freed.base + freed.size:
                return freed
        return None

    def annotate_oops(self, lines: list[str], addresses: tuple[int | None, ...]) -> list[str]:
        """An oops touching a freed module's memory says whose it was."""
        for address in addresses:
            freed = self.freed_at(address) if address is not None else None
            if freed is not None:
                at = next((i for i, line in enumerate(lines) if line.startswith("CPU: ")), len(lines))
                note = (f"The buggy address {address:#x} belongs to module {freed.name}, unloaded: "
                        f"[{freed.base:#x}-{freed.base + freed.size - 1:#x}]")
                return [*lines[:at], note, *lines[at:]]
        return lines

    def kernel_fault(self, fault: "GuestFault", where: str, comm: str) -> KernelError:
        """The emulated kernel itself touched unmapped memory (a stale
        pointer into a freed module, read by `vfs_read`...): the oops Linux
        would print, logged, and EFAULT for the caller."""
        kernel = self.kernel
        header = page_fault_header(fault.address, fault.access, fault.present,
                                   kernel.machine.next_die())
        lines = [*header,
                 f"CPU: 0 PID: 1 Comm: {comm} {kernel.taint_string()} {UTS_RELEASE} #1",
                 f"RIP: 0010:{where}",
                 f"Modules linked in: {kernel.modules_linked_in()}".rstrip(),
                 f"CR2: {fault.address:016x}",
                 "---[ end trace 0000000000000000 ]---"]
        kernel.report_oops(Oops("page-fault", lines, address=fault.address))
        return KernelError(errno.EFAULT, f"{where}: oops: {lines[0]}")

    # -- leftovers ------------------------------------------------------------------

    def belongs_to(self, mod: "Module", address: int) -> bool:
        """`address` lies in mod's images or in heap memory mod allocated:
        freed with it."""
        if not address:
            return False
        if mod.core_base <= address < mod.core_base + mod.layout.core.size:
            return True
        if not mod.init_freed and mod.init_base <= address < mod.init_base + mod.layout.init.size:
            return True
        return self.kernel.slab.holds(address, mod.name)

    def module_freed(self, mod: "Module") -> None:
        """`mod` is about to be freed: report and disarm what still points into it."""
        for check in self.leftover_checks:
            check(mod)
        flags = "".join(sorted(mod.taints & {"O", "P", "E", "C"}, key="PCOE".index))
        self.last_unloaded = f"{mod.name}({flags})" if flags else mod.name

    def watch_frees(self, active: Sized, check: Callable[[int, int], None]) -> None:
        """Call `check(start, end)` for each heap object freed while `active`
        (a subsystem's armed timers, queued work...) is not empty."""
        self.free_checks.append((active, check))

    def debug_check_no_obj_freed(self, address: int, size: int) -> None:
        """A heap object is being freed: an armed timer or queued work
        anywhere inside it (a struct embedding a timer_list at any offset) is
        reported and deactivated, as debugobjects' fixup_free does.  Every
        kfree asks, and the usual answer (nothing active anywhere) costs no
        call: this was a quarter of a kmalloc+kfree pair."""
        for active, check in self.free_checks:
            if active:
                check(address, address + size)

    def report_odebug(self, obj: int, kind: str, hint: str, state: int = 0) -> None:
        """debugobjects' report for an active object in freed memory."""
        log = self.kernel.log
        for line in ("------------[ cut here ]------------",
                     f"ODEBUG: free active (active state {state}) object: {obj:016x} object type: {kind} "
                     f"hint: {hint}",
                     "WARNING: CPU: 0 PID: 1 at lib/debugobjects.c:514 debug_print_object+0x7d/0xb0",
                     f"Modules linked in: {self.kernel.modules_linked_in()}".rstrip(),
                     "---[ end trace 0000000000000000 ]---"):
            log.emit(KERN_WARNING if line.startswith("WARNING") else KERN_ERR, line, None,
                     problem=Problem.SANITIZER if line.startswith("ODEBUG") else None)
        self.kernel.add_taint("W")

    # -- put and return ----------------------------------------------------------------

    def check_self_put(self, mod: "Module", caller: "Module | None", caller_addr: int) -> None:
        """module_put(THIS_MODULE) from mod's own code dropped its last
        reference while a removal waits: the remover may free the code this
        call returns into."""
        if caller is not mod or mod.refcount or mod.state is not ModuleState.GOING:
            return
        machine = self.kernel.machine
        for line in ("==================================================================",
                     f"BUG: module {mod.name} dropped its last reference and returns into its own code "
                     f"in {machine.symbol_name(caller_addr)}",
                     f"a removal of {mod.name} is waiting: it may free this code before it returns; "
                     "end a thread with module_put_and_kthread_exit()",
                     "=================================================================="):
            self.kernel.log.emit(KERN_ERR, line, None,
                                 problem=Problem.SANITIZER if line.startswith("BUG") else None)
