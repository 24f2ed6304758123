"""The `kloaderd` process's garbage-collection policy.

A loaded module is ~100 long-lived Python objects (its image's sections and
symbols, its layout, kallsyms entries); with 3,000 loaded, one full
collection walks 300 k objects and stalls every client for 300+ ms, for
nothing: those objects live until the module goes, and unloading frees them by
reference counting.  So the daemon freezes (`gc.freeze`) what exists once it
has started, and again after each successful load — first collecting the
young generations, so no fresh garbage is frozen with it.  Full collections
then walk only what is new since the last load.

Only for a process that is the daemon: an embedded daemon (the pytest
plugin) shares its process with the test suite, whose objects are not ours to
freeze.  `stats()` (in `status`) shows the longest pause, so a regression is
visible from outside.  It counts freezes rather than frozen objects:
`gc.get_freeze_count()` walks the whole frozen list (0.5 ms in an empty
daemon, more with every module), and `status` is the request clients poll.
"""

from __future__ import annotations

import gc
import time
from typing import Any


class Collector:
    def __init__(self) -> None:
        self.collections = 0
        self.longest = 0.0              # seconds
        self.freezes = 0
        self._started = 0.0

    def install(self) -> None:
        """Freeze the start-up objects and time every collection from now on."""
        gc.collect()
        self._freeze()
        gc.callbacks.append(self._observe)

    def uninstall(self) -> None:
        if self._observe in gc.callbacks:
            gc.callbacks.remove(self._observe)

    def settle(self) -> None:
        """After a load: young garbage collected, the survivors frozen."""
        gc.collect(1)
        self._freeze()

    def _freeze(self) -> None:
        gc.freeze()
        self.freezes += 1

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.collections += 1
            self.longest = max(self.longest, time.perf_counter() - self._started)

    def stats(self) -> dict[str, Any]:
        return {"collections": self.collections, "longest_pause_ms": self.longest * 1e3,
                "freezes": self.freezes}
