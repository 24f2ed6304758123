"""The kernel's file tree through the socket: /proc/modules, /proc/kallsyms
and /sys/module/NAME in Linux's formats, the file system calls on every
path, and Linux's errnos for what a path cannot do."""

from __future__ import annotations

import errno
import os
import re
import stat

import pytest

from kloaderd.errors import KernelError
from kloaderd.fs.file import FileTable
from kloaderd.kernel.kernel import Kernel, KernelOptions

# m_show(): name size refcnt holders state address[ (taints)]
PROC_MODULES_LINE = re.compile(r"^(\S+) (\d+) (\d+) (-|(?:[^ ,]+,)+) (Live|Loading|Unloading) "
                               r"0x([0-9a-f]{16})(?: \(([A-Z]*[+-]?)\))?$")


def proc_modules(client) -> list[re.Match]:
    text = client.read_file("/proc/modules").decode()
    assert text.endswith("\n")
    lines = [PROC_MODULES_LINE.match(line) for line in text.splitlines()]
    assert all(lines), text
    return lines


def test_the_tree_has_linux_top_directories(kloader):
    assert {"proc", "sys", "dev"} <= set(kloader.listdir("/"))
    assert "debug" in kloader.listdir("/sys/kernel")
    assert {"modules", "kallsyms"} <= set(kloader.listdir("/proc"))
    info = kloader.stat("/proc")
    assert stat.S_ISDIR(info["mode"]) and info["type"] == "dir"
    assert stat.S_ISREG(kloader.stat("/proc/modules")["mode"])
    assert stat.S_IMODE(kloader.stat("/proc/modules")["mode"]) == 0o444


def test_proc_modules_is_m_show(kloader, fixture_ko):
    assert kloader.read_file("/proc/modules") == b""
    kloader.finit_module(fixture_ko("exporter"))
    kloader.finit_module(fixture_ko("user"))
    user, exporter = proc_modules(kloader)          # newest first
    assert user.group(1, 3, 4, 5, 7) == ("user", "0", "-", "Live", "O")
    assert exporter.group(1, 3, 4, 5, 7) == ("exporter", "1", "user,", "Live", "O")
    info = kloader.module("exporter")
    assert int(exporter.group(2)) == info["size"]
    assert int(exporter.group(6), 16) == info["address"]
    # refcnt follows a client's try_module_get
    kloader.try_module_get("user")
    assert proc_modules(kloader)[0].group(3) == "1"
    kloader.module_put("user")
    assert proc_modules(kloader)[0].group(3) == "0"


@pytest.mark.trio
async def test_addresses_are_hidden_from_the_unprivileged(fixture_ko):
    """kallsyms_show_value(): a reader without privilege sees zeros."""
    kernel = Kernel(KernelOptions())
    await kernel.init_module(fixture_ko("hello").read_bytes())
    owner = FileTable(kernel, "test", "cat", privileged=True)
    other = FileTable(kernel, "test", "cat", privileged=False)
    mine = (await owner.read_file("/proc/modules", 1 << 20)).decode()
    theirs = (await other.read_file("/proc/modules", 1 << 20)).decode()
    address = f"{kernel.find_module('hello').core_base:016x}"
    assert address in mine and address not in theirs
    assert mine.replace(address, "0" * 16) == theirs
    for line in (await other.read_file("/proc/kallsyms", 64 << 20)).decode().splitlines():
        assert line.startswith("0" * 16)
    with pytest.raises(KernelError) as denied:           # 0400
        await other.read_file("/sys/module/hello/sections/.gnu.linkonce.this_module", 4096)
    assert denied.value.errno == errno.EACCES
    await kernel.shutdown()


def test_proc_kallsyms_lists_kernel_then_module_symbols(kloader, fixture_ko):
    kloader.finit_module(fixture_ko("exporter"))
    lines = kloader.read_file("/proc/kallsyms").decode().splitlines()
    kernel = [l for l in lines if "\t" not in l]
    module = [l for l in lines if l.endswith("\t[exporter]")]
    assert re.fullmatch(r"[0-9a-f]{16} [TtDdRrBb] \w+", kernel[0])
    assert any(l.split()[2] == "printk" or l.split()[2] == "_printk" for l in kernel)
    names = {l.split()[2] for l in module}
    assert "exp_add" in names
    assert lines.index(module[0]) > lines.index(kernel[-1])
    address = next(int(l.split()[0], 16) for l in module if l.split()[2] == "exp_add")
    assert any(s["name"] == "exp_add" and s["address"] == address for s in kloader.kallsyms())


def test_sys_module_files(kloader, fixture_ko):
    kloader.finit_module(fixture_ko("exporter"))
    kloader.finit_module(fixture_ko("user"))
    base = "/sys/module/exporter"
    names = set(kloader.listdir(base))
    assert {"initstate", "refcnt", "taint", "coresize", "initsize", "holders", "sections"} <= names
    assert kloader.read_file(f"{base}/initstate") == b"live\n"
    assert kloader.read_file(f"{base}/refcnt") == b"1\n"
    assert kloader.read_file(f"{base}/taint") == b"O\n"
    info = kloader.module("exporter")
    assert kloader.read_file(f"{base}/coresize") == f"{info['core_size']}\n".encode()
    assert kloader.read_file(f"{base}/initsize") == b"0\n"
    assert kloader.listdir(f"{base}/holders") == ["user"]
    link = kloader.stat(f"{base}/holders/user", follow=False)
    assert link["type"] == "link" and link["target"] == "../../user"
    assert kloader.stat(f"{base}/holders/user")["type"] == "dir"      # followed
    assert kloader.read_file(f"{base}/holders/user/initstate") == b"live\n"
    text = kloader.read_file(f"{base}/sections/.text")
    assert text == f"0x{info['sections']['.text']:016x}\n".encode()
    assert stat.S_IMODE(kloader.stat(f"{base}/sections/.text")["mode"]) == 0o400
    kloader.try_module_get("exporter")
    assert kloader.read_file(f"{base}/refcnt") == b"2\n"
    kloader.module_put("exporter")
    kloader.delete_module("user")
    assert kloader.listdir(f"{base}/holders") == []
    assert "user" not in kloader.listdir("/sys/module")


def test_version_and_srcversion_only_where_the_module_has_them(kloader, fixture_ko):
    kloader.finit_module(fixture_ko("hello"))
    info = kloader.module("hello")
    names = kloader.listdir("/sys/module/hello")
    for field in ("version", "srcversion"):
        if info[field] is None:
            assert field not in names
        else:
            assert kloader.read_file(f"/sys/module/hello/{field}") == f"{info[field]}\n".encode()


def test_parameters_follow_their_permissions(kloader, fixture_ko):
    kloader.finit_module(fixture_ko("params"))
    pdir = "/sys/module/params/parameters"
    names = kloader.listdir(pdir)
    assert "pint" in names and "puint" not in names           # perm 0: not in sysfs
    assert kloader.read_file(f"{pdir}/pint") == b"-42\n"
    assert stat.S_IMODE(kloader.stat(f"{pdir}/pint")["mode"]) == 0o644
    assert kloader.write_file(f"{pdir}/pint", "17\n") == 3      # echo 17 > ...
    assert kloader.param_get("params", "pint") == "17"
    with pytest.raises(OSError) as bad:
        kloader.write_file(f"{pdir}/pint", "seventeen")
    assert bad.value.errno == errno.EINVAL
    with pytest.raises(PermissionError) as ro:
        kloader.write_file(f"{pdir}/pbyte", "1")                # 0444
    assert ro.value.errno == errno.EACCES
    kloader.param_set("params", "pshort", "12")
    assert kloader.read_file(f"{pdir}/pshort") == b"12\n"


def test_path_errors_are_linux_errnos(kloader):
    with pytest.raises(FileNotFoundError):
        kloader.read_file("/proc/nosuch")
    with pytest.raises(FileNotFoundError):
        kloader.listdir("/sys/module/nosuch")
    with pytest.raises(NotADirectoryError):
        kloader.listdir("/proc/modules")
    with pytest.raises(NotADirectoryError):
        kloader.stat("/proc/modules/x")
    with pytest.raises(IsADirectoryError):
        kloader.read_file("/proc")
    with pytest.raises(IsADirectoryError):
        kloader.write_file("/sys/module", b"x")
    with pytest.raises(PermissionError):
        kloader.write_file("/proc/modules", b"x")             # 0444: EACCES by mode
    with pytest.raises(FileNotFoundError):
        kloader.read_file("relative/path")


def test_descriptors_on_kernel_files(kloader, fixture_ko):
    """open/read/lseek/close on /proc/modules: small reads see one snapshot,
    a read from 0 makes it again (seq_file)."""
    kloader.finit_module(fixture_ko("hello"))
    whole = kloader.read_file("/proc/modules")
    fd = kloader.open("/proc/modules", os.O_RDONLY)
    parts = []
    while chunk := kloader.read(fd, 7):
        parts.append(chunk)
    assert b"".join(parts) == whole
    assert kloader.lseek(fd, 5) == 5
    assert kloader.read(fd, 3) == whole[5:8]
    with pytest.raises(OSError) as end:
        kloader.lseek(fd, 0, os.SEEK_END)
    assert end.value.errno == errno.EINVAL
    with pytest.raises(OSError) as wr:
        kloader.write(fd, b"x")
    assert wr.value.errno == errno.EBADF
    kloader.close(fd)
    with pytest.raises(PermissionError):
        kloader.open("/proc/modules", os.O_RDWR)


def test_a_file_open_across_its_module_end_is_enodev(kloader, fixture_ko):
    kloader.finit_module(fixture_ko("hello"))
    fd = kloader.open("/sys/module/hello/refcnt", os.O_RDONLY)
    kloader.delete_module("hello")
    with pytest.raises(OSError) as gone:
        kloader.read(fd, 10)
    assert gone.value.errno == errno.ENODEV
    kloader.close(fd)


@pytest.mark.trio
async def test_async_client_has_the_file_calls(kloader_async, fixture_ko):
    await kloader_async.finit_module(fixture_ko("hello"))
    assert (await kloader_async.read_file("/sys/module/hello/initstate")) == b"live\n"
    assert "hello" in await kloader_async.listdir("/sys/module")
    assert (await kloader_async.stat("/sys/module/hello"))["type"] == "dir"


@pytest.mark.trio
async def test_the_node_api_removal_waits_for_operations_then_releases():
    """What sysfs/debugfs code builds on: a Content file whose show() is
    inside when remove() starts makes the removal wait; a FileOps whose
    file is still open gets its release at removal, and the file answers
    ENODEV (kernfs) afterwards."""
    import trio
    import trio.testing

    from kloaderd.fs.tree import KERNFS, Content, FileOps, file_tree

    kernel = Kernel(KernelOptions())
    tree = file_tree(kernel)
    entered, leave = trio.Event(), trio.Event()
    released: list[str] = []

    async def show(file):
        entered.set()
        await leave.wait()
        return "slow\n"

    class Tracked(FileOps):
        def can_read(self, file):
            return True

        async def read(self, file, size):
            return b""

        async def release(self, file):
            released.append(file.path)

    d = tree.mkdir("/sys/kernel/demo", mode=0o755)
    slow = tree.add(d, "slow", Content(show), mode=0o444, removal=KERNFS)
    tree.add(d, "held", Tracked(), mode=0o444)
    with pytest.raises(KernelError) as taken:
        tree.add(d, "slow", Content(show))
    assert taken.value.errno == errno.EEXIST
    table = FileTable(kernel, "test", "cat")
    held = await table.open("/sys/kernel/demo/held", os.O_RDONLY)
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        async def read() -> None:
            fd = await table.open("/sys/kernel/demo/slow", os.O_RDONLY)
            order.append((await table.read(fd, 4096)).decode())
            await table.close(fd)

        async def remove() -> None:
            await tree.remove(d)
            order.append("removed")
        nursery.start_soon(read)
        await entered.wait()
        nursery.start_soon(remove)
        await trio.testing.wait_all_tasks_blocked()
        assert slow.removed and order == []           # unlinked at once, waiting for the reader
        with pytest.raises(KernelError) as gone:
            tree.lookup("/sys/kernel/demo/slow")
        assert gone.value.errno == errno.ENOENT
        leave.set()
    assert order == ["slow\n", "removed"]
    assert released == ["/sys/kernel/demo/held"]       # released at removal, not at close
    with pytest.raises(KernelError) as enodev:
        await table.read(held, 10)
    assert enodev.value.errno == errno.ENODEV
    await table.close(held)
    assert released == ["/sys/kernel/demo/held"]       # once
    await kernel.shutdown()
