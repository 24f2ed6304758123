"""procfs for modules: entries made with proc_create*, proc_mkdir, read with
seq_file by clients, written through .proc_write, removed by the module's
exit — waiting for a reader inside the entry's operations, as Linux's
proc_entry_rundown does — and an entry left behind reported."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
import trio

from kloaderd.kernel.module import ModuleState

SRC = Path(__file__).parent / "src"


@pytest.fixture
def procseq_ko(kloader_build):
    return kloader_build(SRC / "procseq.c")


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


@pytest.mark.kloader(on_problems="raise")
def test_entries_are_read_and_written_by_clients(kloader, procseq_ko):
    kloader.finit_module(procseq_ko, "nrec=4")
    assert kloader.listdir("/proc/procseq") == ["gate", "records", "single", "slow", "value"]
    assert stat.S_ISDIR(kloader.stat("/proc/procseq")["mode"])
    assert stat.S_IMODE(kloader.stat("/proc/procseq")["mode"]) == 0o555
    assert stat.S_IMODE(kloader.stat("/proc/procseq/value")["mode"]) == 0o644
    value = kloader.stat("/proc/procseq/value")
    assert (value["size"], value["uid"], value["gid"]) == (4, 1000, 100)     # proc_set_size/_user
    assert kloader.stat("/proc/procseq/records")["size"] == 0                # procfs: no size
    assert kloader.read_file("/proc/procseq/records") == b"".join(b"record %d:\n" % i for i in range(4))
    assert kloader.read_file("/proc/procseq/single") == b"data=42 private=7\n"
    assert kloader.read_file("/proc/procseq/value") == b"7\n"
    assert kloader.write_file("/proc/procseq/value", "123\n") == 4
    assert kloader.read_file("/proc/procseq/value") == b"123\n"
    with pytest.raises(OSError) as bad:
        kloader.write_file("/proc/procseq/value", "twelve")          # kstrtoint: -EINVAL
    assert bad.value.errno == errno.EINVAL
    with pytest.raises(PermissionError):
        kloader.write_file("/proc/procseq/records", b"x")            # 0444
    with pytest.raises(OSError) as eio:
        fd = kloader.open("/proc/procseq/gate", os.O_WRONLY)
        try:
            kloader.ioctl(fd, 1)
        finally:
            kloader.close(fd)
    assert eio.value.errno == errno.ENOTTY
    # no module reference is taken by an open /proc file: procfs's other road
    fd = kloader.open("/proc/procseq/records", os.O_RDONLY)
    assert kloader.module("procseq")["refcnt"] == 0
    kloader.close(fd)
    kloader.delete_module("procseq")
    assert "procseq" not in kloader.listdir("/proc")


@pytest.mark.kloader(on_problems="raise")
def test_seq_file_reads_in_pieces_grow_the_buffer_and_seek(kloader, procseq_ko):
    """Records longer than a page make seq_read double its buffer; small
    reads resume where the last stopped; lseek re-walks (traverse)."""
    kloader.finit_module(procseq_ko, "nrec=6 width=4500")
    expected = b"".join(b"record %d:" % n + bytes(ord("a") + (n + i) % 26 for i in range(4500)) + b"\n"
                        for n in range(6))
    assert kloader.read_file("/proc/procseq/records") == expected
    fd = kloader.open("/proc/procseq/records", os.O_RDONLY)
    got = []
    while chunk := kloader.read(fd, 999):
        got.append(chunk)
    assert b"".join(got) == expected
    assert kloader.lseek(fd, 12345) == 12345
    assert kloader.read(fd, 100) == expected[12345:12445]
    assert kloader.lseek(fd, -45, os.SEEK_CUR) == 12400
    assert kloader.read(fd, 10) == expected[12400:12410]
    with pytest.raises(OSError) as end:
        kloader.lseek(fd, 0, os.SEEK_END)                            # seq_lseek: EINVAL
    assert end.value.errno == errno.EINVAL
    kloader.close(fd)
    kloader.delete_module("procseq")


@pytest.mark.kloader(on_problems="raise")
def test_a_file_open_across_removal_is_released_then_eio(kloader, procseq_ko):
    kloader.finit_module(procseq_ko)
    fd = kloader.open("/proc/procseq/value", os.O_RDONLY)
    assert kloader.read(fd, 2) == b"7\n"
    kloader.delete_module("procseq")                 # its .proc_release ran at removal
    with pytest.raises(OSError) as gone:
        kloader.read(fd, 10)
    assert gone.value.errno == errno.EIO
    kloader.close(fd)                                # no second release, no call into freed code


@pytest.mark.trio
@pytest.mark.kloader(on_problems="raise")
async def test_removal_waits_for_a_reader_inside_the_entry(kloaderd_async, kloader_async, procseq_ko):
    """The 2002 thread's "wait for quiescence": remove_proc_entry in the exit
    waits until the reader inside .proc_read has left."""
    kernel = kloaderd_async.kernel
    await kloader_async.finit_module(procseq_ko)
    results: dict[str, object] = {}

    async def read_slow() -> None:
        fd = await kloader_async.open("/proc/procseq/slow", os.O_RDONLY)
        results["read"] = await kloader_async.read(fd, 100)
        await kloader_async.close(fd)

    async def remove() -> None:
        await kloader_async.delete_module("procseq")
        results["removed"] = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_slow)
        async for record in kloader_async.follow_dmesg():
            if record["text"] == "procseq: slow reader waiting":
                break
        nursery.start_soon(remove)
        while kernel.find_module("procseq").state is not ModuleState.GOING:
            await kernel.wait_for_change()
        assert "removed" not in results              # the exit is inside remove_proc_entry
        await kloader_async.write_file("/proc/procseq/gate", b"go")
    assert results == {"read": b"done\n", "removed": True}
    texts = [r["text"] for r in await kloader_async.dmesg()]
    assert texts.index("procseq: slow reader done") < texts.index("procseq: slow removed")


@pytest.mark.kloader(on_problems="ignore")
def test_an_entry_left_at_unload_is_reported_and_made_inert(kloader, kloader_build):
    ko = kloader_build(SRC / "procseq.c", name="procleak", defines=["PROCSEQ_BUG_LEAVE_ENTRY"])
    kloader.finit_module(ko)
    fd = kloader.open("/proc/procseq/records", os.O_RDONLY)
    kloader.delete_module("procleak")
    lines = log(kloader)
    assert "procleak: leaked registration: proc entry /proc/procseq" in lines
    assert "procleak: leaked registration: proc entry /proc/procseq/records" in lines
    assert "procseq" not in kloader.listdir("/proc")
    with pytest.raises(OSError) as inert:
        kloader.read(fd, 10)                          # no call into the freed module
    assert inert.value.errno == errno.EIO
    kloader.close(fd)


@pytest.mark.kloader(on_problems="ignore")
def test_a_taken_name_warns_and_fails_as_linux(kloader, kloader_build, procseq_ko):
    kloader.finit_module(procseq_ko)
    twin = kloader_build(SRC / "procseq.c", name="procseq2")
    with pytest.raises(OSError) as refused:
        kloader.finit_module(twin)
    assert refused.value.errno == errno.ENOMEM        # what its init returns for NULL
    assert "proc_dir_entry '/proc/procseq' already registered" in log(kloader)
    kloader.delete_module("procseq")
