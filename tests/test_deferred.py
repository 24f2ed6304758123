"""Timers, tasklets, workqueues and kthreads: modules hand the kernel
functions to call later, in the right context, and take them back."""

from __future__ import annotations

from pathlib import Path

import pytest

SRC = Path(__file__).parent / "src"


HANG = 120      # seconds without a log line: the lines will never come (a hang fails, it does not block CI)


def wait_for(client, *wanted: str) -> list[str]:
    """Follow the kernel log until every `wanted` line (a prefix) was logged."""
    missing = list(wanted)
    seen: list[str] = []
    client._sock.settimeout(HANG)
    try:
        for record in client.follow_dmesg():
            seen.append(record["text"])
            missing = [w for w in missing if not record["text"].startswith(w)]
            if not missing:
                return seen
    except TimeoutError:
        raise AssertionError(f"no log line for {HANG} s, still missing {missing}; seen: {seen}") from None
    finally:
        client._sock.settimeout(None)
    raise AssertionError(f"log ended without {missing}")


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


@pytest.mark.kloader(on_problems="raise")
def test_deferred_calls_run_in_their_context_and_are_taken_back(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "deferred.c"))
    lines = wait_for(kloader, "deferred: timer 3, pending 0", "deferred: tasklet 3, refcount 1",
                     "deferred: work ran, pending 0", "deferred: delayed work ran",
                     "deferred: thread alpha started")
    assert lines.index("deferred: timer 1, pending 0") < lines.index("deferred: tasklet 1, refcount 1")
    kloader.delete_module("deferred")
    tail = log(kloader)[-4:]
    assert tail == ["deferred: thread stopping",
                    "deferred: thread returned 42",            # kthread_stop gives threadfn's result
                    "deferred: work ran, pending 0",           # the last work, flushed
                    "deferred: exit, timer fired 3 times"]


@pytest.mark.kloader(on_problems="raise")
def test_a_tasklet_scheduled_by_a_timer_runs_before_the_timer_fires_again(kloader, kloader_build):
    """__do_softirq runs TASKLET_SOFTIRQ, raised by a timer callback, in the
    same pass as TIMER_SOFTIRQ: a timer that fires again at once (re-armed
    for a jiffy already past, as when a busy host runs the softirq late) does
    not fire before the tasklet it scheduled has run.  kloader's separate
    tasklet thread once lost that race, and tasklet_schedule of a tasklet
    still scheduled is, rightly, a no-op: `test_deferred` then waited for a
    third tasklet run that never came."""
    kloader.finit_module(kloader_build(SRC / "deferred.c"), "ticks=5 late=1")
    lines = [line for line in wait_for(kloader, "deferred: tasklet 5")
             if line.startswith(("deferred: timer", "deferred: tasklet"))]
    assert lines == [text for n in range(1, 6)
                     for text in (f"deferred: timer {n}, pending 0", f"deferred: tasklet {n}, refcount 1")]
    kloader.delete_module("deferred")


@pytest.mark.kloader(on_problems="ignore")
def test_sleeping_in_a_timer_is_scheduling_while_atomic(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "deferred.c"), "ticks=1 sleep_in_timer=1")
    wait_for(kloader, "deferred: tasklet 1")
    bugs = [line for line in log(kloader) if line.startswith("BUG: scheduling while atomic")]
    assert bugs and bugs[0].startswith("BUG: scheduling while atomic: swapper/0/")
    assert bugs[0].endswith("/0x00000101")                      # SOFTIRQ_OFFSET + __schedule's own
    kloader.delete_module("deferred")


SHUTDOWN_C = r"""
#include <linux/module.h>
#include <linux/timer.h>
#include <linux/jiffies.h>

static struct timer_list t;
static void fire(struct timer_list *unused) { pr_info("fired\n"); }

static int __init sd_init(void)
{
	int pending;

	timer_setup(&t, fire, 0);
	mod_timer(&t, jiffies + 100000);
	pending = timer_pending(&t);

	pr_info("pending %d, shutdown %d\n", pending, timer_shutdown_sync(&t));
	mod_timer(&t, jiffies + 1);            /* shut down: silently not armed again */
	pr_info("pending after re-arm %d\n", timer_pending(&t));
	return 0;
}
static void __exit sd_exit(void) { }
module_init(sd_init);
module_exit(sd_exit);
MODULE_LICENSE("GPL");
"""


@pytest.mark.kloader(on_problems="raise")
def test_a_timer_shut_down_is_never_armed_again(kloader, kloader_build, tmp_path):
    """timer_shutdown_sync (fscache's exit): deleted, and mod_timer after it does nothing."""
    source = tmp_path / "shutdown.c"
    source.write_text(SHUTDOWN_C)
    kloader.finit_module(kloader_build(source))
    texts = [r["text"] for r in kloader.dmesg()]
    assert "pending 1, shutdown 1" in texts and "pending after re-arm 0" in texts
    kloader.delete_module("shutdown")
