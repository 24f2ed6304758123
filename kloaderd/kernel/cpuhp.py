"""CPU hotplug states (Linux's kernel/cpu.c): the callbacks a module
installs to set up and tear down per-CPU state as CPUs come and go.

The machine has one CPU, CPU 0, online from boot (its hotplug state is
CPUHP_ONLINE) and never unplugged, so a state's startup callback runs for
it when the state is installed with `invoke`, its teardown when the state
is removed with `invoke`, and nothing else ever calls them.  As in Linux:

* `__cpuhp_setup_state(state, name, invoke, startup, teardown, multi)`
  refuses a state outside (CPUHP_OFFLINE, CPUHP_ONLINE) or without a name
  (-EINVAL) and one already installed (-EBUSY); CPUHP_AP_ONLINE_DYN and
  CPUHP_BP_PREPARE_DYN hand out the first free state of their range, which
  is returned ("No more dynamic states available for CPU hotplug" and
  -ENOSPC when none is left); a startup that fails is rolled back (the
  state uninstalled) and its error returned.
* `__cpuhp_remove_state(state, invoke)` runs the teardown and uninstalls;
  a multi-instance state that still has instances is "Error: Removing
  state N which has instances left." (a WARNING).
* `__cpuhp_state_add_instance(state, node, invoke)` runs the multi startup
  for the instance and links its `hlist_node` on the state's list (in guest
  memory: node->next, node->pprev); -EINVAL for a state that is not
  multi-instance.  `__cpuhp_state_remove_instance` runs the teardown and
  unlinks it (LIST_POISON, as hlist_del leaves it).

Callbacks run on the calling task, for CPU 0.  A state or an instance
still installed when its module is freed is a leaked registration, removed
without calling into the freed code.  `cpus_read_lock` never waits:
nothing takes the hotplug lock for writing.

Where kloader differs: Linux runs callbacks of the AP states on the CPU's
hotplug thread (`cpuhp/0`), and a booted kernel has already taken some
dynamic states with built-in code, so a module's first dynamic state is a
higher number there than here.  The state numbers are each release's
(enum cpuhp_state differs; measured as layouts are, kernel/layouts.py).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

from .api import export
from .callback import call_module_code
from .layouts import constants
from .panic import warn

STATES = constants("enum cpuhp_state", "linux/cpuhotplug.h", "CPUHP_BP_PREPARE_DYN",
                   "CPUHP_BP_PREPARE_DYN_END", "CPUHP_AP_ONLINE_DYN", "CPUHP_AP_ONLINE_DYN_END",
                   "CPUHP_ONLINE")
STRUCTS = (STATES,)
CPUHP_OFFLINE = 0
HLIST_NEXT, HLIST_PPREV = 0, 8          # struct hlist_node, the same in every release
LIST_POISON1, LIST_POISON2 = 0xDEAD000000000100, 0xDEAD000000000122
_NAME_MAX = 256


def _signed(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


@dataclass(eq=False)
class Step:
    """One installed state: cpuhp_step."""
    state: int
    name: str
    startup: int
    teardown: int
    multi: bool
    head: int                                # the instances' hlist_head, kernel memory


class CpuHotplug:
    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        states = kernel.layouts[STATES]
        self.bp_dyn, self.bp_dyn_end = states.CPUHP_BP_PREPARE_DYN, states.CPUHP_BP_PREPARE_DYN_END
        self.ap_dyn, self.ap_dyn_end = states.CPUHP_AP_ONLINE_DYN, states.CPUHP_AP_ONLINE_DYN_END
        self.online = states.CPUHP_ONLINE
        self.steps: dict[int, Step] = {}
        self.registry = kernel.registrations.registry("cpuhp")
        self.instances = kernel.registrations.registry("cpuhp_instance")

    def reserve(self, ctx: Any, state: int) -> int:
        """cpuhp_reserve_state: the first free state of a dynamic range."""
        first, last = (self.ap_dyn, self.ap_dyn_end) if state == self.ap_dyn else (self.bp_dyn, self.bp_dyn_end)
        for candidate in range(first, last + 1):
            if candidate not in self.steps:
                return candidate
        warn(ctx, "No more dynamic states available for CPU hotplug", "kernel/cpu.c:1996",
             "__cpuhp_setup_state")
        return -errno.ENOSPC

    def install(self, ctx: Any, state: int, name: str, startup: int, teardown: int, multi: bool) -> Step:
        head = self.kernel.slab.alloc(8, None, zero=True) if multi else 0
        step = self.steps[state] = Step(state, name, startup, teardown, multi, head)
        self.registry.add(state, f"cpuhp state {state} {name}", owner=ctx.module, address=startup or teardown,
                          points_to=(startup, teardown), data=step, on_leftover=self._left)
        return step

    def uninstall(self, step: Step) -> None:
        self.steps.pop(step.state, None)
        self.registry.remove(step.state)
        if step.head:
            self.kernel.slab.free(step.head, None)

    def _left(self, entry: Any) -> None:
        step: Step = entry.data
        self.steps.pop(step.state, None)
        for instance in [e for e in self.instances.entries() if e.data[0] is step]:
            self.instances.remove(instance.key)
        if step.head:
            self.kernel.slab.free(step.head, None)


def hotplug(ctx: Any) -> CpuHotplug:
    return ctx.kernel.subsystem(CpuHotplug)


async def _call(ctx: Any, fn: int, *args: int) -> int:
    return _signed(await call_module_code(ctx, fn, 0, *args)) if fn else 0


@export("__cpuhp_setup_state", "int __cpuhp_setup_state(enum cpuhp_state state, const char *name, bool invoke, "
        "int (*startup)(unsigned int cpu), int (*teardown)(unsigned int cpu), bool multi_instance)", nargs=6)
def __cpuhp_setup_state(ctx: Any, state: int, name_ptr: int, invoke: int, startup: int, teardown: int,
                        multi: int) -> Any:
    hp = hotplug(ctx)
    state = _signed(state)
    if not CPUHP_OFFLINE < state < hp.online or not name_ptr:
        return -errno.EINVAL
    name = ctx.mem.read_cstr(name_ptr, _NAME_MAX).decode(errors="replace")
    dynamic = state in (hp.ap_dyn, hp.bp_dyn)
    if dynamic:
        state = hp.reserve(ctx, state)
        if state < 0:
            return state
    if state in hp.steps:
        return -errno.EBUSY
    step = hp.install(ctx, state, name, startup, teardown, bool(multi & 0xFF))
    if not invoke & 0xFF or not startup or multi & 0xFF:
        return state if dynamic else 0

    async def starting() -> int:
        ret = await _call(ctx, startup)
        if ret:
            hp.uninstall(step)              # CPU 0 is the only one: nothing to roll back
            return ret
        return state if dynamic else 0
    return starting()


@export("__cpuhp_remove_state", "void __cpuhp_remove_state(enum cpuhp_state state, bool invoke)", nargs=2)
def __cpuhp_remove_state(ctx: Any, state: int, invoke: int) -> Any:
    hp = hotplug(ctx)
    step = hp.steps.get(_signed(state))
    if step is None:
        return 0
    if step.multi:
        if ctx.mem.read_u64(step.head):
            warn(ctx, f"Error: Removing state {step.state} which has instances left.",
                 "kernel/cpu.c:2303", "__cpuhp_remove_state")
        hp.uninstall(step)
        return 0
    if not invoke & 0xFF or not step.teardown:
        hp.uninstall(step)
        return 0

    async def tearing_down() -> int:
        await _call(ctx, step.teardown)
        hp.uninstall(step)
        return 0
    return tearing_down()


@export("__cpuhp_state_add_instance", "int __cpuhp_state_add_instance(enum cpuhp_state state, "
        "struct hlist_node *node, bool invoke)", nargs=3)
def __cpuhp_state_add_instance(ctx: Any, state: int, node: int, invoke: int) -> Any:
    hp = hotplug(ctx)
    step = hp.steps.get(_signed(state))
    if step is None or not step.multi:
        return -errno.EINVAL

    def link() -> int:
        mem = ctx.mem
        first = mem.read_u64(step.head)
        mem.write_u64(node + HLIST_NEXT, first)
        if first:
            mem.write_u64(first + HLIST_PPREV, node + HLIST_NEXT)
        mem.write_u64(step.head, node)
        mem.write_u64(node + HLIST_PPREV, step.head)
        hp.instances.add(node, f"cpuhp instance of state {step.state} {step.name}", owner=ctx.module,
                         address=node, data=(step, node), on_leftover=lambda entry: unlink(ctx, node))
        return 0
    if not invoke & 0xFF or not step.startup:
        return link()

    async def starting() -> int:
        ret = await _call(ctx, step.startup, node)
        return ret if ret else link()
    return starting()


def unlink(ctx: Any, node: int) -> None:
    """hlist_del: the neighbours joined, the node poisoned."""
    mem = ctx.mem
    following, pprev = mem.read_u64(node + HLIST_NEXT), mem.read_u64(node + HLIST_PPREV)
    if pprev and pprev != LIST_POISON2:
        mem.write_u64(pprev, following)
    if following:
        mem.write_u64(following + HLIST_PPREV, pprev)
    mem.write_u64(node + HLIST_NEXT, LIST_POISON1)
    mem.write_u64(node + HLIST_PPREV, LIST_POISON2)


@export("__cpuhp_state_remove_instance", "int __cpuhp_state_remove_instance(enum cpuhp_state state, "
        "struct hlist_node *node, bool invoke)", nargs=3)
def __cpuhp_state_remove_instance(ctx: Any, state: int, node: int, invoke: int) -> Any:
    hp = hotplug(ctx)
    step = hp.steps.get(_signed(state))
    if step is None or not step.multi:
        return -errno.EINVAL

    def done() -> int:
        if hp.instances.remove(node) is not None:
            unlink(ctx, node)
        return 0
    if not invoke & 0xFF or not step.teardown:
        return done()

    async def tearing_down() -> int:
        await _call(ctx, step.teardown, node)
        return done()
    return tearing_down()


@export("cpus_read_lock", "void cpus_read_lock(void)", nargs=0)
def cpus_read_lock(ctx: Any) -> None:
    """Nothing ever takes cpu_hotplug_lock for writing: readers never wait."""


@export("cpus_read_unlock", "void cpus_read_unlock(void)", nargs=0)
def cpus_read_unlock(ctx: Any) -> None:
    """The read side held nothing back."""
