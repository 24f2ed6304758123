"""/proc/interrupts (Linux's kernel/irq/proc.c, `show_interrupts`): the
lines that have handlers, with their count on the one CPU, the chip, the
pin, the flow and the handlers' names, as Linux prints them:

```
           CPU0       
  0:          0   IO-APIC   2-edge      timer
  5:          2   IO-APIC   5-edge      irqmod
```

Where kloader differs: x86's summary lines (NMI:, LOC:, ...) are not
printed (they count events kloader's machine does not have).
"""

from __future__ import annotations

from typing import Any

from ..fs.tree import Content, FileTree, populate
from .manage import IRQF_TRIGGER_MASK, irqs

PREC = 3                       # digits of nr_irqs, at least 3


def show_interrupts(kernel: Any) -> str:
    lines = [" " * (PREC + 8) + f"CPU{0:<8d}"]
    for desc in irqs(kernel).descs.values():
        if not desc.actions:
            continue
        pin = 2 if desc.irq == 0 else desc.irq          # the timer is wired to IO-APIC pin 2
        level = desc.actions[0].flags & IRQF_TRIGGER_MASK & 0xC      # IRQF_TRIGGER_HIGH | _LOW
        flow = "fasteoi" if level else "edge"
        names = ", ".join(a.name for a in desc.actions)
        lines.append(f"{desc.irq:{PREC}d}: {desc.count:10d}  {desc.chip:>8s} {pin:{PREC}d}-{flow:<8s}  {names}")
    return "".join(line + "\n" for line in lines)


@populate
def _proc_interrupts(tree: FileTree) -> None:
    tree.add("/proc", "interrupts", Content(lambda file: show_interrupts(tree.kernel)), mode=0o444)
