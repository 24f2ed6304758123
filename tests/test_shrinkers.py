"""Shrinkers (kloaderd/mm/vmscan.py, shrinker.py) under memory pressure
from /proc/sys/vm/drop_caches (kloaderd/fs/drop_caches.py), through a
client: a module built by each release's kbuild registers one as that
release does (6.1 register_shrinker, 6.12 shrinker_alloc), writing 2 or 3
runs its count and scans with Linux's arithmetic, and one left registered
when the module goes is reported and never called again."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest


SRC = Path(__file__).parent / "src" / "shrink.c"
DROP = "/proc/sys/vm/drop_caches"
SCANS = ["shrink: scan 100 of 300", "shrink: scan 100 of 200", "shrink: scan 100 of 100",
         "shrink: scan 100 of 0"]       # seeks 2: 4 x 300 / 2 to scan, in batches of 100; STOP at empty



def texts(client, since: int = 0) -> list[str]:
    return [r["text"] for r in client.dmesg(since)]


@pytest.mark.slow          # builds with the real kernel's kbuild
def test_drop_caches_runs_a_modules_shrinker_until_it_is_empty(each_release, kloader_build, kloader):
    kloader.finit_module(kloader_build(SRC))
    assert [r["what"] for r in kloader.module("shrink")["registrations"]] == ['shrinker "shrink-test"']
    kloader.write_file(DROP, b"3\n")
    log = texts(kloader)
    assert [line for line in log if line.startswith("shrink: scan")] == SCANS
    assert any(line.endswith(": drop_caches: 3") for line in log)
    kloader.write_file(DROP, b"2")                     # empty now: counted, never scanned
    assert [line for line in texts(kloader) if line.startswith("shrink: scan")] == SCANS
    for bad in (b"0", b"5", b"two"):
        with pytest.raises(OSError) as failed:
            kloader.write_file(DROP, bad)
        assert failed.value.errno == errno.EINVAL
    with pytest.raises(OSError) as failed:
        kloader.read_file(DROP)                        # 0200, as Linux's
    assert failed.value.errno == errno.EACCES
    kloader.delete_module("shrink")
    assert not any("leaked" in line for line in texts(kloader))


@pytest.mark.slow
@pytest.mark.kloader(on_problems="ignore")
def test_a_shrinker_left_registered_is_reported_and_never_called(each_release, kloader_build, kloader):
    kloader.finit_module(kloader_build(SRC), "leak=1")
    kloader.delete_module("shrink")
    assert 'shrink: leaked registration: shrinker "shrink-test"' in texts(kloader)
    kloader.write_file(DROP, b"2")
    kloader.write_file(DROP, b"4")                     # said, and from now on not
    kloader.write_file(DROP, b"2")
    log = texts(kloader)
    assert not any(line.startswith("shrink: scan") for line in log)
    assert [line.split(": ", 1)[1] for line in log if "drop_caches" in line] == \
        ["drop_caches: 2", "drop_caches: 4"]
