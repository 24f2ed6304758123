"""The kloader pytest plugin (registered as the `pytest11` entry point `kloader`).

Fixtures:

* `kloaderd` — a fresh daemon for the test on a background thread
  (`kloaderd.run_in_thread`): `.socket_path`, `.kernel`, `.run_sync()`.
* `kloader` — a `kloader_client.Client` connected to it.
* `kloaderd_async` / `kloader_async` — for pytest-trio tests: a daemon in the
  test's own trio run (`kloaderd.serve`) and an `AsyncClient` connected to it.
* `kloader_faults` — `.failslab(nth=N, ...)`, `.fail_function(name, retval)`,
  `.provide(name, fn)` on the test's `kloaderd` (Linux's fault injection and
  kernel functions defined from Python).
* `kloader_build` — `kloader_build(*sources, name=None, **build_options)`
  compiles C sources with kmodbuild into the test's tmp_path and returns the
  `.ko` path; skips the test where gcc or ld is missing.
* `kloader_module_tree` — `kloader_module_tree(*ko_files, release=None)`
  lays modules out as `lib/modules/RELEASE/kernel/` in tmp_path, writes
  kdepmod's files, and returns that directory (a `module_dir` for modprobe).
* `kloader_modprobe` — `kloader_modprobe(name, params="", *, tree=None,
  **options)`: `Client.modprobe` on the test's daemon, from `tree` (default:
  the daemon's `module_dir`) and with no modprobe.d unless `config=` says.

Options: `--kloader-watchdog`, `--kloader-try-get-coming`,
`--kloader-exporter-wait`, `--kloader-kernel DIR|RELEASE` (kernel options for every test's daemon),
`--kloader-log LEVEL` (which kernel messages a failed test's report shows),
`--kloader-problems warn|raise|ignore` (what leaks, oopses and WARNINGs do to
a test).  `@pytest.mark.kloader(**kernel_options)` sets any `KernelOptions`
field, or `on_problems`, for one test.

A test that used a daemon gets a "Captured kernel log" section per phase, as
pytest shows captured output.  Nothing here runs for tests that use none of
these fixtures, and nothing heavy is imported until a fixture is used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_DEFAULT_LOG = "debug"


@dataclass
class _Tracked:
    daemon: Any
    seen: int = 0          # log seq already shown in an earlier phase's section


_TRACKED = pytest.StashKey[list[_Tracked]]()
_LOG_LEVEL = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kloader", "kloader: embedded kloaderd daemons")
    group.addoption("--kloader-watchdog", type=float, metavar="SECONDS", default=None,
                    help="soft-lockup watchdog of each test's kernel (KernelOptions.watchdog)")
    group.addoption("--kloader-try-get-coming", action="store_true", default=None,
                    help="let try_module_get succeed on COMING modules, as modern Linux does")
    group.addoption("--kloader-exporter-wait", type=float, metavar="SECONDS", default=None,
                    help="how long a load waits for a COMING exporter")
    group.addoption("--kloader-kernel", metavar="DIR|RELEASE", default=None,
                    help="emulate this real kernel (its build tree, or a release found under "
                         "/lib/modules/RELEASE/build): KernelOptions.kernel")
    group.addoption("--kloader-log", metavar="LEVEL", default=_DEFAULT_LOG,
                    help="kernel messages of this level and more urgent are shown in a failed "
                         "test's report: emerg..debug, or 0-8 as kloaderd --log-level "
                         f"(0: none; default {_DEFAULT_LOG}: all)")
    group.addoption("--kloader-problems", choices=("warn", "raise", "ignore"), default="warn",
                    help="when a test's kernel leaked, oopsed or warned: warn (default), raise "
                         "(the test errors in teardown), or ignore")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kloader(**options): KernelOptions fields (watchdog=, try_get_coming=, ...) "
                   "and on_problems= for this test's kloaderd")
    text = config.getoption("kloader_log", _DEFAULT_LOG)
    if text == _DEFAULT_LOG:
        level = 8   # every level, without importing the daemon to say so
    else:
        import argparse

        from kloaderd.server.main import console_level
        try:
            level = console_level(text)
        except argparse.ArgumentTypeError as exc:
            raise pytest.UsageError(f"--kloader-log: {exc}") from None
    config.stash[_LOG_LEVEL] = level


def _daemon_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Command-line options, then markers from the farthest to the closest."""
    config = request.config
    options: dict[str, Any] = {"on_problems": config.getoption("kloader_problems")}
    for flag, field in (("kloader_watchdog", "watchdog"),
                        ("kloader_try_get_coming", "try_get_coming"),
                        ("kloader_exporter_wait", "exporter_wait"),
                        ("kloader_kernel", "kernel")):
        value = config.getoption(flag)
        if value is not None:
            options[field] = value
    for marker in reversed(list(request.node.iter_markers("kloader"))):
        if marker.args:
            raise TypeError("@pytest.mark.kloader takes keyword arguments only")
        options.update(marker.kwargs)
    return options


def _track(request: pytest.FixtureRequest, daemon: Any) -> None:
    request.node.stash.setdefault(_TRACKED, []).append(_Tracked(daemon))


@pytest.fixture
def kloaderd(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh kloaderd on a background thread, stopped (modules removed) after the test."""
    from kloaderd.embed import run_in_thread

    with run_in_thread(**_daemon_options(request)) as daemon:
        _track(request, daemon)
        yield daemon


@pytest.fixture
def kloader(kloaderd: Any) -> Iterator[Any]:
    """A `Client` connected to the test's `kloaderd`."""
    from kloader_client import Client

    with Client(kloaderd.socket_path, client_name="pytest") as client:
        yield client


@pytest.fixture
async def kloaderd_async(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A fresh kloaderd in the pytest-trio test's own trio run."""
    from kloaderd.embed import serve

    async with serve(**_daemon_options(request)) as daemon:
        _track(request, daemon)
        yield daemon


@pytest.fixture
async def kloader_async(kloaderd_async: Any) -> AsyncIterator[Any]:
    """An `AsyncClient` connected to the test's `kloaderd_async`."""
    from kloader_client import AsyncClient

    async with AsyncClient(kloaderd_async.socket_path, client_name="pytest") as client:
        yield client


class Injector:
    """`kloader_faults`: fault injection and provided functions for the test's
    kernel, run where the kernel may be touched (kloaderd/kernel/fault_inject.py)."""

    def __init__(self, daemon: Any) -> None:
        self._daemon = daemon

    def failslab(self, **attr: Any) -> Any:
        """Module kmallocs fail as Linux's failslab would: `nth=N` (the Nth from
        now), `times`, `probability`, `interval`, `space`, `verbose`."""
        return self._daemon.run_sync(lambda: self._daemon.kernel.faults.failslab(**attr))

    def fail_function(self, name: str, retval: int, **attr: Any) -> Any:
        """The kernel function `name` returns `retval` instead of running."""
        return self._daemon.run_sync(
            lambda: self._daemon.kernel.faults.fail_function(name, retval, **attr))

    def provide(self, name: str, fn: Callable[..., Any], *, nargs: int | None = None,
                gpl: bool = False) -> None:
        """Define or override the kernel function `name`: `fn(ctx, *args)`."""
        self._daemon.run_sync(lambda: self._daemon.kernel.provide(name, fn, nargs=nargs, gpl=gpl))


@pytest.fixture
def kloader_faults(kloaderd: Any) -> Injector:
    """Fault injection (failslab, fail_function) and provided kernel functions
    for the test's `kloaderd`; its leaks are reported with the test's problems."""
    return Injector(kloaderd)


@pytest.fixture(scope="session")
def _kloader_build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kloader-build")


def _build_key(sources: list[Path], name: str, options: dict[str, Any]) -> str:
    """Everything a build depends on that a test can change: the sources,
    the headers in its include directories, the objects it links against."""
    digest = hashlib.sha256(repr((name, sorted(options.items()))).encode())
    inputs = list(sources) + [Path(p) for p in options.get("extra_symbols", ())]
    for directory in options.get("include_dirs", ()):
        inputs.extend(sorted(p for p in Path(directory).rglob("*") if p.is_file()))
    for path in inputs:
        digest.update(str(path).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:24]


@pytest.fixture
def kloader_build(request: pytest.FixtureRequest, tmp_path: Path,
                  _kloader_build_cache: Path) -> Callable[..., Path]:
    """`kloader_build(*sources, name=None, **options) -> Path` of the built `.ko`.

    `options` are `kloaderd.build.build_module`'s (`include_dirs`, `defines`,
    `vermagic`, `extra_symbols`, `cflags`, `verbose`, `kernel`).  Under a
    kernel profile (`--kloader-kernel`, `@pytest.mark.kloader(kernel=...)`)
    the module is built with that kernel's own kbuild, unless `kernel=None`
    is given.  The module is named after the first source unless `name` is
    given.  The same build asked for again in the session is copied, not
    compiled again (unless `verbose`, which is asked for to see the compiler run).
    """
    profile_kernel = _daemon_options(request).get("kernel") or None
    tools = ("make",) if profile_kernel else (os.environ.get("CC", "gcc"), os.environ.get("LD", "ld"))
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"kloader_build needs {' and '.join(missing)} on PATH to compile modules "
                    "(install gcc and binutils)")
    from kloaderd.build import build_module

    def build(*sources: str | os.PathLike[str], name: str | None = None, **options: Any) -> Path:
        if not sources:
            raise TypeError("kloader_build needs at least one C source")
        if profile_kernel:
            options.setdefault("kernel", profile_kernel)
        paths = [Path(source).resolve() for source in sources]
        output = tmp_path / f"{name or paths[0].stem}.ko"
        if options.get("verbose"):
            return Path(build_module(paths, output, **options))
        cached = _kloader_build_cache / _build_key(paths, output.name, options) / output.name
        if not cached.exists():
            cached.parent.mkdir(exist_ok=True)
            build_module(paths, cached, **options)
        shutil.copyfile(cached, output)
        return output

    return build


@pytest.fixture
def kloader_module_tree(tmp_path: Path) -> Callable[..., Path]:
    """`kloader_module_tree(*ko_files, release=None) -> Path` of a module tree kdepmod indexed."""
    import io

    from kloaderd.config import UTS_RELEASE
    from kloaderd.kmod import depmod

    def make(*modules: str | os.PathLike[str], release: str | None = None) -> Path:
        release = release or UTS_RELEASE
        base = tmp_path / "kloader-tree"
        tree = base / "lib" / "modules" / release
        (tree / "kernel").mkdir(parents=True, exist_ok=True)
        for module in modules:
            shutil.copyfile(module, tree / "kernel" / Path(module).name)
        errors = io.StringIO()
        if depmod.run(["-b", str(base), release], stderr=errors) != 0:
            raise RuntimeError(f"kdepmod failed on {tree}:\n{errors.getvalue()}")
        return tree

    return make


@pytest.fixture
def kloader_modprobe(kloader: Any) -> Callable[..., Any]:
    """`kloader_modprobe(name, params="", *, tree=None, config=(), **options)`: modprobe in the daemon."""
    def modprobe(name: str, params: str = "", *, tree: str | os.PathLike[str] | None = None,
                 config: Any = (), **options: Any) -> Any:
        return kloader.modprobe(name, params, dirname=None if tree is None else os.fspath(tree),
                                config=list(config), **options)

    return modprobe


# -- the kernel log in test reports -------------------------------------------

def _add_kernel_log(item: pytest.Item, when: str) -> None:
    tracked = item.stash.get(_TRACKED, None)
    if not tracked:
        return
    level = item.config.stash.get(_LOG_LEVEL, 8)
    for number, entry in enumerate(tracked, 1):
        daemon = entry.daemon
        records = daemon.records(entry.seen)
        if not records:
            continue
        entry.seen = records[-1].seq
        lines = [daemon.kernel.log.format(r) for r in records if r.level < level]
        if lines:
            title = "kernel log" if len(tracked) == 1 else f"kernel log (daemon {number})"
            item.add_report_section(when, title, "\n".join(lines))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    yield
    _add_kernel_log(item, "setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield
    _add_kernel_log(item, "call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    _add_kernel_log(item, "teardown")
    if _TRACKED in item.stash:
        del item.stash[_TRACKED]   # the daemons are gone: let them be collected
