"""mm/mmu_notifier.c: `mmu_notifier_synchronize` (ib_uverbs's exit).

Linux waits there for the SRCU readers of mmu notifiers and the callbacks
they scheduled, so a module whose notifier ops are about to go is not
called into.  kloader registers no mmu notifier (`mmu_notifier_register`
is not emulated: there are no user address spaces), so there is nothing
to wait for and it returns at once.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export


@export("mmu_notifier_synchronize", "void mmu_notifier_synchronize(void)", nargs=0, gpl=True)
def mmu_notifier_synchronize(ctx: Any) -> None:
    return None
