"""The module-lifetime sanitizer: the FAQ's Golden Rule, checked on every
entry into a module through a function pointer, and what a module leaves
behind when it goes.  Always on.

Linux itself detects none of this: breaking the Golden Rule is a rare
crash, a use after unload a random one.  kloader makes each deterministic
and says what happened, in the kernel log, in the shapes Linux's own
debugging reports have (`BUG:` lines as KASAN's, `ODEBUG:` warnings as
debugobjects', `[last unloaded: M]` on oopses), so the plugin's problems
count them and `on_problems="raise"` fails the test:

* `golden.py`: an indirect call into module M from outside M, in process
  context, with nobody holding a reference on M and a caller that does not
  depend on M (docs/sanitizer.md lists what the FAQ allows);
* `lifetime.py`: freed module memory is quarantined (its addresses are not
  handed out again for a while), so executing, reading or writing it always
  faults, and the oops names the module that was there; registrations,
  timers, work and kthreads still pointing into a module when it is freed
  are reported and made inert; a module that drops its own last reference
  and keeps running while a removal waits is reported.
"""

from __future__ import annotations

from .golden import GoldenRule
from .lifetime import Lifetime

__all__ = ["GoldenRule", "Lifetime", "Sanitizer"]


class Sanitizer(GoldenRule, Lifetime):
    """One per kernel: the Golden Rule and lifetime checks share what they
    know about where modules are and were."""

    def __init__(self, kernel) -> None:
        Lifetime.__init__(self, kernel)
        GoldenRule.__init__(self, kernel)
