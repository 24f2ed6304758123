"""The module-lifetime sanitizer: one test per report, each with the buggy
module and its fixed twin, which reports nothing (docs/sanitizer.md)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import trio

from kloader_client import AsyncClient

SRC = Path(__file__).parent / "src"


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


def problems(kloaderd) -> list[str]:
    found = kloaderd.find_problems()
    return [*found.oopses, *found.sanitizer, *found.warnings, *found.leaks]


@pytest.fixture
def registry(kloader_build):
    def build(*defines: str):
        return kloader_build(SRC / "registry.c", defines=list(defines))
    return build


def _load_registry_users(kloader, kloader_build, registry_ko, cbmod_defines=()):
    kloader.finit_module(registry_ko)
    cbmod = kloader_build(SRC / "cbmod.c", defines=list(cbmod_defines), extra_symbols=[registry_ko])
    firer = kloader_build(SRC / "firer.c", extra_symbols=[registry_ko])
    return cbmod, firer


# -- 1. the Golden Rule ------------------------------------------------------------

@pytest.mark.kloader(on_problems="ignore")
def test_a_registry_calling_without_a_reference_is_reported(kloader, kloaderd, kloader_build, registry):
    cbmod, firer = _load_registry_users(kloader, kloader_build, registry("BUG_NO_GET"))
    kloader.finit_module(cbmod)
    kloader.finit_module(firer)
    lines = log(kloader)
    assert "firer: reg_fire(21) = 42" in lines                  # the call happens all the same
    bug = next(line for line in lines if line.startswith("BUG: golden rule"))
    assert bug.startswith("BUG: golden rule: call into module cbmod without a reference in reg_fire+0x")
    assert bug.endswith("[registry]")
    assert any(line.startswith("callee: cbmod_callback+0x0/") for line in lines)
    assert any(p.startswith("BUG: golden rule") for p in problems(kloaderd))


@pytest.mark.kloader(on_problems="raise")
def test_a_registry_that_takes_a_reference_is_not(kloader, kloader_build, registry):
    cbmod, firer = _load_registry_users(kloader, kloader_build, registry())
    kloader.finit_module(cbmod)
    kloader.finit_module(firer)
    assert "firer: reg_fire(21) = 42" in log(kloader)
    assert not any(line.startswith("BUG:") for line in log(kloader))


@pytest.mark.kloader(on_problems="raise")
def test_calls_the_faq_allows_are_not_reported(kloader, kloader_build, registry):
    """A module's own code, a caller that depends on the callee, a callee
    someone holds a reference on: none is reported even without try_module_get."""
    cbmod, firer = _load_registry_users(kloader, kloader_build, registry("BUG_NO_GET"))
    kloader.finit_module(cbmod)
    kloader.try_module_get("cbmod")                  # a reference held by a client
    kloader.finit_module(firer)
    kloader.module_put("cbmod")
    assert "firer: reg_fire(21) = 42" in log(kloader)


# -- 2. use after unload ------------------------------------------------------------

@pytest.mark.kloader(on_problems="ignore")
def test_a_callback_called_after_its_module_is_gone_oopses_naming_it(kloader, kloader_build, registry):
    cbmod, firer = _load_registry_users(kloader, kloader_build, registry(), ["BUG_NO_UNREGISTER"])
    kloader.finit_module(cbmod)
    kloader.delete_module("cbmod")
    with pytest.raises(OSError) as oops:
        kloader.finit_module(firer)
    assert oops.value.errno == errno.EFAULT
    lines = log(kloader)
    assert any(line.startswith("BUG: unable to handle page fault for address: ") for line in lines)
    assert any(line.startswith("The buggy address") and "belongs to module cbmod, unloaded" in line
               for line in lines)
    assert any(line.startswith("Modules linked in: ") and line.endswith("[last unloaded: cbmod(O)]")
               for line in lines)


@pytest.mark.kloader(on_problems="raise")
def test_a_callback_unregistered_at_exit_is_not_called(kloader, kloader_build, registry):
    cbmod, firer = _load_registry_users(kloader, kloader_build, registry())
    kloader.finit_module(cbmod)
    kloader.delete_module("cbmod")
    kloader.finit_module(firer)
    assert "firer: reg_fire(21) = 0" in log(kloader)


# -- 3. leftovers at unload -------------------------------------------------------------

LEFTOVERS = [
    ("BUG_LEAVE_TIMER", "ticks=1000000",
     r"ODEBUG: free active (active state 0) object: ", "object type: timer_list hint: deferred_timer+0x0/"),
    ("BUG_LEAVE_WORK", "",
     r"ODEBUG: free active (active state 0) object: ", "object type: work_struct hint: deferred_work+0x0/"),
    ("BUG_LEAVE_DWORK", "",
     r"ODEBUG: free active (active state 0) object: ", "object type: timer_list hint: delayed_work_timer_fn+0x0/"),
    ("BUG_LEAVE_THREAD", "",
     "BUG: kthread deferred/0/", "still running deferred_thread+0x0/"),
]


@pytest.mark.kloader(on_problems="ignore")
@pytest.mark.parametrize("bug, params, head, tail", LEFTOVERS, ids=[b for b, *_ in LEFTOVERS])
def test_what_a_module_leaves_behind_is_reported_and_made_inert(kloader, kloaderd, kloader_build,
                                                                 bug, params, head, tail):
    kloader.finit_module(kloader_build(SRC / "deferred.c", defines=[bug]), params)
    for record in kloader.follow_dmesg():
        if record["text"].startswith("deferred: thread alpha started"):
            break
    kloader.delete_module("deferred")
    report = [line for line in log(kloader) if line.startswith(head) and tail in line]
    assert len(report) == 1, log(kloader)[-20:]
    assert problems(kloaderd)
    # Inert: the kernel goes on (a fresh load works, nothing calls into freed code).
    kloader.finit_module(kloader_build(SRC / "deferred.c"), "ticks=1")
    kloader.delete_module("deferred")
    assert not any("unable to handle page fault" in line for line in log(kloader))


@pytest.mark.kloader(on_problems="raise")
def test_a_module_that_takes_everything_back_reports_nothing(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "deferred.c"), "ticks=1000000")
    for record in kloader.follow_dmesg():
        if record["text"].startswith("deferred: timer 2"):
            break
    kloader.delete_module("deferred")
    assert log(kloader)[-1].startswith("deferred: exit, timer fired ")


EMBEDDED = [
    (1, "object type: timer_list hint: gadget_timer+0x0/"),
    (2, "object type: work_struct hint: gadget_work+0x0/"),
    (3, "object type: timer_list hint: gadget_timer+0x0/"),
]


@pytest.mark.kloader(on_problems="ignore")
@pytest.mark.parametrize("mode, report", EMBEDDED, ids=["kfree-timer", "kfree-work", "leak-timer"])
def test_an_active_object_inside_a_freed_struct_is_reported(kloader, kloaderd, kloader_build,
                                                            mode, report):
    """debugobjects checks the whole object kfree frees (or the module's
    leaked heap), so a timer_list or work_struct embedded at offset 48 is
    found as one at offset 0 would be, reported and deactivated."""
    kloader.finit_module(kloader_build(SRC / "embedded.c"), f"mode={mode}")
    kloader.delete_module("embedded")
    odebug = [line for line in log(kloader) if line.startswith("ODEBUG: free active")]
    assert len(odebug) == 1 and report in odebug[0], log(kloader)[-12:]
    assert problems(kloaderd)
    assert not any(line.startswith("embedded: timer fired") or line.startswith("embedded: work ran")
                   for line in log(kloader))
    assert "embedded: mode %d, timer at offset 48" % mode in log(kloader)


@pytest.mark.kloader(on_problems="raise")
def test_a_struct_freed_after_its_timer_and_work_reports_nothing(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "embedded.c"), "mode=0")
    kloader.delete_module("embedded")


@pytest.mark.kloader(on_problems="raise")
@pytest.mark.parametrize("ordered, seen", [(False, "1"), (True, "0")], ids=["system_wq", "ordered"])
def test_work_items_run_concurrently_unless_the_workqueue_is_ordered(kloader, kloader_build,
                                                                      ordered, seen):
    """Work A waits for work B, queued after it: system_wq starts B in a
    kworker of its own while A sleeps; an ordered workqueue cannot."""
    kloader.finit_module(kloader_build(SRC / "concurrent.c"), f"ordered={int(ordered)}")
    for record in kloader.follow_dmesg():
        if record["text"].startswith("concurrent: a waited"):
            break
    kloader.delete_module("concurrent")
    lines = [line for line in log(kloader) if line.startswith(("concurrent: a", "concurrent: b"))]
    order = ["concurrent: b runs", f"concurrent: a waited, b done: {seen}"]
    assert lines == (order[::-1] if ordered else order)


# -- 4. put and return -------------------------------------------------------------------

def _remove_while_the_thread_holds_it(kloaderd, ko) -> None:
    async def main():
        async with AsyncClient(kloaderd.socket_path) as client:
            await client.finit_module(ko)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: client.delete_module("selfref", wait=True))
                while (await client.module("selfref"))["state"] != "going":
                    await trio.sleep(0.01)
                await client.param_set("selfref", "go", "1")   # the thread drops its reference
            assert await client.modules() == []
    trio.run(main)


@pytest.mark.kloader(on_problems="ignore")
def test_put_and_return_while_a_removal_waits_is_reported(kloader, kloaderd, kloader_build):
    _remove_while_the_thread_holds_it(kloaderd, kloader_build(SRC / "selfref.c",
                                                              defines=["BUG_PUT_AND_RETURN"]))
    lines = log(kloader)
    bug = next(line for line in lines if line.startswith("BUG: module selfref dropped its last reference"))
    assert " in selfref_thread" in bug          # (gcc may split it: selfref_thread.cold)
    assert any(line.startswith("a removal of selfref is waiting") for line in lines)


@pytest.mark.kloader(on_problems="raise")
def test_module_put_and_kthread_exit_is_the_cure(kloader, kloaderd, kloader_build):
    _remove_while_the_thread_holds_it(kloaderd, kloader_build(SRC / "selfref.c"))
    assert log(kloader)[-2:] == ["selfref: thread done", "selfref: exit"]


# -- 3b. deferred calls that come due while the exit waits for the CPU ---------------------

LATE_C = r"""
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/timer.h>
#include <linux/workqueue.h>

static struct timer_list timer;
static struct delayed_work dwork;

static void late_timer(struct timer_list *t) { pr_info("late: timer ran\n"); }
static void late_work(struct work_struct *w) { pr_info("late: delayed work ran\n"); }

/* The test's: the exit sleeps in it, and comes back to wait for the CPU. */
extern void late_gate(struct timer_list *timer, struct timer_list *dwork_timer);

static int __init late_init(void)
{
	timer_setup(&timer, late_timer, 0);
	INIT_DELAYED_WORK(&dwork, late_work);
	mod_timer(&timer, jiffies + 3600 * HZ);          /* the bug: neither is taken back */
	schedule_delayed_work(&dwork, 3600 * HZ);
	return 0;
}

static void __exit late_exit(void)
{
	late_gate(&timer, &dwork.timer);
}

module_init(late_init);
module_exit(late_exit);
MODULE_LICENSE("GPL");
"""


def test_timers_due_while_the_exit_waits_for_the_cpu_are_reported_and_never_run(kloader_build, tmp_path):
    """The flake of BUG_LEAVE_TIMER and BUG_LEAVE_DWORK under load, forced:
    a module's timers come due while its exit, back from a sleep, waits for
    the CPU; the timer softirq then queues for the CPU behind it.  The exit
    returns and the module is freed before the softirq runs — so the timers
    must still be pending then (reported by debugobjects, disarmed), not
    taken off already and run afterwards into freed code."""
    from kloaderd.kernel.kernel import Kernel, KernelOptions
    from kloaderd.time.timer import timers

    source = tmp_path / "late.c"
    source.write_text(LATE_C)
    image = kloader_build(source).read_bytes()
    kernel = Kernel(KernelOptions())
    sched = kernel.machine.sched
    armed: list[int] = []
    holder = sched.new_task("test")

    def late_gate(ctx, timer, dwork_timer):
        armed.extend((timer, dwork_timer))

        async def hold_the_cpu() -> int:
            await sched.acquire(holder)       # the exit gave the CPU up to sleep: the test takes it
            return 0
        return hold_the_cpu()
    kernel.provide("late_gate", late_gate, nargs=2)

    async def main() -> None:
        await kernel.init_module(image)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(kernel.delete_module, "late")
            await trio.testing.wait_all_tasks_blocked()
            assert armed and sched.cpu.waiting == 1          # the exit, back from late_gate
            for timer in armed:                              # the clock: both come due now
                timers(kernel).arm(timer, kernel.machine.jiffies() - 1)
            await trio.testing.wait_all_tasks_blocked()
            assert sched.cpu.waiting == 2                    # the timer softirq, behind the exit
            sched.exit_task(holder)                          # the exit runs, returns: the module is freed
        assert "late" not in kernel.loaded
        await kernel.shutdown()

    import trio.testing
    trio.run(main)
    lines = [r.text for r in kernel.log.records()]
    odebug = [line for line in lines if line.startswith("ODEBUG: free active")]
    assert len(odebug) == 2, lines[-20:]
    assert "hint: late_timer+0x0/" in odebug[0] + odebug[1]
    assert "hint: delayed_work_timer_fn+0x0/" in odebug[0] + odebug[1]
    assert not any(line.startswith("late: ") and line.endswith(" ran") for line in lines)
    assert not any("unable to handle page fault" in line for line in lines), lines[-20:]
