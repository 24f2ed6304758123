"""Bad images through the whole daemon never break it and never leave a trace.

Real fixture modules are mutated (bit flips, truncation, header and table
field edits, section size and offset lies, symbol and relocation index lies)
and sent with `init_module` through a real client to a real daemon.  Every
case is loaded or refused with an `OSError` carrying one of the errnos a
user may see; the daemon answers the next request; a loaded case is removed
again; and after each case the kernel's footprint (modules, module memory,
heap, symbols, kallsyms) is exactly what it was before the first.

~150 cases in CI; `KLOADER_FUZZ_EXAMPLES=10000` for the long run (its
figures are in docs/reliability.md; `-s` prints them).
"""

from __future__ import annotations

import errno
import os
import socket
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kloaderd
from conftest import FIXTURES
from kloader_client import Client
from elfobjs import mutated

EXAMPLES = int(os.environ.get("KLOADER_FUZZ_EXAMPLES", "150"))

# Modules whose code can only print or read parameters: however its bytes are
# bent, a case can fault or loop (an oops, the watchdog) but never sleep forever.
BASES = ("hello", "params", "initsec", "tables", "printfmt")

# What a refused image may say: not an object (ENOEXEC), a symbol nobody
# exports (ENOENT), a bad parameter or CRC (EINVAL), too big (EFBIG, E2BIG),
# a broken signature trailer (EBADMSG), out of module memory (ENOMEM), and an
# init that oopsed (EFAULT).  Anything else — EIO above all, the daemon's
# "internal error" — is a bug.
REFUSALS = {errno.ENOEXEC, errno.ENOENT, errno.EINVAL, errno.EFBIG, errno.E2BIG,
            errno.EBADMSG, errno.ENOMEM, errno.EFAULT}
# The init of a bent module may return any negative number; that errno is the
# module's answer, not the loader's.
INIT_FAILED = "init failed with error"

outcomes: Counter[str] = Counter()


def images() -> st.SearchStrategy[bytes]:
    """The damage test_elf_fuzz does to compiler output, done to real modules
    so that the whole load path runs: link, init, exit."""
    return st.sampled_from(BASES).map(lambda name: (FIXTURES / f"{name}.ko").read_bytes()) \
        .flatmap(mutated)


def footprint(kernel) -> dict[str, object]:
    """What a load that is undone must give back, all of it."""
    return {"modules": sorted(kernel.loaded), "module memory": kernel.module_memory,
            "heap": kernel.slab.total, "symbols": len(kernel.symbols),
            "kallsyms": len(kernel.ksyms.all())}


@pytest.fixture(scope="module")
def fuzz_daemon() -> Iterator[kloaderd.Daemon]:
    # A short watchdog: bent code that loops is an oops, not a long wait.
    with kloaderd.run_in_thread(watchdog=0.2, on_problems="ignore") as daemon:
        yield daemon


@pytest.fixture(scope="module")
def fuzz_client(fuzz_daemon: kloaderd.Daemon) -> Iterator[Client]:
    # A hang is a failure with a message, not a CI job that never ends.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)
    try:
        with Client(fuzz_daemon.socket_path) as client:
            yield client
    finally:
        socket.setdefaulttimeout(previous)
        if outcomes:
            print(f"\nfuzzed {sum(outcomes.values())} images through kloaderd: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))


def load_or_refuse(client: Client, image: bytes) -> str | None:
    """The loaded module's name, or None if refused as a user may be refused."""
    try:
        return client.init_module(image)
    except OSError as exc:
        assert exc.errno in REFUSALS or INIT_FAILED in exc.strerror, exc
        outcomes[errno.errorcode.get(exc.errno, str(exc.errno))
                 if INIT_FAILED not in exc.strerror else "init failed"] += 1
        return None


def remove(client: Client, name: str) -> None:
    """Remove an accepted case; a bent one may have lost its exit function."""
    try:
        client.delete_module(name)
    except OSError as exc:
        assert exc.errno == errno.EBUSY, exc
        client.delete_module(name, force=True)


@pytest.fixture(scope="module")
def pristine(fuzz_daemon: kloaderd.Daemon) -> dict[str, object]:
    return fuzz_daemon.run_sync(footprint, fuzz_daemon.kernel)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 1000,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(image=images())
def test_bad_images_are_refused_and_leave_nothing_behind(fuzz_daemon, fuzz_client, pristine, image):
    # Checked first as well as last: once a case has left something behind
    # (a module stuck GOING holds its name), later cases of that name would
    # wait for it forever; they fail here instead.
    assert fuzz_daemon.run_sync(footprint, fuzz_daemon.kernel) == pristine, \
        "an earlier case left the kernel changed"
    name = load_or_refuse(fuzz_client, image)
    if name is not None:
        outcomes["loaded"] += 1
        remove(fuzz_client, name)
    assert fuzz_client.status()["modules"] == 0        # still answering
    assert fuzz_daemon.run_sync(footprint, fuzz_daemon.kernel) == pristine


def test_unbent_bases_load_and_unload(fuzz_daemon, fuzz_client, pristine):
    """The control: each base itself loads, so refusals come from the bending."""
    baseline = fuzz_daemon.run_sync(footprint, fuzz_daemon.kernel)
    for name in BASES:
        assert fuzz_client.init_module((FIXTURES / f"{name}.ko").read_bytes()) == name
        fuzz_client.delete_module(name)
    assert fuzz_daemon.run_sync(footprint, fuzz_daemon.kernel) == baseline
