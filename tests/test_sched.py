"""Tasks sharing the one CPU: sleeping, mutexes, completions, spinlocks."""

from __future__ import annotations

import pytest
import trio

from guestcode import Kernel, build
from kloaderd.config import HZ
from kloaderd.kernel.cpu import Machine
from kloaderd.kernel.oops import Oops
from kloaderd.kernel.sched import WaitQueue

SYNC = r"""
struct mutex { unsigned long owner; long pad[3]; };
struct completion { unsigned int done; int pad[7]; };
typedef struct { unsigned int lock; } raw_spinlock_t;

void msleep(unsigned int);
void schedule(void);
long schedule_timeout(long);
void __udelay(unsigned long);
long long ktime_get(void);
void mutex_lock(struct mutex *);
int mutex_lock_interruptible(struct mutex *);
int mutex_lock_killable(struct mutex *);
int mutex_trylock(struct mutex *);
void mutex_unlock(struct mutex *);
int mutex_is_locked(struct mutex *);
void __mutex_init(struct mutex *, const char *, void *);
void complete(struct completion *);
void complete_all(struct completion *);
void wait_for_completion(struct completion *);
unsigned long wait_for_completion_timeout(struct completion *, unsigned long);
int wait_for_completion_interruptible(struct completion *);
int try_wait_for_completion(struct completion *);
int completion_done(struct completion *);
void _raw_spin_lock(raw_spinlock_t *);
void _raw_spin_unlock(raw_spinlock_t *);
unsigned long _raw_spin_lock_irqsave(raw_spinlock_t *);
void _raw_spin_unlock_irqrestore(raw_spinlock_t *, unsigned long);

struct mutex m;
struct completion done;
raw_spinlock_t sl;
long counter;
volatile long trace[16];
volatile long ntrace;

static void mark(long v) { trace[ntrace++] = v; }

long nap(long id, long ms) { msleep(ms); mark(id); return id; }
long quick(long id) { mark(id); return id; }
/* udelay under a spinlock, as drivers do: atomic, so the end of a slice cannot
   preempt it between the spin and its marks. */
long spin_delay(long id, long us)
{
    _raw_spin_lock(&sl); mark(id); __udelay(us); mark(id + 1); _raw_spin_unlock(&sl);
    return id;
}
/* The spin lets the other task start and queue for the CPU before schedule(). */
long yielder(long id) { mark(id); __udelay(2000); schedule(); mark(id + 1); return 0; }

long locked_increment(long ms)
{
    mutex_lock(&m);
    long v = counter;
    msleep(ms);
    counter = v + 1;
    mutex_unlock(&m);
    return v;
}
long is_locked(void) { return mutex_is_locked(&m); }
long trylock(void) { return mutex_trylock(&m); }
long unlock(void) { mutex_unlock(&m); return 0; }
long lock_interruptible(void) { return mutex_lock_interruptible(&m); }
long killable_increment(void)
{
    if (mutex_lock_killable(&m))
        return -1;
    long v = counter;
    counter = v + 1;
    mutex_unlock(&m);
    return v;
}
long init_mutex(void) { __mutex_init(&m, "m", 0); return m.owner; }

long waiter(long id) { wait_for_completion(&done); mark(id); return id; }
long waiter_interruptible(void) { return wait_for_completion_interruptible(&done); }
unsigned long timed_waiter(unsigned long timeout) { return wait_for_completion_timeout(&done, timeout); }
long completer(void) { complete(&done); return 0; }
long completer_all(void) { complete_all(&done); return 0; }
long try_wait(void) { return try_wait_for_completion(&done); }
long is_done(void) { return completion_done(&done); }

long sleep_atomic(void) { _raw_spin_lock(&sl); msleep(1); _raw_spin_unlock(&sl); return 0; }
long irqsave_balanced(void)
{
    unsigned long flags = _raw_spin_lock_irqsave(&sl);
    long held = sl.lock;
    _raw_spin_unlock_irqrestore(&sl, flags);
    msleep(1);
    return held * 2 + sl.lock;
}
long sleep_ticks(long ticks) { return schedule_timeout(ticks); }
long long elapsed_ns(long ms) { long long t = ktime_get(); msleep(ms); return ktime_get() - t; }
"""


@pytest.fixture
def kernel() -> Kernel:
    return Kernel()


@pytest.fixture
def machine(kernel) -> Machine:
    return Machine(kernel)


@pytest.fixture
def g(machine):
    return build(machine, SYNC)


def _trace(machine, g) -> list[int]:
    n = machine.mem.read_u64(g["ntrace"])
    return [machine.mem.read_u64(g["trace"] + 8 * i) for i in range(n)]


async def _call_all(machine, *calls):
    """Start each (addr, *args) as its own task, in order; wait for all."""
    results: dict[int, int] = {}

    async def one(i, addr, *args):
        results[i] = await machine.call(addr, *args)

    async with trio.open_nursery() as nursery:
        for i, (addr, *args) in enumerate(calls):
            nursery.start_soon(one, i, addr, *args)
            await trio.sleep(0)          # keep the start order
    return [results[i] for i in range(len(calls))]


@pytest.mark.trio
async def test_a_sleeping_task_lets_another_run(machine, g):
    assert await _call_all(machine, (g["nap"], 1, 30), (g["quick"], 2)) == [1, 2]
    assert _trace(machine, g) == [2, 1]


@pytest.mark.trio
async def test_the_event_loop_answers_while_a_task_sleeps(machine, g):
    """Once the task sleeps in msleep, the loop runs other tasks (this one);
    the nap is an hour long, so a loaded host cannot end it first, and the
    test cancels it (it once was 50 ms against the test's 10 ms sleep, and
    failed under load)."""
    import trio.testing

    order = []

    async def sleeper():
        await machine.call(g["nap"], 1, 3_600_000)
        order.append("slept")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await trio.testing.wait_all_tasks_blocked()
        order.append("answered")
        nursery.cancel_scope.cancel()
    assert order == ["answered"]


@pytest.mark.trio
async def test_busy_waiting_keeps_the_cpu(machine, g):
    """A task spinning in udelay holds the CPU: one that wakes while it
    spins runs only after it.  The second task starts once the first is
    seen spinning, so the start order is not left to trio's scheduler."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(machine.call, g["spin_delay"], 10, 20000)
        while machine.mem.read_u64(g["ntrace"]) == 0:
            await trio.sleep(0)
        nursery.start_soon(machine.call, g["quick"], 2)
    assert _trace(machine, g) == [10, 11, 2]


@pytest.mark.trio
async def test_schedule_yields_to_waiting_tasks(machine, g):
    await _call_all(machine, (g["yielder"], 10), (g["quick"], 2))
    assert _trace(machine, g) == [10, 2, 11]


@pytest.mark.trio
async def test_schedule_timeout_and_ktime(machine, g):
    assert await machine.call(g["sleep_ticks"], 2) == 0
    assert await machine.call(g["elapsed_ns"], 10) >= 10_000_000


@pytest.mark.trio
async def test_negative_schedule_timeout_is_refused(machine, g, kernel):
    assert await machine.call(g["sleep_ticks"], -1) == 0
    assert "schedule_timeout: wrong timeout value ffffffffffffffff" in kernel.log.text()


@pytest.mark.trio
async def test_contended_mutex_serialises_two_tasks(machine, g):
    first, second = await _call_all(machine, (g["locked_increment"], 30), (g["locked_increment"], 0))
    assert (first, second) == (0, 1)
    assert machine.mem.read_u64(g["counter"]) == 2
    assert await machine.call(g["is_locked"]) == 0


@pytest.mark.trio
async def test_mutex_lock_killable_waits_for_the_holder_and_returns_0(machine, g):
    """loop.ko's lock: no fatal signal ever comes, so it takes the mutex."""
    first, second = await _call_all(machine, (g["locked_increment"], 30), (g["killable_increment"],))
    assert (first, second) == (0, 1)
    assert await machine.call(g["is_locked"]) == 0


@pytest.mark.trio
async def test_mutex_owner_trylock_and_init(machine, g):
    assert await machine.call(g["trylock"]) == 1
    assert machine.mem.read_u64(g["m"]) != 0
    assert await machine.call(g["is_locked"]) == 1
    assert await machine.call(g["trylock"]) == 0
    assert await machine.call(g["init_mutex"]) == 0
    assert await machine.call(g["lock_interruptible"]) == 0


@pytest.mark.trio
async def test_unlocking_a_mutex_you_do_not_own_warns(machine, g, kernel):
    assert await machine.call(g["trylock"]) == 1          # owned by a task that has exited
    await machine.call(g["unlock"])
    text = kernel.log.text()
    assert "------------[ cut here ]------------" in text
    assert "DEBUG_LOCKS_WARN_ON(__owner_task(owner) != current)" in text
    assert "WARNING: CPU: 0 PID: " in text
    assert "W" in kernel.taints
    assert await machine.call(g["is_locked"]) == 0


@pytest.mark.trio
async def test_complete_wakes_one_waiter_at_a_time(machine, g):
    async with trio.open_nursery() as nursery:
        nursery.start_soon(machine.call, g["waiter"], 1)
        nursery.start_soon(machine.call, g["waiter"], 2)
        await trio.sleep(0.01)
        assert _trace(machine, g) == []
        await machine.call(g["completer"])
        while not _trace(machine, g):
            await trio.sleep(0.001)
        await trio.sleep(0.01)             # room for a wrongly woken second waiter
        assert len(_trace(machine, g)) == 1
        await machine.call(g["completer"])
    assert sorted(_trace(machine, g)) == [1, 2]
    assert await machine.call(g["is_done"]) == 0


@pytest.mark.trio
async def test_complete_all_wakes_everyone_and_stays_done(machine, g):
    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(machine.call, g["waiter"], i)
        await trio.sleep(0.01)
        await machine.call(g["completer_all"])
    assert sorted(_trace(machine, g)) == [0, 1, 2]
    assert await machine.call(g["waiter"], 9) == 9          # does not block
    assert await machine.call(g["is_done"]) == 1
    assert await machine.call(g["waiter_interruptible"]) == 0


@pytest.mark.trio
async def test_completion_done_before_wait_and_try_wait(machine, g):
    assert await machine.call(g["try_wait"]) == 0
    await machine.call(g["completer"])
    assert await machine.call(g["is_done"]) == 1
    assert await machine.call(g["try_wait"]) == 1
    assert await machine.call(g["try_wait"]) == 0
    await machine.call(g["completer"])
    assert await machine.call(g["timed_waiter"], 100) == 100   # already done: the whole timeout


@pytest.mark.trio
async def test_wait_for_completion_timeout(machine, g):
    assert await machine.call(g["timed_waiter"], 2) == 0      # nobody completes: timed out
    async with trio.open_nursery() as nursery:
        results = []

        async def wait():
            results.append(await machine.call(g["timed_waiter"], 10 * HZ))
        nursery.start_soon(wait)
        await trio.sleep(0.01)
        await machine.call(g["completer"])
    assert 1 <= results[0] <= 10 * HZ


@pytest.mark.trio
async def test_sleeping_with_a_spinlock_held_is_a_bug(machine, g, kernel):
    await machine.call(g["sleep_atomic"], name="insmod")
    lines = [text for _, text, _ in kernel.log.records]
    assert len(lines) == 1
    assert lines[0].startswith("BUG: scheduling while atomic: insmod/")
    assert lines[0].endswith("/0x00000002")
    assert "W" in kernel.taints


@pytest.mark.trio
async def test_balanced_spinlocks_allow_sleeping(machine, g, kernel):
    assert await machine.call(g["irqsave_balanced"]) == 2      # held while locked, free after
    assert kernel.log.records == []


@pytest.mark.trio
async def test_cancelling_a_blocked_task_leaves_the_machine_usable(machine, g):
    assert await machine.call(g["trylock"]) == 1
    with trio.move_on_after(0.02):
        await machine.call(g["locked_increment"], 0)
    assert machine.sched.tasks == {}
    assert machine.sched.waitqueue.waiters(g["m"]) == 0
    assert await machine.call(g["quick"], 5) == 5


@pytest.mark.trio
async def test_a_wakeup_is_passed_on_when_its_waiter_was_cancelled():
    queue = WaitQueue()
    results = []

    async def wait(label, scope):
        with scope:
            results.append((label, await queue.wait(7, None)))

    first, second = trio.CancelScope(), trio.CancelScope()
    with trio.move_on_after(5):     # a lost wakeup would leave "second" asleep for good
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait, "first", first)
            await trio.sleep(0.001)
            nursery.start_soon(wait, "second", second)
            await trio.sleep(0.001)
            assert queue.waiters(7) == 2
            first.cancel()              # first dies before it runs again...
            queue.wake(7, 1)            # ...holding the only wakeup
    assert results == [("second", True)]
    assert queue.waiters(7) == 0


@pytest.mark.trio
async def test_a_bad_lock_pointer_oopses_the_caller(kernel):
    machine = Machine(kernel)
    g = build(machine, r"""
struct mutex; struct completion;
void mutex_lock(struct mutex *);
void wait_for_completion(struct completion *);
long lock_null(void) { mutex_lock((struct mutex *)0); return 1; }
long wait_bad(void) { wait_for_completion((struct completion *)0xffff888800000000UL); return 1; }
""")
    for entry, address in ((g["lock_null"], 0), (g["wait_bad"], 0xFFFF888800000000)):
        with pytest.raises(Oops) as info:
            await machine.call(entry)
        assert info.value.address == address
        assert entry < info.value.rip < entry + 0x20          # at the caller, after its call
    assert machine.sched.tasks == {}


@pytest.mark.trio
async def test_a_fault_while_blocked_oopses_the_sleeper(machine):
    heap = 0xFFFF888100000000
    machine.mem.map(heap, 4096)
    g = build(machine, r"""
struct completion;
void wait_for_completion(struct completion *);
long wait_on(struct completion *x) { wait_for_completion(x); return 1; }
""")
    async with trio.open_nursery() as nursery:
        outcome = []

        async def sleeper():
            with pytest.raises(Oops) as info:
                await machine.call(g["wait_on"], heap + 8)
            outcome.append(info.value)
        nursery.start_soon(sleeper)
        while not machine.sched.waitqueue.waiters(heap + 8):
            await trio.sleep(0.001)
        machine.mem.unmap(heap, 4096)             # the completion's memory goes away
        machine.sched.waitqueue.wake(heap + 8)
    assert outcome[0].kind == "page-fault" and outcome[0].address == heap + 8
    assert g["wait_on"] < outcome[0].rip < g["wait_on"] + 0x20


def test_an_atomic_task_keeps_the_cpu_at_the_end_of_its_slice():
    """A softirq (or a spinlock holder) is not preempted by a task waiting
    for the CPU, as in Linux: a timer's callback runs to its end before the
    module exit it interrupted goes on to free the module.  A task in
    process context hands the CPU over at the end of its slice."""
    import trio.testing

    from kloaderd.irq.softirq import SOFTIRQ_OFFSET

    sched = Machine(Kernel()).sched
    running, waiting = sched.new_task("ksoftirqd/0"), sched.new_task("rmmod")

    async def main() -> None:
        await sched.acquire(running)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sched.acquire, waiting)
            await trio.testing.wait_all_tasks_blocked()
            running.preempt_count = SOFTIRQ_OFFSET
            nursery.start_soon(sched.yield_cpu, running)        # the end of a slice, atomic
            await trio.testing.wait_all_tasks_blocked()
            assert running.holds_cpu and not waiting.holds_cpu and sched.cpu.waiting == 1
            running.preempt_count = 0
            nursery.start_soon(sched.yield_cpu, running)        # the end of a slice, preemptible
            await trio.testing.wait_all_tasks_blocked()
            assert waiting.holds_cpu and not running.holds_cpu
            sched.release(waiting)
        assert running.holds_cpu

    trio.run(main)
