"""Embedding kloaderd in a test suite: a daemon in the caller's trio run or on
a background thread, with a socket of its own and its kernel in reach.

A suite wants one line, not a shell: `serve()` puts the whole daemon (the
same `kloaderd.server.server.serve` the `kloaderd` command runs) inside the
caller's trio run; `run_in_thread()` gives it a thread and a trio run of its
own, for synchronous suites and any other event loop.  Each daemon listens in
a fresh private directory unless told where, so parallel suites and pytest-xdist
workers never meet.  Leaving the context does what SIGTERM does to `kloaderd`
(sessions end, modules are removed users-first with their exits run) and then
looks back over the kernel log for what a test cannot afford to miss: memory
leaked by a module, an oops, a kernel WARNING.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import socket
import stat
import tempfile
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import trio

from kloaderd.kernel.printk import Problem

T = TypeVar("T")
OnProblems = Literal["warn", "raise", "ignore"]
ON_PROBLEMS = ("warn", "raise", "ignore")

SOCKET_NAME = "kloaderd.sock"

# Taints that say something went wrong at run time (not P/O/E: how modules were built).
_TROUBLE_TAINTS = "DLW"   # died (oops), soft lockup, warning


@dataclass(frozen=True)
class Problems:
    """What went wrong in an embedded kernel, read back from its log."""

    leaks: tuple[str, ...] = ()        # "leaky: leaked 64 bytes in 2 allocations"
    oopses: tuple[str, ...] = ()       # the first line of each oops, BUG or panic report
    warnings: tuple[str, ...] = ()     # "WARNING: ..." lines
    tainted: str = "Not tainted"       # print_tainted() at the end
    taints: str = ""                   # the run-time taint letters among them
    sanitizer: tuple[str, ...] = ()    # the summary line of each sanitizer report

    def __bool__(self) -> bool:
        return bool(self.leaks or self.oopses or self.warnings or self.sanitizer or self.taints)

    def __str__(self) -> str:
        if not self:
            return "no leaks, oopses or warnings"
        parts = [f"{_count(len(lines), noun)}: " + "; ".join(lines)
                 for noun, lines in (("oops", self.oopses), ("sanitizer report", self.sanitizer),
                                     ("leak", self.leaks), ("warning", self.warnings)) if lines]
        return f"kloader kernel {self.tainted}: " + (" | ".join(parts) or
                                                     f"taints {self.taints} (log lines lost)")

    @classmethod
    def of_kernel(cls, kernel: Any) -> Problems:
        """What `kernel` has logged and is tainted with so far."""
        return cls.from_log(kernel.log.records(), kernel.taints, kernel.taint_string())

    @classmethod
    def from_log(cls, records: Sequence[Any], taints: set[str] | str = "",
                 tainted: str = "Not tainted") -> Problems:
        """Gather the problems the kernel reported in its log records (each
        report's summary line carries its `Problem`): nothing is read from
        the text, so a module's own printk of "BUG:" is no problem."""
        found: dict[Problem, list[str]] = {kind: [] for kind in Problem}
        for record in records:
            if record.problem is not None:
                found[record.problem].append(record.text.split("\n", 1)[0])
        letters = "".join(flag for flag in _TROUBLE_TAINTS if flag in taints)
        return cls(tuple(found[Problem.LEAK]), tuple(found[Problem.OOPS]), tuple(found[Problem.WARNING]),
                   tainted, letters, tuple(found[Problem.SANITIZER]))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('s') else 's'}"


class KernelProblems(Exception):
    """Raised on leaving a daemon started with `on_problems="raise"` that saw trouble."""

    def __init__(self, problems: Problems) -> None:
        super().__init__(str(problems))
        self.problems = problems


class KernelProblemWarning(UserWarning):
    """Issued on leaving a daemon (the default, `on_problems="warn"`) that saw trouble."""


class Daemon:
    """A running embedded kloaderd.

    `socket_path` is where clients connect; `kernel` is the emulated kernel
    itself, for assertions no socket can make.  The kernel belongs to the
    daemon's trio thread: from another thread (a `run_in_thread` daemon),
    reach it through `run_sync`/`run`, which are plain calls in its own run
    and after the daemon has stopped.
    """

    def __init__(self, kernel: Any, socket_path: str) -> None:
        self.kernel = kernel
        self.socket_path = socket_path
        self.trio_token = trio.lowlevel.current_trio_token()
        self.problems: Problems | None = None   # set when the daemon has stopped
        self._running = True

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<kloaderd daemon {state} on {self.socket_path}>"

    @property
    def running(self) -> bool:
        return self._running

    def _elsewhere(self) -> bool:
        """True when called from outside the daemon's own, still running, trio run."""
        if not self._running:
            return False
        try:
            return trio.lowlevel.current_trio_token() is not self.trio_token
        except RuntimeError:
            return True

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` where the kernel may safely be touched."""
        if self._elsewhere():
            return trio.from_thread.run_sync(fn, *args, trio_token=self.trio_token)
        return fn(*args)

    def run(self, afn: Callable[..., Any], *args: Any) -> Any:
        """`await afn(*args)` in the daemon's trio run, from another thread."""
        if not self._elsewhere():
            raise RuntimeError("Daemon.run() is for other threads; in the daemon's own "
                               "trio run, await the kernel directly")
        return trio.from_thread.run(afn, *args, trio_token=self.trio_token)

    def records(self, since: int = 0) -> list[Any]:
        """The kernel log records with seq > since (see `LogBuffer.records`)."""
        return self.run_sync(self.kernel.log.records, since)

    def dmesg(self, since: int = 0) -> list[str]:
        """The kernel log as `kdmesg` prints it."""
        return [self.kernel.log.format(r) for r in self.records(since)]

    def find_problems(self) -> Problems:
        """Leaks, oopses and warnings logged so far."""
        return self.run_sync(Problems.of_kernel, self.kernel)


def _check_on_problems(on_problems: str) -> None:
    if on_problems not in ON_PROBLEMS:
        raise ValueError(f"on_problems must be one of {', '.join(ON_PROBLEMS)}, "
                         f"not {on_problems!r}")


def _settle(daemon: Daemon, on_problems: str, body_failed: bool) -> None:
    """Report what the kernel saw; a failure of the caller's own is never masked."""
    problems = daemon.problems
    if not problems or on_problems == "ignore":
        return
    if on_problems == "raise" and not body_failed:
        raise KernelProblems(problems)
    warnings.warn(KernelProblemWarning(str(problems)), stacklevel=4)


PRIVATE_DIR = re.compile(r"kl-(\d+)-[^/]+")     # kl-PID-RANDOM: the process that made it


def _private_socket() -> tuple[str, str]:
    """A socket path in a fresh directory of its own: short (sun_path holds
    107 bytes, and pytest's tmp_path easily exceeds that), private (0700), and
    never shared between daemons, processes or xdist workers.

    `serve` removes it when it ends; a process that never got there (killed,
    or exiting with a daemon thread still running) cannot, so the directories
    of this user's dead processes are removed here, on the next start."""
    _reap_private_sockets()
    directory = tempfile.mkdtemp(prefix=f"kl-{os.getpid()}-", dir="/tmp")
    return directory, os.path.join(directory, SOCKET_NAME)


def _reap_private_sockets() -> None:
    """Remove /tmp/kl-PID-* directories of ours whose process is gone."""
    try:
        names = os.listdir("/tmp")
    except OSError:
        return
    for name in names:
        match = PRIVATE_DIR.fullmatch(name)
        if match is None or _alive(int(match.group(1))):
            continue
        path = os.path.join("/tmp", name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if st.st_uid == os.geteuid() and stat.S_ISDIR(st.st_mode) and not _serving(path):
            shutil.rmtree(path, ignore_errors=True)


def _serving(directory: str) -> bool:
    """Someone answers on the directory's socket (a process of another pid
    namespace, say): not ours to remove."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(os.path.join(directory, SOCKET_NAME))
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:            # EPERM: someone else's, alive
        pass
    return True


@asynccontextmanager
async def serve(socket_path: str | os.PathLike[str] | None = None, *,
                on_problems: OnProblems = "warn", **kernel_options: Any) -> AsyncIterator[Daemon]:
    """`async with kloaderd.serve() as daemon:` — a daemon in this trio run.

    `kernel_options` are `KernelOptions` fields (`watchdog=`, `try_get_coming=`,
    ...).  On exit: sessions end, modules are removed users-first, and leaks,
    oopses and warnings found in the log are warned about (`"warn"`), raised
    as `KernelProblems` (`"raise"`), or only recorded in `daemon.problems`.
    """
    from kloaderd.kernel.kernel import Kernel, KernelOptions
    from kloaderd.server.server import serve as serve_socket

    _check_on_problems(on_problems)
    kernel = Kernel(KernelOptions(**kernel_options))
    directory = None
    if socket_path is None:
        directory, socket_path = _private_socket()
    daemon: Daemon | None = None
    failure: BaseException | None = None
    try:
        # Nothing may escape the nursery's body: trio would wrap it in an
        # ExceptionGroup, and `pytest.raises(FileNotFoundError)` around a
        # client call in the body must still see a FileNotFoundError.
        async with trio.open_nursery() as nursery:
            try:
                path = await nursery.start(serve_socket, kernel, os.fspath(socket_path))
                daemon = Daemon(kernel, path)
                yield daemon
            except BaseException as exc:   # re-raised below, once the server has stopped
                failure = exc
            finally:
                kernel.begin_shutdown()      # sleeping inits must not hold the exit
                nursery.cancel_scope.cancel()
    finally:
        # Even after a server crash: exits still run and leaks are still counted;
        # and even if that is cancelled (a test's deadline), the directory goes.
        try:
            await kernel.shutdown()
        finally:
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
        if daemon is not None:
            daemon._running = False
            daemon.problems = Problems.of_kernel(kernel)
    if failure is not None:
        if daemon is not None:
            _settle(daemon, on_problems, body_failed=True)
        raise failure
    assert daemon is not None
    _settle(daemon, on_problems, body_failed=False)


@contextmanager
def run_in_thread(socket_path: str | os.PathLike[str] | None = None, *,
                  on_problems: OnProblems = "warn", **kernel_options: Any) -> Iterator[Daemon]:
    """`with kloaderd.run_in_thread() as daemon:` — the same daemon on a
    background thread running its own trio run, for synchronous suites and
    other event loops (asyncio included).

    Startup errors (a live daemon on `socket_path`, a bad option) are raised
    here; a daemon that dies while the body runs is raised on exit.
    """
    _check_on_problems(on_problems)
    handoff: queue.SimpleQueue[Any] = queue.SimpleQueue()
    crashed: list[BaseException] = []

    async def daemon_main() -> None:
        async with serve(socket_path, on_problems="ignore", **kernel_options) as daemon:
            stop = trio.Event()
            handoff.put((daemon, stop))
            await stop.wait()

    def thread_main() -> None:
        try:
            trio.run(daemon_main)
        except BaseException as exc:
            crashed.append(exc)
            handoff.put(exc)   # unblocks a caller still waiting for startup

    thread = threading.Thread(target=thread_main, name="kloaderd", daemon=True)
    thread.start()
    started = handoff.get()
    if isinstance(started, BaseException):
        thread.join()
        raise started
    daemon, stop = started
    try:
        yield daemon
    except BaseException:
        _stop_thread(daemon, stop, thread, crashed)
        _settle(daemon, on_problems, body_failed=True)
        raise
    _stop_thread(daemon, stop, thread, crashed)
    _settle(daemon, on_problems, body_failed=False)


def _stop_thread(daemon: Daemon, stop: trio.Event, thread: threading.Thread,
                 crashed: list[BaseException]) -> None:
    try:
        trio.from_thread.run_sync(stop.set, trio_token=daemon.trio_token)
    except trio.RunFinishedError:
        pass   # the run already ended: its error is in `crashed`
    thread.join()
    if crashed:
        raise crashed[0]
