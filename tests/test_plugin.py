"""The pytest plugin, as a user's suite meets it: each case writes a small
test file and runs pytest on it (pytester), with the plugin loaded the way
any suite gets it — through the `pytest11` entry point."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest


@pytest.fixture
def suite(pytester: pytest.Pytester, fixture_ko):
    """Write a test file that can name fixture modules as HELLO, EXPORTER, USER."""

    def write(body: str) -> None:
        header = "".join(f"{name.upper()} = {str(fixture_ko(name))!r}\n"
                         for name in ("hello", "exporter", "user"))
        pytester.makepyfile(test_suite="import pytest\n" + header + body)

    return write


def test_kloader_gives_each_test_a_fresh_daemon_and_client(pytester, suite):
    suite("""
def test_load(kloader, kloaderd):
    assert kloader.init_module(open(HELLO, "rb").read()) == "hello"
    assert kloaderd.run_sync(kloaderd.kernel.find_module, "hello") is not None
    assert kloader.module("hello")["state"] == "live"

def test_fresh(kloader):
    assert kloader.modules() == []   # the other test's module is not here
""")
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_failed_test_shows_its_kernel_log(pytester, suite):
    suite("""
def test_fails(kloader):
    kloader.init_module(open(HELLO, "rb").read())
    assert kloader.modules() == []
""")
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Captured kernel log call*", "*] Hello, world"])


def test_kloader_log_filters_by_level(pytester, suite):
    suite("""
def test_fails(kloader):
    kloader.init_module(open(HELLO, "rb").read())
    kloader.init_module(open(HELLO, "rb").read())
""")
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "--kloader-log=warn")
    result.assert_outcomes(failed=1)
    assert "Hello, world" not in result.stdout.str()          # info is less urgent than warn
    result.stdout.fnmatch_lines(["*Captured kernel log call*", "*out-of-tree module taints*"])

    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "--kloader-log=0")
    assert "Captured kernel log" not in result.stdout.str()

    result = pytester.runpytest_inprocess("--kloader-log=loud")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--kloader-log: unknown log level 'loud'*"])


def test_options_and_markers_set_kernel_options(pytester, suite):
    suite("""
def test_from_the_command_line(kloaderd):
    assert kloaderd.kernel.options.watchdog == 0.5
    assert kloaderd.kernel.options.try_get_coming is True

@pytest.mark.kloader(watchdog=2.0, exporter_wait=1.0)
def test_marker_wins(kloaderd):
    assert kloaderd.kernel.options.watchdog == 2.0
    assert kloaderd.kernel.options.exporter_wait == 1.0
""")
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "--kloader-watchdog=0.5",
                                          "--kloader-try-get-coming")
    result.assert_outcomes(passed=2)


LEAKY_TEST = r"""
SOURCE = '''
#include <linux/module.h>
#include <linux/slab.h>
static void *kept;
static int __init leaky_init(void) { kept = kmalloc(32, GFP_KERNEL); return 0; }
module_init(leaky_init);
MODULE_LICENSE("GPL");
'''

def test_leaks(kloader, kloader_build, tmp_path):
    (tmp_path / "leaky.c").write_text(SOURCE)
    ko = kloader_build(tmp_path / "leaky.c")
    assert ko.name == "leaky.ko" and ko.parent == tmp_path
    kloader.init_module(ko.read_bytes())
"""


def test_leaks_warn_by_default_and_error_when_asked(pytester):
    pytester.makepyfile(test_leak=LEAKY_TEST)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*KernelProblemWarning*leaky: leaked 32 bytes in 1 allocation*"])

    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "--kloader-problems=raise")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaks*", "*KernelProblems*"])


def test_kloader_build_skips_without_a_compiler(pytester, monkeypatch):
    pytester.makepyfile(test_build="def test_build(kloader_build):\n    kloader_build('x.c')\n")
    monkeypatch.setenv("CC", "no-such-gcc")
    result = pytester.runpytest_inprocess("-q", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*kloader_build needs no-such-gcc on PATH*"])


def test_trio_tests_get_a_daemon_in_their_own_run(pytester, suite):
    suite("""
import trio

@pytest.mark.trio
async def test_async(kloader_async, kloaderd_async):
    assert trio.lowlevel.current_trio_token() is kloaderd_async.trio_token
    async with trio.open_nursery() as nursery:
        for ko in (EXPORTER, HELLO):
            nursery.start_soon(kloader_async.init_module, open(ko, "rb").read())
    assert kloaderd_async.kernel.find_module("exporter") is not None
    assert sorted(m["name"] for m in await kloader_async.modules()) == ["exporter", "hello"]
    assert False, "show the log"
""")
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*show the log*", "*Captured kernel log call*",
                                 "*exporter: loaded*"])


def test_suites_that_use_no_fixture_see_nothing_of_kloader(pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 == 2\n")
    before = {t.name for t in threading.enumerate()}
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "kernel log" not in output and "kloader" not in output
    assert not Path(pytester.path, "kloaderd.sock").exists()
    assert {t.name for t in threading.enumerate()} - before == set()


@pytest.mark.slow          # a whole pytest -n run of its own
def test_xdist_workers_each_get_their_own_daemons(pytester, suite):
    pytest.importorskip("xdist")
    suite("".join(f"""
def test_{i}(kloader, kloaderd):
    assert kloader.modules() == []
    kloader.init_module(open(HELLO, "rb").read())
    print(kloaderd.socket_path)
""" for i in range(4)))
    result = pytester.runpytest_subprocess("-q", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_kloader_build_never_returns_a_stale_build(pytester):
    pytester.makepyfile(test_rebuild=r'''
SOURCE = """
#include <linux/module.h>
static int __init say_init(void) { pr_info("say: %s\\n", "WORD"); return 0; }
module_init(say_init);
MODULE_LICENSE("GPL");
"""

def load_and_read(kloader, ko):
    kloader.init_module(ko.read_bytes())
    kloader.delete_module("say", force=True)
    return [r["text"] for r in kloader.dmesg() if r["text"].startswith("say: ")][-1]

def test_rebuild(kloader, kloader_build, tmp_path):
    source = tmp_path / "say.c"
    source.write_text(SOURCE.replace("WORD", "one"))
    assert load_and_read(kloader, kloader_build(source)) == "say: one"
    assert load_and_read(kloader, kloader_build(source)) == "say: one"
    source.write_text(SOURCE.replace("WORD", "two"))
    assert load_and_read(kloader, kloader_build(source)) == "say: two"
''')
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
