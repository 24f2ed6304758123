"""The timer interrupt: ends guest time slices without a thread per slice.

`Uc.emu_start(timeout=...)` makes Unicorn create and join a watchdog thread on
every call (one clone3 and one clock_nanosleep each): 180-290 µs of thread
start-up on every entry into guest code, against ~7 µs for the entry itself.
Instead, one long-lived thread per process plays the local APIC timer: a run
of guest code registers its deadline (`arm`), and the thread calls
`uc_emu_stop()` on any run still going at its deadline.  Unicorn's own
watchdog does exactly that from its thread, so stopping from another thread
is what the library supports.

Why a thread and not a trio task: while guest code runs, the trio thread is
inside `emu_start` (with the GIL released) and no task of its can run.

Exactness: a run is stopped within `RETRY` of its deadline — the thread
sleeps until the earliest deadline, and a stop that races with the start of
the run it targets (Unicorn clears a stop request when a run begins) is
repeated every `RETRY` while that same run is registered.  When no guest code
runs for `LINGER`, the thread waits on a condition and costs nothing; while
code runs it wakes about once per deadline or `LINGER`, never per entry.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any

RETRY = 0.001          # seconds between repeated stops of one run past its deadline
LINGER = 0.01          # seconds without any run before the thread sleeps until woken


class SliceTimer:
    """Deadlines of the guest runs in progress, in any thread of the process."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._runs: dict[int, list[Any]] = {}         # key -> [uc, deadline]
        self._keys = itertools.count(1)
        self._idle = False
        self._active = False       # a run was armed since the thread last looked
        self._thread: threading.Thread | None = None

    def arm(self, uc: Any, deadline: float) -> int:
        """A run of `uc` begins now and must stop at `deadline` (on
        time.monotonic()'s clock); returns the key `disarm` takes when the
        run has returned."""
        key = next(self._keys)
        # No lock on this path: a dict insert is atomic under the GIL, and
        # the thread reads a snapshot.  Only a sleeping thread needs waking.
        self._runs[key] = [uc, deadline]
        self._active = True
        if self._idle or self._thread is None:
            with self._cond:
                if self._thread is None:
                    self._start()
                self._cond.notify()
        return key

    def disarm(self, key: int) -> None:
        del self._runs[key]

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kloader-slice-timer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        cond = self._cond
        with cond:
            while True:
                runs = list(self._runs.values())
                if not runs:
                    if self._active:
                        # Runs come and go: linger a slice rather than be
                        # woken (two context switches) by every entry.
                        self._active = False
                        cond.wait(LINGER)
                        continue
                    # Say so before looking again: a run armed after this
                    # look sees _idle and notifies, under the lock we hold
                    # until wait() releases it.
                    self._idle = True
                    if not self._runs:
                        cond.wait()
                    self._idle = False
                    continue
                now = time.monotonic()
                earliest = min(deadline for _uc, deadline in runs)
                if earliest > now:
                    # Nothing to notify about: a run armed later has a later deadline.
                    cond.wait(earliest - now)
                    continue
                for run in runs:
                    if run[1] <= now:
                        run[0].emu_stop()
                        run[1] = now + RETRY

    def _after_fork(self) -> None:
        """In a forked child the thread does not exist: start afresh."""
        self._cond = threading.Condition(threading.Lock())
        self._runs.clear()
        self._idle = self._active = False
        self._thread = None


TIMER = SliceTimer()
os.register_at_fork(after_in_child=TIMER._after_fork)
