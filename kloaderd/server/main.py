"""The `kloaderd` command: one emulated kernel served in the foreground.

Every field of `KernelOptions` becomes a flag, so a new kernel limit is a
daemon option without touching this file.  `--log-level` is the console log
level, as Linux's `loglevel=`: kernel messages more urgent than it are copied
to stderr, which is how a person watching the daemon sees init and exit run.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import signal
import socket
import sys
from typing import Any, Callable

import trio

from kloaderd import __version__, uapi
from kloaderd.errors import KernelError
from kloaderd.server import activation
from kloaderd.server.collector import Collector
from kloaderd.server.server import serve
from kloaderd.uapi import default_socket_path

LEVELS = {name: level for level, name in enumerate(uapi.LOG_LEVEL_NAMES)} | {"warning": 4}
# Console levels print records whose level is below them (Linux's console_loglevel).
_PYTHON_LEVELS = [logging.CRITICAL] * 3 + [logging.ERROR, logging.WARNING, logging.WARNING,
                                           logging.INFO, logging.DEBUG, logging.DEBUG]


def console_level(text: str) -> int:
    """`info` prints info and more urgent; a number is Linux's console_loglevel itself."""
    if text.isdigit() and 0 <= int(text) <= 8:
        return int(text)
    try:
        return LEVELS[text.lower()] + 1
    except KeyError:
        raise argparse.ArgumentTypeError(f"unknown log level {text!r}: use 0-8 or "
                                         + ", ".join(LEVELS)) from None


def parser(options_type: type) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kloaderd", description="Serve an emulated Linux module loader "
                                "on a Unix socket, in the foreground.")
    p.add_argument("--version", action="version", version=f"%(prog)s (kloader) {__version__}")
    p.add_argument("--socket", metavar="PATH",
                   help="the Unix socket to listen on (default: $KLOADERD_SOCKET, else "
                        "$XDG_RUNTIME_DIR/kloaderd.sock, else /tmp/kloaderd-$UID/kloaderd.sock); "
                        "a socket passed by systemd socket activation takes its place")
    p.add_argument("--log-level", type=console_level, default=console_level("info"), metavar="LEVEL",
                   help="console log level: kernel messages of this level and more urgent go to "
                        "stderr (emerg..debug, or Linux's 0-8; default info)")
    kernel = p.add_argument_group("kernel options")
    for field in dataclasses.fields(options_type):
        flag = "--" + field.name.replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        kind = type(default)
        meaning = f"{field.metadata.get('help', '')} (default: {default!r})".lstrip()
        if kind is bool:
            kernel.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=meaning)
        elif kind in (int, float, str):
            kernel.add_argument(flag, type=_checked(field, kind), default=default, help=meaning,
                                metavar=field.metadata.get("metavar") or kind.__name__.upper())
    return p


def _checked(field: dataclasses.Field[Any], kind: type) -> Callable[[str], Any]:
    """The option's type, refusing what the option itself would refuse (`--watchdog -1`)."""
    from kloaderd.kernel.options import option_problem

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a{'n' if kind is int else ''} {kind.__name__}: {text!r}") from None
        problem = option_problem(field, value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    return convert


def make_parser() -> argparse.ArgumentParser:
    """kloaderd's options, for main() and tools/command_docs.py.  From
    kloaderd.kernel.options alone: `--help` and a refused option answer
    without loading the emulator."""
    from kloaderd.kernel.options import KernelOptions

    return parser(KernelOptions)


class Console:
    """Copies kernel log records below the console level to stderr, as Linux's console does."""

    def __init__(self, kernel: Any, level: int) -> None:
        self.log = kernel.log
        self.level = level
        self.seq = 0

    def _print(self, record: Any) -> None:
        self.seq = record.seq
        if record.level < self.level:
            print(self.log.format(record), file=sys.stderr, flush=True)

    async def follow(self) -> None:
        async for record in self.log.follow(since=self.seq):
            self._print(record)

    def flush(self) -> None:
        for record in self.log.records(since=self.seq):
            self._print(record)


async def run(kernel: Any, socket_path: str, level: int, inherited: socket.socket | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then unload every module and return."""
    console = Console(kernel, level)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(console.follow)
            collector = Collector()
            collector.install()
            path = await nursery.start(functools.partial(serve, kernel, socket_path, inherited=inherited,
                                                         collector=collector))
            print(path, flush=True)
            async for signum in signals:
                logging.getLogger("kloaderd").info("%s: shutting down", signal.Signals(signum).name)
                break
            # Refuse new loads and interrupt sleeping inits (a load is not
            # cancelled by its client going away, so nothing else would end
            # one that sleeps forever), stop listening and end the sessions:
            # their references go and their waiting removals are given up
            # before the modules are removed.
            kernel.begin_shutdown()
            nursery.cancel_scope.cancel()
        await kernel.shutdown()
        console.flush()


def main(argv: list[str] | None = None) -> int:
    from kloaderd.kernel.options import KernelOptions

    args = make_parser().parse_args(argv)
    from kloaderd.kernel.kernel import Kernel    # the emulator, once the options hold
    options = KernelOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(KernelOptions)})
    logging.basicConfig(level=_PYTHON_LEVELS[args.log_level], format="kloaderd: %(message)s")
    failures: list[str] = []
    # except*: trio wraps what a nursery raises in an ExceptionGroup.
    try:
        inherited = activation.listen_socket()   # systemd's, which --socket does not override
        trio.run(run, Kernel(options), args.socket or default_socket_path(), args.log_level, inherited)
    except* KernelError as group:
        failures += [exc.message for exc in _leaves(group)]
    except* OSError as group:
        failures += [str(exc) for exc in _leaves(group)]
    for failure in failures:
        print(f"kloaderd: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _leaves(group: BaseExceptionGroup) -> list[Any]:
    return [leaf for exc in group.exceptions
            for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])]


if __name__ == "__main__":
    sys.exit(main())
