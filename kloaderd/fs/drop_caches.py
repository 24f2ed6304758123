"""/proc/sys/vm/drop_caches (Linux's fs/drop_caches.c): writing 2 runs
every registered shrinker's count and scan as drop_slab() does
(kloaderd/mm/vmscan.py), 1 the page cache (kloader has none: nothing to
drop), 3 both; 4 silences the "drop_caches" line from then on.

The file is write-only (0200), for the privileged session, and takes what
proc_dointvec_minmax takes between 1 and 4; anything else is EINVAL.  Each
write logs `COMM (PID): drop_caches: N` at KERN_INFO until a value with 4
was written, as Linux does.  The shrinkers run in the writer's call, so
the write returns once reclaim is done.

Where kloader differs: only this file exists under /proc/sys (modules'
sysctl tables are recorded but not shown: proc_sysctl.py).
"""

from __future__ import annotations

import errno
import re
from typing import Any

from ..errors import KernelError
from ..kernel.printk import KERN_INFO
from ..mm.vmscan import shrinkers
from .tree import Content, FileTree, populate

PATH = "/proc/sys/vm/drop_caches"
_INT = re.compile(rb"\s*([-+]?\d+)\s*")


class DropCaches:
    """The handler's static `stfu`, per kernel."""

    def __init__(self, kernel: object) -> None:
        self.quiet = False


@populate
def _drop_caches(tree: FileTree) -> None:
    for path in ("/proc/sys", "/proc/sys/vm"):
        try:
            tree.lookup(path)
        except KernelError:
            tree.mkdir(path, mode=0o555)
    kernel = tree.kernel

    async def store(file: Any, data: bytes) -> None:
        found = _INT.fullmatch(data)
        value = int(found.group(1)) if found else 0
        if not 1 <= value <= 4:
            raise KernelError(errno.EINVAL, f"write {PATH}: {data[:32]!r} is not 1, 2, 3 or 4 (Invalid argument)")
        if value & 2:
            await shrinkers(kernel).drop_slab(file.comm)
        state = kernel.subsystem(DropCaches)
        if not state.quiet:
            task = kernel.machine.sched.new_task(file.comm)     # the writer, for its pid
            kernel.machine.sched.exit_task(task)
            kernel.log.emit(KERN_INFO, f"{file.comm} ({task.pid}): drop_caches: {value}", None)
        state.quiet |= bool(value & 4)
    tree.add("/proc/sys/vm", "drop_caches", Content(None, store), mode=0o200)
