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

A run may also ask to go on past its deadline while nothing else needs the
CPU (`arm(..., until=, io=, tick=)`): at each deadline the thread looks at
the event loop's I/O (`io`, a descriptor that is readable when the loop has
events to handle: a client's request, a worker thread's result) and stops
the run only if there is some, or at `until`; otherwise the deadline moves
on by `tick`.  This is Linux's tick on a CPU with one runnable task: the
tick still comes (and `on_tick` does its other work: jiffies advance, so
code that waits for them without calling the kernel still sees them move),
but the task is preempted only when something else wants to run, so a busy
module that has the daemon to itself is not stopped and re-entered every
slice.  A stop costs the guest far more than Unicorn's
exit and re-entry: on a shared host a compute loop ran about 5 % slower
per 10 ms slice ended (interleaved with the same loop run through, docs/
performance.md), and not at all slower with a thread waking every
millisecond that did not stop it.

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
import select
import threading
import time
from typing import Any, Callable

import trio
from trio._core import _run

RETRY = 0.001          # seconds between repeated stops of one run past its deadline
LINGER = 0.01          # seconds without any run before the thread sleeps until woken


class SliceTimer:
    """Deadlines of the guest runs in progress, in any thread of the process."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._runs: dict[int, list[Any]] = {}         # key -> [uc, deadline, until, io, tick, on_tick]
        self._keys = itertools.count(1)
        self._idle = False
        self._active = False       # a run was armed since the thread last looked
        self._thread: threading.Thread | None = None

    def arm(self, uc: Any, deadline: float, until: float = 0.0, io: int = -1,
            tick: float = 0.0, on_tick: Callable[[float], None] | None = None) -> int:
        """A run of `uc` begins now and must stop at `deadline` (on
        time.monotonic()'s clock) — or, if `until` is later, at the first
        deadline, every `tick` from then, at which the descriptor `io` is
        readable, and at `until` at the latest; `on_tick(now)` is called, in
        this timer's thread, at each tick the run goes on past (the timer
        interrupt's other work: jiffies).  Returns the key `disarm` takes
        when the run has returned."""
        key = next(self._keys)
        # No lock on this path: a dict insert is atomic under the GIL, and
        # the thread reads a snapshot.  Only a sleeping thread needs waking.
        self._runs[key] = [uc, deadline, until, io, tick, on_tick]
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
                earliest = min(run[1] for run in runs)
                if earliest > now:
                    # Nothing to notify about: a run armed later has a later deadline.
                    cond.wait(earliest - now)
                    continue
                for run in runs:
                    if run[1] <= now:
                        if run[1] < run[2] and not _readable(run[3]):
                            # Nothing else wants the CPU: the next tick.
                            run[1] = min(now + run[4], run[2])
                            if run[5] is not None:
                                run[5](now)
                            continue
                        run[0].emu_stop()
                        run[1] = now + RETRY
                        run[2] = 0.0

    def _after_fork(self) -> None:
        """In a forked child the thread does not exist: start afresh."""
        self._cond = threading.Condition(threading.Lock())
        self._runs.clear()
        self._idle = self._active = False
        self._thread = None


def alone_until(budget: float) -> tuple[float, int] | None:
    """Called by a task of the event loop about to run guest code: if no
    other task of the loop is runnable, how long the run may go on past its
    slice (`arm`'s `until`: the loop's next deadline — a sleep, a timeout,
    a kernel timer — or `budget` seconds, whichever is sooner) and the
    descriptor that tells of the loop's I/O (`arm`'s `io`); None if the loop
    has work now, or its I/O cannot be watched (then every slice ends).

    trio has no public way to ask either: its statistics count the run
    queue but not the rest of the batch being run (tasks woken together with
    this one and not run yet), and do not give the epoll (kqueue)
    descriptor.  Both are read from trio's runner, and if trio changes them
    slices simply end every `tick` again."""
    try:
        runner = _run.GLOBAL_RUN_CONTEXT.runner
        io = runner.io_manager
        poller = getattr(io, "_epoll", None) or getattr(io, "_kqueue", None)
        if poller is None or any(t._next_send_fn is not None for t in runner.tasks):
            return None
        fd = poller.fileno()
    except AttributeError:
        return None
    left = min(budget, trio.lowlevel.current_statistics().seconds_to_next_deadline)
    return time.monotonic() + left, fd


def _readable(fd: int) -> bool:
    """Whether `fd` has input (an epoll or kqueue descriptor: whether its
    event loop has events waiting)."""
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    # POLLNVAL: closed meanwhile (its loop ended): stop the run.
    return bool(poll.poll(0))


TIMER = SliceTimer()
os.register_at_fork(after_in_child=TIMER._after_fork)
