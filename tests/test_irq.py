"""Interrupts: a client raises a line; the handler runs in hardirq context,
its thread and a tasklet after it; the line's errors are Linux's."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_deferred import log, wait_for

SRC = Path(__file__).parent / "src"


@pytest.mark.kloader(on_problems="raise")
def test_handler_thread_and_tasklet_run_in_order(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "irqmod.c"))
    reply = kloader.raise_irq(5, wait=True)
    assert reply == {"irq": 5, "delivered": True, "pending": False, "result": 2}   # IRQ_WAKE_THREAD
    lines = log(kloader)
    hard = lines.index("irqmod: hardirq 1 on line 5, cookie 42")
    assert hard < lines.index("irqmod: thread 1 on line 5")
    assert hard < lines.index("irqmod: tasklet 1")
    kloader.raise_irq(5, wait=True)
    assert "irqmod: thread 2 on line 5" in log(kloader)
    kloader.delete_module("irqmod")
    assert log(kloader)[-2:] == ["irqmod: freed irqmod",
                                 "irqmod: exit after 2 hardirqs, 2 threads, 2 tasklets"]
    assert not any("leaked" in line for line in log(kloader))


@pytest.mark.kloader(on_problems="ignore")
def test_sleeping_in_a_hardirq_handler_is_reported(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "irqmod.c"), "sleep_in_handler=1")
    kloader.raise_irq(5, wait=True)
    bugs = [line for line in log(kloader) if line.startswith("BUG: scheduling while atomic")]
    assert len(bugs) == 1                       # the handler's sleep, not the thread's
    assert bugs[0].startswith("BUG: scheduling while atomic: swapper/0/")
    assert bugs[0].endswith("/0x00010001")      # HARDIRQ_OFFSET + __schedule's own
    kloader.delete_module("irqmod")


@pytest.mark.kloader(on_problems="ignore")
def test_a_line_left_requested_is_reported_and_taken_off(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "irqmod.c", defines=["BUG_LEAVE_IRQ"]))
    kloader.delete_module("irqmod")
    assert 'irqmod: leaked registration: irq 5 handler "irqmod"' in log(kloader)
    assert kloader.raise_irq(5) == {"irq": 5, "delivered": True, "pending": False, "result": 0}


def test_request_errors_are_linux_s(kloader, kloader_build):
    ko = kloader_build(SRC / "irqmod.c")
    with pytest.raises(OSError) as busy:
        kloader.finit_module(ko, "irq=0")           # the timer's line, not shared
    assert busy.value.errno == 16
    assert "genirq: Flags mismatch irq 0. 00000000 (irqmod) vs. 00015a00 (timer)" in log(kloader)
    with pytest.raises(OSError) as missing:
        kloader.finit_module(ko, "irq=99")          # no such line on this machine
    assert missing.value.errno == 22
    with pytest.raises(OSError):
        kloader.finit_module(ko, "thread_only=1")
    assert "genirq: Threaded irq requested with handler=NULL and !ONESHOT for irqmod (irq 5)" \
        in log(kloader)
    kloader.finit_module(ko, "thread_only=1 flags=0x2000")     # IRQF_ONESHOT
    assert kloader.raise_irq(5, wait=True)["result"] == 2
    assert "irqmod: thread 1 on line 5" in log(kloader)
    kloader.delete_module("irqmod")


@pytest.mark.kloader(on_problems="ignore")
def test_freeing_a_free_line_and_unbalanced_enable_warn(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "irqmod.c"), "free_other=1 extra_enable=1")
    lines = log(kloader)
    assert "Trying to free already-free IRQ 6" in lines
    assert "Unbalanced enable for IRQ 5" in lines
    assert sum(line.startswith("WARNING: CPU: 0 PID:") for line in lines) == 2
    kloader.delete_module("irqmod")


def test_a_disabled_line_keeps_the_interrupt_pending(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "irqmod.c"), "flags=0x80000")    # IRQF_NO_AUTOEN
    assert kloader.raise_irq(5) == {"irq": 5, "delivered": False, "pending": True, "result": 0}
    assert not any(line.startswith("irqmod: hardirq") for line in log(kloader))
    kloader.delete_module("irqmod")


def test_raising_a_line_the_machine_lacks_is_einval(kloader):
    with pytest.raises(OSError) as exc:
        kloader.raise_irq(200)
    assert exc.value.errno == 22 and "does not exist" in str(exc.value)


def test_proc_interrupts_counts_the_lines_with_handlers(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "irqmod.c"))
    kloader.raise_irq(5, wait=True)
    kloader.raise_irq(5, wait=True)
    assert kloader.read_file("/proc/interrupts").decode().splitlines() == [
        "           CPU0       ",
        "  0:          0   IO-APIC   2-edge      timer",
        "  5:          2   IO-APIC   5-edge      irqmod",
    ]
    kloader.delete_module("irqmod")
    assert "irqmod" not in kloader.read_file("/proc/interrupts").decode()
