"""`current`: each task's `struct task_struct` as far as modules read it
inline, and the per-CPU pointer to the running one.

Linux's `current` is `%gs:current_task` (6.1) or `%gs:pcpu_hot` (6.2+,
whose first member is `current_task`; `const_pcpu_hot` is the same
memory), and inline helpers read the task through it: `current_cred()`,
`current_uid()`, `current_user_ns()` read `current->cred`, `current->comm`
and `current->pid` are printed.  So while a task runs guest code the
per-CPU pointer holds its task_struct address (`Task.current`), and the
first page of that task_struct is memory holding, at the running kernel's
offsets, what kloader knows of a kernel thread:

* `__state` TASK_RUNNING, `flags` PF_KTHREAD, `stack` its kernel stack;
* `pid` and `tgid` its pid, `comm` its name;
* `real_cred` and `cred` its credentials (kernel/cred.py: `init_cred`
  until it overrides or commits others).

The rest of that page reads zero; past it the slot is unmapped, so a read
of a member kloader does not fill there (`mm`, `signal`, `nsproxy`, ...)
oopses at the reading instruction rather than inventing a value.  Where the
running kernel's layouts lack `struct task_struct`, or put one of these
members past the first page, or the kernel exports no per-CPU `current`
(kloader's own), no page is filled and `current` stays NULL.
"""

from __future__ import annotations

import struct as _struct
from typing import TYPE_CHECKING

from ..config import PAGE_SIZE
from .api import at_boot
from .layouts import struct

if TYPE_CHECKING:
    from .kernel import Kernel
    from .sched import Task

TASK = struct("struct task_struct", "linux/sched.h", "__state", "stack", "flags", "pid", "tgid",
              "real_cred", "cred", "comm")
PF_KTHREAD = 0x00200000
TASK_COMM_LEN = 16
# Per-CPU exports whose first 8 bytes are `current_task`, by release.
CURRENT_POINTERS = ("current_task", "pcpu_hot")


class TaskStructs:
    """Fills each new task's page and writes the credentials it changes to."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.layout = kernel.layouts[TASK] if kernel.layouts.has(TASK) else None
        # The per-CPU words modules read `current` from: none in kloader's
        # own kernel (its headers have no `current`), where filling pages
        # would be work nobody reads.
        offsets = [kernel.percpu.offset_of(name) for name in CURRENT_POINTERS]
        self.words = [kernel.machine.mem.word(kernel.percpu.base + offset)
                      for offset in offsets if offset is not None]
        self.usable = bool(self.words) and self.layout is not None and _first_page(self.layout)
        self.init_cred = 0          # what a new task runs with, kernel/cred.py's at boot

    def fill(self, task: "Task") -> None:
        layout, mem, base = self.layout, self.kernel.machine.mem, task.current
        page = bytearray(PAGE_SIZE)
        _struct.pack_into("<I", page, getattr(layout, "__state"), 0)             # TASK_RUNNING
        _struct.pack_into("<I", page, layout.flags, PF_KTHREAD)
        _struct.pack_into("<Q", page, layout.stack, task.stack_base)
        _struct.pack_into("<i", page, layout.pid, task.pid)
        _struct.pack_into("<i", page, layout.tgid, task.pid)
        name = task.comm.encode(errors="replace")[:TASK_COMM_LEN - 1]
        page[layout.comm:layout.comm + len(name)] = name
        if self.init_cred:
            task.cred = task.real_cred = self.init_cred
            _struct.pack_into("<Q", page, layout.real_cred, task.real_cred)
            _struct.pack_into("<Q", page, layout.cred, task.cred)
        mem.write_data(base, bytes(page))

    def show_creds(self, task: "Task") -> None:
        """The task's cred and real_cred as the kernel changed them."""
        mem = self.kernel.machine.mem
        mem.write_data(task.current + self.layout.real_cred, task.real_cred.to_bytes(8, "little"))
        mem.write_data(task.current + self.layout.cred, task.cred.to_bytes(8, "little"))


def _first_page(layout) -> bool:
    """Whether every member filled lies in the first page of the slot."""
    last = max(getattr(layout, "__state"), layout.stack, layout.flags, layout.pid, layout.tgid,
               layout.real_cred, layout.cred) + 8
    return max(last, layout.comm + TASK_COMM_LEN) <= PAGE_SIZE


def task_structs(kernel: "Kernel") -> TaskStructs:
    return kernel.subsystem(TaskStructs)


@at_boot
def _boot(kernel: "Kernel") -> None:
    structs = task_structs(kernel)
    if not structs.usable:
        return
    kernel.machine.sched.on_new_task = structs.fill
    kernel.machine.current_words = structs.words
