"""CONFIG_PREEMPT_DYNAMIC's static calls as a real module calls them:
`cond_resched()` and `might_resched()` through `__SCT__cond_resched` and
`__SCT__might_resched`, `preempt_enable()`'s slow path through
`__SCT__preempt_schedule`, each doing what the preemption model the kernel
boots in (its .config's default) makes of it."""

from __future__ import annotations

import pytest
import trio

from guestcode import Kernel, build
from kloaderd.kernel.cpu import Machine

CODE = r"""
typedef struct { unsigned int lock; } raw_spinlock_t;
int __SCT__cond_resched(void);
int __SCT__might_resched(void);
void __SCT__preempt_schedule(void);
void __udelay(unsigned long);
void _raw_spin_lock(raw_spinlock_t *);
void _raw_spin_unlock(raw_spinlock_t *);

raw_spinlock_t sl;
volatile long trace[16];
volatile long ntrace;
static void mark(long v) { trace[ntrace++] = v; }

long quick(long id) { mark(id); return id; }
/* The spin lets the other task start and queue for the CPU first. */
long might(long id) { mark(id); __udelay(2000); int r = __SCT__might_resched(); mark(id + 1); return r; }
long cond(long id) { mark(id); __udelay(2000); int r = __SCT__cond_resched(); mark(id + 1); return r; }
long atomic_cond(long id)
{
    mark(id); __udelay(2000);
    _raw_spin_lock(&sl);
    int r = __SCT__cond_resched() + __SCT__might_resched();
    _raw_spin_unlock(&sl);
    mark(id + 1);
    return r;
}
/* preempt_enable(): the thunk is called from asm that clobbers nothing. */
long preempt(long id)
{
    long kept = 0x1234567890;
    mark(id); __udelay(2000);
    asm volatile("call __SCT__preempt_schedule" : "+a"(kept) : : "memory");
    mark(id + 1);
    return kept;
}
"""


class Profile:
    """The part of a kernel profile the model is read from: its .config."""

    def __init__(self, *options: str) -> None:
        self.options = set(options)

    def enabled(self, option: str) -> bool:
        return option in self.options


@pytest.fixture(params=["none", "voluntary", "full"])
def model(request) -> str:
    return request.param


@pytest.fixture
def kernel(model) -> Kernel:
    kernel = Kernel()
    kernel.profile = Profile({"none": "PREEMPT_NONE", "voluntary": "PREEMPT_VOLUNTARY",
                              "full": "PREEMPT"}[model])
    return kernel


@pytest.fixture
def machine(kernel) -> Machine:
    return Machine(kernel)


@pytest.fixture
def g(machine):
    return build(machine, CODE)


async def _run(machine, g, first: str) -> tuple[int, list[int]]:
    """`first` (a function of CODE) with another task queued behind it."""
    results: dict[str, int] = {}

    async def one(name, *args):
        results[name] = await machine.call(g[name], *args)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, first, 10)
        await trio.sleep(0)
        nursery.start_soon(one, "quick", 2)
    n = machine.mem.read_u64(g["ntrace"])
    return results[first], [machine.mem.read_u64(g["trace"] + 8 * i) for i in range(n)]


YIELDS = {("cond", "none"), ("cond", "voluntary"), ("might", "voluntary"), ("preempt", "full")}


@pytest.mark.trio
@pytest.mark.parametrize("call", ["cond", "might"])
async def test_a_resched_point_yields_to_a_waiting_task_where_the_model_says(machine, g, model, call):
    result, trace = await _run(machine, g, call)
    if (call, model) in YIELDS:
        assert (result, trace) == (1, [10, 2, 11])          # __cond_resched: rescheduled
    else:
        assert (result, trace) == (0, [10, 11, 2])          # return 0: the trampoline's RET0


@pytest.mark.trio
async def test_nobody_waiting_means_no_reschedule(machine, g):
    assert await machine.call(g["cond"], 10) == 0
    assert await machine.call(g["might"], 20) == 0


@pytest.mark.trio
async def test_atomic_context_never_reschedules(machine, g, kernel):
    result, trace = await _run(machine, g, "atomic_cond")
    assert (result, trace) == (0, [10, 11, 2])
    assert "scheduling while atomic" not in kernel.log.text()


@pytest.mark.trio
async def test_preempt_schedule_keeps_every_register(machine, g, model):
    result, trace = await _run(machine, g, "preempt")
    assert result == 0x1234567890
    assert trace == ([10, 2, 11] if ("preempt", model) in YIELDS else [10, 11, 2])
