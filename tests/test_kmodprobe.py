"""kmodprobe, Client.modprobe and request_module(): modprobe's behaviour in the daemon.

Trees are fixture modules indexed by kdepmod (`kloader_module_tree`).  Where
kmod's own modprobe can answer without touching the host's kernel (lookups,
--show-depends) it is the oracle; the messages of loading and removal are
kmod's words, checked as text.
"""

from __future__ import annotations

import errno
import re
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from tests.kmod_trees import kmod, run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODULES = ["hello", "exporter", "user", "sleepy", "sleepy_user", "fsalias", "requester"]


@pytest.fixture
def tree(kloader_module_tree) -> Path:
    return kloader_module_tree(*(FIXTURES / f"{name}.ko" for name in MODULES))


def names(client) -> list[str]:
    return [m["name"] for m in client.modules()]


def log(client) -> list[str]:
    return [r["text"] for r in client.dmesg()]


def kmodprobe(socket: str, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "kloader_client.commands.kmodprobe", "--socket", socket, *args])


def test_a_chain_loads_dependencies_first_and_r_takes_them_away(kloader, kloader_modprobe, tree: Path) -> None:
    result = kloader_modprobe("user", tree=tree)
    assert result["actions"] == [f"insmod {tree}/kernel/exporter.ko ", f"insmod {tree}/kernel/user.ko "]
    assert names(kloader) == ["user", "exporter"]           # newest first, as /proc/modules
    assert kloader.module("exporter")["holders"] == ["user"]
    assert kloader_modprobe("user", tree=tree)["actions"] == []    # loaded already: not an error
    assert kloader_modprobe("user", tree=tree, remove=True)["actions"] == ["rmmod user", "rmmod exporter"]
    assert names(kloader) == []


def test_r_leaves_a_dependency_that_has_another_user(kloader, kloader_modprobe, tree: Path) -> None:
    kloader_modprobe("user", tree=tree)
    kloader.try_module_get("exporter")
    kloader_modprobe("user", tree=tree, remove=True)
    assert names(kloader) == ["exporter"]
    kloader.module_put("exporter")


def test_aliases_wildcards_and_softdeps(kloader, kloader_modprobe, tree: Path) -> None:
    result = kloader_modprobe("fs-kloaderfs", tree=tree)
    assert result["actions"] == [f"insmod {tree}/kernel/hello.ko ", f"insmod {tree}/kernel/fsalias.ko "]
    assert names(kloader) == ["fsalias", "hello"]
    kloader_modprobe("fs-kloaderfs", tree=tree, remove=True)
    assert names(kloader) == []                               # its pre: softdep goes too, as modprobe -r
    kloader_modprobe("kloader:dev-42", tree=tree)             # alias kloader:dev-*
    kloader_modprobe("symbol:exp_add", tree=tree)
    assert set(names(kloader)) == {"fsalias", "hello", "exporter"}


def test_options_lines_and_command_line_parameters(kloader, kloader_modprobe, tree: Path, tmp_path: Path) -> None:
    conf = tmp_path / "kloader.conf"
    conf.write_text("# comment\noptions sleepy sleep_ms=1\nalias my-sleepy sleepy\n")
    result = kloader_modprobe("my-sleepy", tree=tree, config=[conf])
    assert result["actions"] == [f"insmod {tree}/kernel/sleepy.ko sleep_ms=1 "]    # kmod's trailing space
    assert kloader.param_get("sleepy", "sleep_ms") == "1"
    kloader_modprobe("sleepy", tree=tree, remove=True, config=[conf])
    kloader_modprobe("sleepy", "sleep_ms=2", tree=tree, config=[conf])   # the command line comes last
    assert kloader.param_get("sleepy", "sleep_ms") == "2"


def test_python_errors_carry_modprobes_messages(kloader, kloader_modprobe, tree: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(f"] Module nosuch not found in directory {tree}") + "$"):
        kloader_modprobe("nosuch", tree=tree)
    kloader_modprobe("hello", tree=tree)
    with pytest.raises(FileExistsError, match=r"\] could not insert 'hello': Module already in kernel$"):
        kloader_modprobe("hello", tree=tree, first_time=True)
    kloader_modprobe("user", tree=tree)
    with pytest.raises(OSError) as busy:
        kloader_modprobe("exporter", tree=tree, remove=True)
    assert busy.value.errno == errno.EBUSY and busy.value.strerror == "Module exporter is in use."
    with pytest.raises(FileNotFoundError, match=r"\] Module sleepy is not in kernel\.$"):
        kloader_modprobe("sleepy", tree=tree, remove=True, first_time=True)
    with pytest.raises(FileNotFoundError, match=r"\] Module nosuch not found\.$"):
        kloader_modprobe("nosuch", tree=tree, remove=True)


def test_command_messages_and_exit_codes(kloaderd, kloader, tree: Path, tmp_path: Path) -> None:
    sock, base = kloaderd.socket_path, str(tree.parents[2])
    conf = tmp_path / "modprobe.d"
    conf.mkdir()
    common = ["-d", base, "-C", str(conf)]
    missing = kmodprobe(sock, *common, "nosuch")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == f"kmodprobe: FATAL: Module nosuch not found in directory {tree}\n"
    assert kmodprobe(sock, *common, "-q", "nosuch").stderr == ""
    loaded = kmodprobe(sock, *common, "-v", "user")
    assert (loaded.returncode, loaded.stderr) == (0, "")
    assert loaded.stdout == f"insmod {tree}/kernel/exporter.ko \ninsmod {tree}/kernel/user.ko \n"
    again = kmodprobe(sock, *common, "--first-time", "user")
    assert (again.returncode, again.stderr) == (1, "kmodprobe: ERROR: could not insert 'user': "
                                                   "Module already in kernel\n")
    busy = kmodprobe(sock, *common, "-r", "exporter")
    assert (busy.returncode, busy.stderr) == (1, "kmodprobe: FATAL: Module exporter is in use.\n")
    gone = kmodprobe(sock, *common, "-r", "-v", "user")
    assert (gone.returncode, gone.stdout) == (0, "rmmod user\nrmmod exporter\n")
    assert names(kloader) == []


def test_unknown_module_is_kmods_message(kloaderd, tree: Path, tmp_path: Path) -> None:
    """kmod's modprobe says the same about a module the tree lacks (it never reaches the kernel)."""
    conf = tmp_path / "modprobe.d"
    conf.mkdir()
    base = str(tree.parents[2])
    theirs = run([*kmod("modprobe"), "-d", base, "-C", str(conf), "-S", tree.name, "nosuch"])
    ours = kmodprobe(kloaderd.socket_path, "-d", base, "-C", str(conf), "-S", tree.name, "nosuch")
    assert ours.returncode == theirs.returncode == 1
    assert ours.stderr.replace("kmodprobe:", "modprobe:") == theirs.stderr


@pytest.mark.parametrize("name", ["user", "fs-kloaderfs", "kloader:dev-x", "symbol:kloaderfs_version"])
def test_show_depends_is_kmods(kloaderd, tree: Path, tmp_path: Path, name: str) -> None:
    conf = tmp_path / "modprobe.d"
    conf.mkdir()
    (conf / "b.conf").write_text("options hello x=1\nsoftdep user pre: sleepy post: hello\n")
    args = ["-d", str(tree.parents[2]), "-C", str(conf), "-S", tree.name, "--show-depends", name]
    theirs = run([*kmod("modprobe"), *args])
    ours = kmodprobe(kloaderd.socket_path, *args)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)
    assert ours.stdout


def test_a_blacklisted_alias_loads_nothing_silently(kloaderd, kloader, kloader_modprobe, tree: Path,
                                                    tmp_path: Path) -> None:
    conf = tmp_path / "modprobe.d"
    conf.mkdir()
    (conf / "black.conf").write_text("blacklist fsalias\n")
    args = ["-d", str(tree.parents[2]), "-C", str(conf), "-S", tree.name]
    theirs = run([*kmod("modprobe"), *args, "--show-depends", "fs-kloaderfs"])
    ours = kmodprobe(kloaderd.socket_path, *args, "fs-kloaderfs")
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "", "") == (theirs.returncode, theirs.stdout,
                                                                          theirs.stderr)
    assert names(kloader) == []
    kloader_modprobe("fsalias", tree=tree, config=[conf])     # by its name it loads
    assert "fsalias" in names(kloader)


def test_install_commands_are_refused_by_name(kloader, kloader_modprobe, tree: Path, tmp_path: Path) -> None:
    conf = tmp_path / "i.conf"
    conf.write_text("install hello /sbin/modprobe --ignore-install hello && echo hi\n")
    with pytest.raises(PermissionError, match="kloader runs no install commands"):
        kloader_modprobe("hello", tree=tree, config=[conf])
    assert names(kloader) == []
    kloader_modprobe("hello", tree=tree, config=[conf], ignore_install=True)
    assert names(kloader) == ["hello"]


def test_r_w_waits_for_the_last_reference(kloaderd, kloader, kloader_modprobe, tree: Path) -> None:
    kloader_modprobe("hello", tree=tree)
    kloader.try_module_get("hello")
    proc = subprocess.Popen([sys.executable, "-m", "kloader_client.commands.kmodprobe", "--socket",
                             kloaderd.socket_path, "-d", str(tree.parents[2]), "-r", "-w", "60000", "hello"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # kmodprobe -w stops the module at once (GOING) and waits: see it stopped, then let go.
        while kloader.module("hello")["state"] != "going":
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        kloader.module_put("hello")
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert (proc.returncode, err) == (0, "")
    assert names(kloader) == []


def test_request_module_loads_before_it_returns(kloaderd, kloader, tree: Path, tmp_path: Path) -> None:
    kloaderd.kernel.options.module_dir = str(tree)
    kloaderd.kernel.options.modprobe_config = str(tmp_path)     # no modprobe.d
    kloader.finit_module(tree / "kernel" / "requester.ko")
    lines = log(kloader)
    assert lines.index("fsalias: registered filesystem kloaderfs") < \
        lines.index("requester: request_module(fs-kloaderfs) = 0")
    assert lines.index("Hello, world") < lines.index("fsalias: registered filesystem kloaderfs")  # softdep
    assert sorted(names(kloader)) == ["fsalias", "hello", "requester"]


def test_request_module_failures_and_symbol_request(kloaderd, kloader, tree: Path, tmp_path: Path) -> None:
    kloaderd.kernel.options.module_dir = str(tree)
    kloaderd.kernel.options.modprobe_config = str(tmp_path)
    kloader.finit_module(tree / "kernel" / "requester.ko", "target=nosuch use_symbol=1")
    lines = log(kloader)
    assert "requester: request_module(nosuch) = 256" in lines       # modprobe exited 1
    assert "requester: kloaderfs_version = 3" in lines               # symbol:kloaderfs_version loaded it
    assert "fsalias" in names(kloader)


def test_a_module_requesting_itself_is_already_in_kernel(kloader, kloaderd, kloader_modprobe, tree: Path,
                                                        tmp_path: Path) -> None:
    kloaderd.kernel.options.module_dir = str(tree)
    kloaderd.kernel.options.modprobe_config = str(tmp_path)
    kloader_modprobe("requester", "target=requester", tree=tree)
    assert "requester: request_module(requester) = 0" in log(kloader)


def test_request_module_without_a_tree_fails_like_modprobe(kloaderd, kloader, tmp_path: Path) -> None:
    kloaderd.kernel.options.module_dir = str(tmp_path / "no" / "tree")
    kloader.finit_module(FIXTURES / "requester.ko")
    assert "requester: request_module(fs-kloaderfs) = 256" in log(kloader)


@pytest.mark.trio
@pytest.mark.kloader(kmod_concurrent_max=1, kmod_busy_timeout=0.05)
async def test_kmod_busy_is_linuxs_bound_and_message(kloaderd_async, kloader_module_tree, tmp_path: Path) -> None:
    kernel = kloaderd_async.kernel
    tree = kloader_module_tree(FIXTURES / "sleepy.ko", FIXTURES / "hello.ko")
    kernel.options.module_dir, kernel.options.modprobe_config = str(tree), str(tmp_path)
    results = {}

    async def request(name: str) -> None:
        results[name] = await kernel.kmod.request_module(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(request, "sleepy")          # holds the one slot for sleepy's 2 s init
        while kernel.find_module("sleepy") is None:
            await kernel.wait_for_change()
        await request("hello")
    assert results == {"hello": -errno.ETIME, "sleepy": 0}
    text = [r.text for r in kernel.log.records()]
    assert "request_module: modprobe hello cannot be processed, kmod busy with 1 threads for more than " \
           "0.05 seconds now" in text


@pytest.mark.trio
async def test_async_client_modprobe(kloader_async, kloader_module_tree) -> None:
    tree = kloader_module_tree(FIXTURES / "exporter.ko", FIXTURES / "user.ko")
    result = await kloader_async.modprobe("user", dirname=str(tree), config=[])
    assert [a.split()[1] for a in result["actions"]] == [str(tree / "kernel/exporter.ko"),
                                                       str(tree / "kernel/user.ko")]
    await kloader_async.modprobe("user", remove=True, dirname=str(tree), config=[])
    assert await kloader_async.modules() == []


def test_the_command_is_installed(kloaderd) -> None:
    done = subprocess.run(["kmodprobe", "--socket", kloaderd.socket_path, "-d", "/nonexistent", "x"],
                          capture_output=True, text=True, env={**os.environ})
    assert done.returncode == 1 and done.stderr.startswith("kmodprobe: ")


def test_r_of_a_three_module_chain_leaves_what_kmod_leaves(kloader, kloader_modprobe, kloader_build,
                                                           kloader_module_tree, tmp_path: Path) -> None:
    """kmod walks modules.dep's line backwards once: c is still held by b when its turn comes."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "chain_c.c").write_text('#include <linux/module.h>\nint chain_c(void) { return 3; }\n'
                                   'EXPORT_SYMBOL(chain_c);\nMODULE_LICENSE("GPL");\n')
    c = kloader_build(src / "chain_c.c")
    (src / "chain_b.c").write_text('#include <linux/module.h>\nint chain_c(void);\n'
                                   'int chain_b(void) { return chain_c() + 1; }\nEXPORT_SYMBOL(chain_b);\n'
                                   'MODULE_LICENSE("GPL");\n')
    b = kloader_build(src / "chain_b.c", extra_symbols=[c])
    (src / "chain_a.c").write_text('#include <linux/errno.h>\n#include <linux/module.h>\nint chain_b(void);\n'
                                   'static int __init a_init(void) { return chain_b() == 4 ? 0 : -EINVAL; }\n'
                                   'static void __exit a_exit(void) { }\n'
                                   'module_init(a_init);\nmodule_exit(a_exit);\nMODULE_LICENSE("GPL");\n')
    a = kloader_build(src / "chain_a.c", extra_symbols=[b])
    tree = kloader_module_tree(a, b, c)
    assert [x.split("/")[-1] for x in kloader_modprobe("chain_a", tree=tree)["actions"]] == \
        ["chain_c.ko ", "chain_b.ko ", "chain_a.ko "]
    assert kloader_modprobe("chain_a", tree=tree, remove=True)["actions"] == ["rmmod chain_a", "rmmod chain_b"]
    assert names(kloader) == ["chain_c"]
