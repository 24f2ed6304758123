"""Random lifecycles against a small model.

Hypothesis draws sequences of loads, session gets and puts, removals
(waiting or not, forced or not, abandoned or not) and session ends; after
every step the kernel must agree with the model and keep the FAQ's
invariants:

* no reference count below zero, and session references exactly as the
  sessions took them;
* a module is GOING only while a remover still waits for its references;
* no module freed while referenced or depended upon, unless forced;
* exit runs exactly once per successful init;
* a failed load leaves nothing behind.
"""

from __future__ import annotations

import errno
from collections import Counter

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings, strategies as st

from kloaderd.errors import KernelError
from kloaderd.kernel.kernel import Kernel
from lifecycle_helpers import ko, new_kernel

MODULES = ("hello", "exporter", "user", "initfail")
IMAGES = {name: ko(name) for name in MODULES}
INIT_LINE = {"hello": "Hello, world", "exporter": "exporter: loaded, exp_value=42"}
EXIT_LINE = {"hello": "Goodbye, world", "exporter": "exporter: unloaded"}
SESSIONS = 2

NAMES = st.sampled_from(("hello", "hello", "exporter", "user"))
SESSION = st.integers(0, SESSIONS - 1)
actions = st.one_of(
    st.tuples(st.just("load"), st.sampled_from(MODULES)),
    st.tuples(st.just("get"), SESSION, NAMES),
    st.tuples(st.just("put"), SESSION, NAMES),
    st.tuples(st.just("remove"), NAMES, st.booleans(), st.booleans()),
    st.tuples(st.just("abandon"), st.integers(0, 3)),
    st.tuples(st.just("end_session"), SESSION),
)


@pytest.mark.slow          # 200 random lifecycles on real kernels
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(actions, min_size=8, max_size=40))
def test_random_lifecycles_keep_the_invariants(steps):
    trio.run(Model(new_kernel()).run, steps)


class Model:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.base_symbols = len(kernel.symbols)
        self.owners = [kernel.new_owner(f"session {i}") for i in range(SESSIONS)]
        self.held: list[Counter[str]] = [Counter() for _ in range(SESSIONS)]
        self.removers: list[tuple[str, trio.CancelScope]] = []   # still running
        self.inits: Counter[str] = Counter()
        self.forced: set[str] = set()

    async def run(self, steps) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            for step in steps:
                before = dict(self.kernel.loaded)
                with trio.fail_after(3):       # a kernel that deadlocks fails, never hangs
                    await getattr(self, step[0])(*step[1:])
                    await trio.testing.wait_all_tasks_blocked()
                self.check(before)
            nursery.cancel_scope.cancel()
        await self.teardown()

    # -- actions --------------------------------------------------------------
    async def load(self, name: str) -> None:
        kernel = self.kernel
        was_loaded = name in kernel.loaded
        going = was_loaded and not kernel.loaded[name].live
        try:
            await kernel.init_module(IMAGES[name])
        except KernelError as e:
            expected = errno.EBUSY if going else errno.EEXIST if was_loaded else \
                errno.ENODEV if name == "initfail" else errno.ENOENT
            assert e.errno == expected, (name, e)
            assert (name in kernel.loaded) == was_loaded   # nothing left behind
        else:
            self.inits[name] += 1
            assert not was_loaded and name != "initfail"

    async def get(self, s: int, name: str) -> None:
        mod = self.kernel.find_module(name)
        try:
            self.kernel.try_module_get(name, self.owners[s])
        except KernelError as e:
            assert e.errno == (errno.ENOENT if mod is None else errno.EBUSY)
            assert mod is None or not mod.live
        else:
            self.held[s][name] += 1
            assert mod is not None and mod.live

    async def put(self, s: int, name: str) -> None:
        try:
            self.kernel.module_put(name, self.owners[s])
        except KernelError as e:
            assert e.errno in (errno.ENOENT, errno.EINVAL)
            assert self.held[s][name] == 0 or name not in self.kernel.loaded
        else:
            assert self.held[s][name] > 0
            self.held[s][name] -= 1

    async def remove(self, name: str, wait: bool, force: bool) -> None:
        if force:
            self.forced.add(name)
        self.nursery.start_soon(self._remover, name, wait, force)

    async def _remover(self, name: str, wait: bool, force: bool) -> None:
        entry = (name, trio.CancelScope())
        self.removers.append(entry)
        try:
            with entry[1]:
                await self.kernel.delete_module(name, wait=wait, force=force)
        except KernelError:
            pass
        finally:
            self.removers.remove(entry)

    async def abandon(self, i: int) -> None:
        if self.removers:
            self.removers[i % len(self.removers)][1].cancel()

    async def end_session(self, s: int) -> None:
        self.kernel.release_owner(self.owners[s])
        self.held[s].clear()

    # -- invariants -------------------------------------------------------------
    def check(self, before: dict) -> None:
        kernel, held = self.kernel, self.held
        for name, mod in kernel.loaded.items():
            assert all(count > 0 for count in mod.refs.values())
            sessions = {o.label: c for o, c in mod.refs.items() if o in self.owners}
            assert sessions == {self.owners[s].label: held[s][name]
                                for s in range(SESSIONS) if held[s][name]}
            expected_holders = ["user"] if name == "exporter" and "user" in kernel.loaded else []
            assert [h.name for h in mod.holders] == expected_holders
            if mod.state.value == "going":
                assert mod.refcount > 0
                assert any(n == name for n, _ in self.removers), name
        for name, mod in before.items():
            if name not in kernel.loaded and name not in self.forced:
                assert sum(h[name] for h in held) == 0, name   # freed while referenced
                assert not mod.holders
        for name in MODULES:
            if name not in kernel.loaded:
                for h in held:
                    h.pop(name, None)
        self.forced.intersection_update(kernel.loaded)
        exported = sum(len(m.exports) for m in kernel.loaded.values())
        assert len(kernel.symbols) == self.base_symbols + exported
        log = [r.text for r in kernel.log.records()]
        for name, line in EXIT_LINE.items():
            assert log.count(INIT_LINE[name]) == self.inits[name]
            assert log.count(line) == self.inits[name] - (name in kernel.loaded)

    async def teardown(self) -> None:
        """However it ended, everything comes down and every exit ran once."""
        kernel = self.kernel
        for owner in self.owners:
            kernel.release_owner(owner)
        with trio.fail_after(10):
            await kernel.shutdown()
        assert kernel.modules() == []
        assert kernel.module_memory == 0
        log = [r.text for r in kernel.log.records()]
        for name, line in EXIT_LINE.items():
            assert log.count(line) == self.inits[name]
