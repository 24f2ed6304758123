"""RCU callbacks (kloaderd/kernel/rcu.py): call_rcu's callbacks run after a
grace period, in softirq context, never from inside call_rcu nor while a
reader that began before is inside; rcu_barrier waits for them; kfree_rcu
rides the same queue; what is still queued into a module when it is freed
is reported and never runs.  Through the pytest plugin's daemon and the
`rcucb` fixture (fixtures/src/rcucb.c), and with Debian's ip_vs."""

from __future__ import annotations

from pathlib import Path

import pytest

from realkernel import corpus, find_module, load_then_remove
from kloaderd import Problems

RCUCB = Path(__file__).resolve().parent.parent / "fixtures" / "rcucb.ko"


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


def rcucb_lines(client) -> list[str]:
    return [line for line in log(client) if line.startswith("rcucb: ") and "taints" not in line]


@pytest.mark.kloader(on_problems="raise")
def test_callbacks_run_after_call_rcu_returns_and_rcu_barrier_waits_for_them(kloader):
    kloader.finit_module(RCUCB)
    kloader.delete_module("rcucb")
    assert rcucb_lines(kloader) == [
        "rcucb: queued 3, 0 ran",                    # none from inside call_rcu
        "rcucb: callback for object 1, 1 ran",       # in the order queued
        "rcucb: callback for object 2, 2 ran",
        "rcucb: callback for object 3, 3 ran",
        "rcucb: after rcu_barrier, 3 ran",
        "rcucb: callback for object 0, 4 ran",       # exit's, waited for by its rcu_barrier
        "rcucb: exit, 4 ran",
    ]


@pytest.mark.kloader(on_problems="raise")
def test_only_readers_that_began_before_call_rcu_hold_its_callback_back(kloader):
    """The kthread reader, inside before the objects were queued, holds
    every callback back while init sleeps; the callback queued before init
    itself began reading runs while init is inside (init waits for it)."""
    kloader.finit_module(RCUCB, "reader=1")
    lines = rcucb_lines(kloader)
    assert lines[:8] == [
        "rcucb: queued 3, 0 ran",
        "rcucb: reader still inside, 0 ran",
        "rcucb: reader leaving, 0 ran",
        "rcucb: callback for object 1, 1 ran",
        "rcucb: callback for object 2, 2 ran",
        "rcucb: callback for object 3, 3 ran",
        "rcucb: callback for object -1, 4 ran",
        "rcucb: later reader inside, its callback ran: 1",
    ]
    kloader.delete_module("rcucb")


@pytest.mark.kloader(on_problems="ignore")
def test_callbacks_run_in_softirq_context(kloader, kloaderd):
    kloader.finit_module(RCUCB, "count=1 sleep_in_callback=1")
    kloader.delete_module("rcucb")
    atomic = [line for line in log(kloader) if line.startswith("BUG: scheduling while atomic: ksoftirqd/0/")]
    assert len(atomic) == 2 and all(line.endswith("/0x00000101") for line in atomic)
    assert kloaderd.find_problems().oopses


@pytest.mark.kloader(on_problems="ignore")
def test_a_callback_left_queued_at_unload_is_reported_and_never_runs(kloader, kloaderd):
    """Without rcu_barrier in exit, the callback queued there points into
    the module when it is freed: debugobjects' report, and it is dropped."""
    kloader.finit_module(RCUCB, "barrier=0")
    kloader.delete_module("rcucb")
    lines = log(kloader)
    odebug = [line for line in lines if line.startswith("ODEBUG: free active")]
    assert len(odebug) == 1
    assert "object type: rcu_head hint: rcucb_free+0x0/" in odebug[0] and odebug[0].endswith(" [rcucb]")
    assert "rcucb: callback for object 0" not in " ".join(lines)
    found = kloaderd.find_problems()
    assert found.sanitizer and list(found.leaks) == ["rcucb: leaked 24 bytes in 1 allocations"]
    # Inert: the same module loads and unloads cleanly after, nothing ran into freed code.
    kloader.finit_module(RCUCB, "count=1")
    kloader.delete_module("rcucb")
    assert not any("unable to handle page fault" in line for line in log(kloader))
    assert log(kloader)[-1] == "rcucb: exit, 2 ran"


MISUSE_C = r"""
#include <linux/errno.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>

static int mode;
module_param(mode, int, 0444);

struct thing { long payload[3]; struct rcu_head rcu; };

static void misuse_cb(struct rcu_head *head) { pr_info("misuse: callback ran\n"); }

static int __init misuse_init(void)
{
	struct thing *t = kmalloc(sizeof(*t), GFP_KERNEL);

	if (!t)
		return -ENOMEM;
	switch (mode) {
	case 1:		/* queued twice: the second is Linux's "Double-freed CB" */
		call_rcu(&t->rcu, misuse_cb);
		call_rcu(&t->rcu, misuse_cb);
		rcu_barrier();
		kfree(t);
		break;
	case 2:		/* kfreed while its rcu_head is queued */
		call_rcu(&t->rcu, misuse_cb);
		kfree(t);
		rcu_barrier();
		break;
	case 3:		/* 6.3+'s kfree_rcu: the pointer, not the field's offset */
		kvfree_call_rcu(&t->rcu, (rcu_callback_t)(void *)t);
		rcu_barrier();
		break;
	default:	/* kloader's (and 6.1's) kfree_rcu: the field's offset */
		kfree_rcu(t, rcu);
		break;
	}
	pr_info("misuse: mode %d done\n", mode);
	return 0;
}

static void __exit misuse_exit(void) { rcu_barrier(); }

module_init(misuse_init);
module_exit(misuse_exit);
MODULE_LICENSE("GPL");
"""


@pytest.fixture
def misuse(kloader_build, tmp_path):
    source = tmp_path / "misuse.c"
    source.write_text(MISUSE_C)
    return kloader_build(source)


@pytest.mark.kloader(on_problems="raise")
@pytest.mark.parametrize("mode", [0, 3], ids=["offset", "pointer"])
def test_kfree_rcu_frees_through_the_same_queue_either_way_it_is_called(kloader, misuse, mode):
    """The memory is the kernel's once handed to kfree_rcu (no leak when
    the module goes first); rcu_barrier waits for the free; nothing else is
    freed (a wrong pointer would be a SLUB report)."""
    kloader.finit_module(misuse, f"mode={mode}")
    kloader.delete_module("misuse")
    assert f"misuse: mode {mode} done" in log(kloader)


@pytest.mark.kloader(on_problems="ignore")
def test_an_rcu_head_queued_twice_is_reported_and_its_second_callback_leaked(kloader, kloaderd, misuse):
    kloader.finit_module(misuse, "mode=1")
    kloader.delete_module("misuse")
    lines = log(kloader)
    double = [line for line in lines if "Double-freed CB" in line]
    assert len(double) == 1
    assert double[0].startswith("__call_rcu_common(): Double-freed CB ffff")
    assert "->misuse_cb+0x0/" in double[0] and double[0].endswith(" [misuse]()!!!")
    assert lines.count("misuse: callback ran") == 1
    assert kloaderd.find_problems().sanitizer


@pytest.mark.kloader(on_problems="ignore")
def test_kfree_of_an_object_whose_rcu_head_is_queued_is_reported_and_the_callback_dropped(
        kloader, kloaderd, misuse):
    kloader.finit_module(misuse, "mode=2")
    kloader.delete_module("misuse")
    lines = log(kloader)
    odebug = [line for line in lines if line.startswith("ODEBUG: free active")]
    assert len(odebug) == 1 and "object type: rcu_head hint: misuse_cb+0x0/" in odebug[0]
    assert "misuse: callback ran" not in lines
    assert kloaderd.find_problems().sanitizer


# -- Debian's ip_vs: call_rcu at its exit, and ip_vs_ftp's app incarnation ------------------

IPVS = ("libcrc32c", "nf_defrag_ipv6", "nf_defrag_ipv4", "nf_conntrack", "ip_vs", "nf_nat",
        "ip_vs_ftp", "ip_vs_rr")


@pytest.mark.parametrize("flavour", ["6.12", "6.1"])
def test_ip_vs_and_ip_vs_ftp_load_and_unload_cleanly(flavour):
    """ip_vs_ftp's exit retires its app incarnation with call_rcu to
    ip_vs's callback, which kfrees it (not ip_vs_ftp's leak); ip_vs's exit
    call_rcu's and rcu_barrier()s; 6.12's nf_conntrack exits through
    synchronize_rcu_expedited."""
    modules, build = corpus(flavour)
    kernel, errors = load_then_remove(build, [find_module(modules, name) for name in IPVS])
    assert errors == {}
    texts = [record.text for record in kernel.log.records()]
    assert "IPVS: ipvs loaded." in texts and texts[-1] == "IPVS: ipvs unloaded."
    assert not Problems.of_kernel(kernel), Problems.of_kernel(kernel)
    assert not kernel.loaded
