"""A real module's WARN() and BUG() (kloaderd/kernel/bug.py): `ud2` with a
`__bug_table` entry, built with the Debian 6.1 kbuild.  A WARN reports as
Linux's __warn() does, taints W and the code goes on after the ud2;
WARN_ON_ONCE fires once; BUG() is "kernel BUG at FILE:LINE!" and an oops."""

from __future__ import annotations

import errno
import re

import pytest
import trio

from kloaderd.errors import KernelError
from kloaderd.kernel.kernel import Kernel, KernelOptions
from realkernel import corpus
from test_kbuild import kmodbuild

WARNER = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/bug.h>
MODULE_LICENSE("GPL");
static int v = 3;
module_param(v, int, 0);
static noinline int poke(int x) { WARN_ON(x == 3); WARN_ON_ONCE(x == 3); return x + 1; }
static int __init warner_init(void)
{
	int a = poke(v), b = poke(v);
	WARN(v == 3, "warner: v is %d\n", v);
	pr_info("warner: after %d %d\n", a, b);
	BUG_ON(v == 4);
	return 0;
}
static void __exit warner_exit(void) { }
module_init(warner_init);
module_exit(warner_exit);
"""


@pytest.fixture(scope="module")
def warner(tmp_path_factory):
    _, build = corpus("6.1")
    tmp = tmp_path_factory.mktemp("warner")
    (tmp / "warner.c").write_text(WARNER)
    done = kmodbuild("--kernel", str(build), str(tmp / "warner.c"), "-o", str(tmp / "warner.ko"))
    assert done.returncode == 0, done.stderr
    return build, (tmp / "warner.ko").read_bytes()


def _load(build, image: bytes, params: str) -> tuple[Kernel, KernelError | None]:
    kernel = Kernel(KernelOptions(kernel=str(build)))
    failure: list[KernelError] = []

    async def main() -> None:
        try:
            await kernel.init_module(image, params)
            await kernel.delete_module("warner")
        except KernelError as exc:
            failure.append(exc)
        await kernel.shutdown()
    trio.run(main)
    return kernel, failure[0] if failure else None


@pytest.mark.slow          # builds with the real kernel's kbuild
def test_warn_reports_taints_and_goes_on(warner):
    kernel, failure = _load(*warner, "")
    assert failure is None
    log = [r.text for r in kernel.log.records()]
    warnings = [line for line in log if line.startswith("WARNING: ")]
    assert len(warnings) == 4                       # WARN_ON twice, WARN_ON_ONCE once, WARN
    assert re.fullmatch(r"WARNING: CPU: 0 PID: \d+ at \S+/warner\.c:8 poke\+0x\w+/0x\w+ \[warner\]",
                        warnings[0])
    assert re.fullmatch(r"WARNING: CPU: 0 PID: \d+ at \S+/warner\.c:12 warner_init\+\S+ \[warner\]",
                        warnings[3])
    # WARN() printed its message (and the cut-here line) before the trap
    at = log.index(warnings[3])
    assert log[at - 2:at] == ["------------[ cut here ]------------", "warner: v is 3"]
    assert "warner: after 4 4" in log
    assert "W" in kernel.taints
    assert not any(line.startswith(("invalid opcode", "BUG:")) for line in log)


@pytest.mark.slow          # builds with the real kernel's kbuild
def test_bug_is_an_oops_naming_the_line(warner):
    kernel, failure = _load(*warner, "v=4")
    assert failure is not None and failure.errno == errno.EFAULT
    log = [r.text for r in kernel.log.records()]
    bug = next(i for i, line in enumerate(log) if line.startswith("kernel BUG at "))
    assert re.fullmatch(r"kernel BUG at \S+/warner\.c:14!", log[bug])
    assert log[bug - 1] == "------------[ cut here ]------------"
    assert log[bug + 1].startswith("invalid opcode: 0000 [#1]")
    assert not any(line.startswith("WARNING: ") for line in log)
