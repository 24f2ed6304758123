"""Core kernel services that real modules lean on, through a module's eyes
and a client's (tests/src/coreapi.c): a sysfs mount point, the system
workqueues, a kthread worker, CPU hotplug states, IDRs, IDAs and XArrays,
sort, UUIDs and hex — each taken back by the module's exit,
and reported when it is left behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).parent / "src"


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


@pytest.mark.kloader(on_problems="ignore")
def test_core_services_are_used_and_taken_back(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "coreapi.c"))
    lines = log(kloader)
    assert "coreapi: mount point 0" in lines
    # the name taken: kernfs's -EEXIST and sysfs_warn_dup's line
    assert "sysfs: cannot create duplicate filename '/kernel/coreapi'" in lines
    assert "coreapi: again -17" in lines
    stat = kloader.stat("/sys/kernel/coreapi")
    assert (stat["type"], stat["mode"]) == ("dir", 0o040555)        # kernfs_create_empty_dir
    assert kloader.listdir("/sys/kernel/coreapi") == []
    what = [r["what"] for r in kloader.module("coreapi")["registrations"]]
    assert "sysfs mount point /sys/kernel/coreapi" in what
    assert "kthread_worker coreapi-7" in what
    assert {"cpuhp state 201 coreapi:online", "cpuhp state 202 coreapi:multi",
            "cpuhp instance of state 202 coreapi:multi"} <= set(what)
    assert "coreapi: 7 works ran" in lines                            # one per system workqueue
    at = lines.index("coreapi: 7 works ran")
    # idr_alloc's negative start: WARN_ON_ONCE and -EINVAL, before the line that prints it
    warning = next(line for line in lines[at:] if line.startswith("WARNING: CPU: 0 PID: "))
    assert " idr_alloc+" in warning
    ours = [line for line in lines[at:] if line.startswith("coreapi: ")]
    assert ours[1:] == [
        "coreapi: sorted 1 2 3 3 5 7 8 9 in 21 compares",     # Linux's bottom-up heapsort
        "coreapi: sorted 1 3 4 with 2 swaps; one element, 0 compares",
        "coreapi: uuid version 4 variant 2, guid version 4 variant 2, null 0 1",
        "coreapi: parse 0 0 -22: guid 33221100-5544, uuid 00112233, valid 1 0",   # a GUID's fields LE
        "coreapi: hex 01abff (6), back 0 0abc7f, bad -22",
        "coreapi: kthread work queued 1, again only if it had run 1, ran 1, cancelled 0, worker 1",
        "coreapi: cpu 0 up",                                  # the one CPU is online: startup runs
        # dynamic states from CPUHP_AP_ONLINE_DYN; the refused one's 202 was given back
        "coreapi: cpuhp states 201 202, refused -5, busy -16, unnamed -22",
        "coreapi: instance up on cpu 0, ours 1",
        "coreapi: idr ids 1 2 3, full -28, neg -22",          # the third holds NULL; [1, 4) is full
        "coreapi: idr find 2 1 1",
        "coreapi: idr for_each 303",                          # 1 and 2; the NULL entry is skipped
        "coreapi: idr remove 1, again 1, empty 0",
        "coreapi: idr realloc 1, replace -2",                 # the lowest free ID; -ENOENT
        "coreapi: idr entry 1 = 3",
        "coreapi: idr entry 2 = 2",
        "coreapi: idr cyclic 4 5",                            # from idr_next, not the freed 1
        "coreapi: idr destroyed, empty 1",
        "coreapi: ida 0 10 1, full -28",
        "coreapi: ida again 0, empty 0",
        "coreapi: xa insert 0, busy -16",
        "coreapi: xa load 1 70, marked 1 0",                  # a value entry; the root's mark bit
        "coreapi: xa entry 5",
        "coreapi: xa entry 7",
        "coreapi: xa marked 7",
        "coreapi: xa cmpxchg 1",
        "coreapi: xa erase 3, empty 0",
        "coreapi: xa erase all, empty 1, marked 0",
        "coreapi: xa alloc 0 id 0, reserved 0 id 1, load 1",  # NULL reserves: loads as NULL
        "coreapi: xa alloc full -16",
        "coreapi: xa cyclic 0 id 2, 0 id 3, next 4",
        "coreapi: xa destroyed, empty 1",
    ]
    assert "ida_free called for id=7 which is not allocated." in lines
    kloader.delete_module("coreapi")
    with pytest.raises(FileNotFoundError):
        kloader.stat("/sys/kernel/coreapi")
    after = log(kloader)[len(lines):]
    assert after[after.index("coreapi: instance down on cpu 0") + 1] == "coreapi: cpu 0 down"
    assert not any("leaked" in line for line in after)


@pytest.mark.kloader(on_problems="ignore")
@pytest.mark.parametrize("bug, leaked, path", [
    ("BUG_LEAVE_MOUNT_POINT", r"leaked registration: sysfs mount point /sys/kernel/coreapi",
     "/sys/kernel/coreapi"),
    ("BUG_LEAVE_IDS", r"leaked 3 ids of the ida at 0x[0-9a-f]+ \(ida_destroy\)", None),
    ("BUG_LEAVE_WORKER", r"leaked registration: kthread_worker coreapi-7", None),
    ("BUG_LEAVE_CPUHP", r"leaked registration: cpuhp instance of state 202 coreapi:multi", None),
    ("BUG_LEAVE_ENTRIES", r"leaked 1 entries of the xarray at 0x[0-9a-f]+ \(xa_destroy\)", None),
])
def test_what_a_module_leaves_behind_is_reported_and_removed(kloader, kloader_build, bug, leaked, path):
    kloader.finit_module(kloader_build(SRC / "coreapi.c", defines=[bug]))
    kloader.delete_module("coreapi")
    assert [line for line in log(kloader) if re.fullmatch(f"coreapi: {leaked}", line)]
    if path:
        with pytest.raises(FileNotFoundError):
            kloader.stat(path)
