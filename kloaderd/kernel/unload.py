"""delete_module(): stop a module, wait for its references to drain, run
its exit, free it.

The FAQ's removal: the stop is atomic — clearing "live" (state GOING) is the
moment after which no `try_module_get` succeeds — and with `--wait` every
`module_put` wakes the remover to read the count again.  Until exit starts
the stop is reversible: a waiter who gives up (timeout, cancel, disconnect)
puts the module back to LIVE, as if nothing had happened.
"""

from __future__ import annotations

import errno
import math
from typing import TYPE_CHECKING

import trio

from ..errors import KernelError
from .module import Module, ModuleState
from .printk import KERN_ERR

if TYPE_CHECKING:
    from .internal import KernelServices


def _busy(name: str, why: str) -> KernelError:
    return KernelError(errno.EBUSY, f"could not remove module {name}: "
                                    f"Device or resource busy ({why})")


async def delete_module(kernel: "KernelServices", name: str, *, wait: bool = False,
                        force: bool = False, timeout: float | None = None) -> None:
    mod = kernel.find_module(name)
    if mod is None:
        raise KernelError(errno.ENOENT, f"Module {name} is not currently loaded")
    if mod.holders:
        users = " ".join(h.name for h in mod.holders)
        raise KernelError(errno.EWOULDBLOCK, f"Module {name} is in use by: {users}")
    if mod.state is not ModuleState.LIVE:
        raise _busy(name, f"it is {mod.state.value}")
    if mod.has_init and not mod.has_exit:
        if not force:
            raise _busy(name, "it has an init function but no exit function, "
                              "so it can only be removed by force")
        kernel.add_taint("R")
    deadline = math.inf if timeout is None else trio.current_time() + timeout
    await try_stop_module(kernel, mod, wait=wait, force=force, timeout=timeout)
    await finish_removal(kernel, mod, deadline=deadline)


async def try_stop_module(kernel: "KernelServices", mod: Module, *, wait: bool, force: bool,
                          timeout: float | None) -> None:
    """Clear "live"; with `wait`, block until the count drains."""
    if mod.refcount and force:
        kernel.add_taint("R")
        kernel.set_state(mod, ModuleState.GOING)
        return
    if mod.refcount and not wait:
        raise KernelError(errno.EWOULDBLOCK, f"Module {mod.name} is in use")
    kernel.set_state(mod, ModuleState.GOING)
    if not mod.refcount:
        return                  # the usual case: nothing to wait for, no cancel scope
    stopped = False
    try:
        with trio.move_on_after(float("inf") if timeout is None else timeout):
            while mod.refcount:
                await kernel.wait_for_change()
            stopped = True
    finally:
        if not stopped:
            # Given up (timeout, cancel, disconnect): the module lives on.
            kernel.set_state(mod, ModuleState.LIVE)
    if not stopped:
        raise KernelError(errno.ETIMEDOUT, f"Module {mod.name} is still in use after "
                                           f"{timeout:g} s; it stays loaded")


async def finish_removal(kernel: "KernelServices", mod: Module, *, deadline: float = math.inf,
                         abandon_at: float = math.inf) -> None:
    """Run exit exactly once, then free.

    The exit runs as a kernel thread of its own (a trio system task) and
    the caller waits for it until `deadline`: a caller who stops waiting
    (its timeout: ETIMEDOUT; a cancel or a disconnect) leaves the module
    GOING until its exit returns, as a Linux rmmod asleep in D state leaves
    it, and nothing it does can cancel the exit.  Only shutdown interrupts
    an exit, at `abandon_at`, and says so in the log.
    """
    linked = mod.linked
    if linked is None or linked.exit_addr is None:
        kernel.free_module(mod)
        return
    done = trio.Event()
    scope = kernel.exit_scopes[mod.name] = trio.CancelScope()
    trio.lowlevel.spawn_system_task(_run_exit, kernel, mod, linked.exit_addr, scope, done,
                                    name=f"exit of {mod.name}")
    until = min(deadline, abandon_at)
    if until == math.inf:
        await done.wait()                   # the usual rmmod: no cancel scope to make
        return
    with trio.move_on_at(until):
        await done.wait()
    if done.is_set():
        return
    if abandon_at <= deadline:
        await _abandon(kernel, mod.name)
        return
    raise KernelError(errno.ETIMEDOUT, f"Module {mod.name}'s exit is still running; it stays going "
                                       "and is freed when its exit returns")


async def _run_exit(kernel: "KernelServices", mod: Module, exit_addr: int, scope: trio.CancelScope,
                    done: trio.Event) -> None:
    """The exit's own task: whatever happens, the module is freed after it."""
    try:
        with scope:
            try:
                await kernel.call_module(mod, exit_addr, "exit")
            except KernelError:
                pass        # an oops in exit was logged; the module goes anyway
            except Exception as exc:    # a bug in kloader: say so, but never strand the module GOING
                kernel.log.emit(KERN_ERR, f"kloader: internal error running {mod.name}'s exit: "
                                          f"{type(exc).__name__}: {exc}")
    finally:
        kernel.exit_scopes.pop(mod.name, None)
        try:
            kernel.free_module(mod)
        except Exception as exc:        # never crash the daemon from a kernel thread
            kernel.log.emit(KERN_ERR, f"kloader: internal error freeing {mod.name}: "
                                      f"{type(exc).__name__}: {exc}")
        done.set()


async def _abandon(kernel: "KernelServices", name: str) -> None:
    """Interrupt an exit still running (shutdown's grace is over) and wait
    for its task to free the module: an exit that sleeps stops at once, one
    that spins at the end of its time slice."""
    scope = kernel.exit_scopes.get(name)
    if scope is None:
        return
    kernel.log.emit(KERN_ERR, f"kloader: shutdown: the exit of module {name} was still running "
                              f"after {kernel.options.exit_grace:g} s: interrupted, module freed")
    scope.cancel()
    while name in kernel.exit_scopes:
        await kernel.wait_for_change()


async def drain_exits(kernel: "KernelServices", deadline: float) -> None:
    """Let the exits already running finish until `deadline`, then interrupt the rest."""
    with trio.move_on_at(deadline):
        while kernel.exit_scopes:
            await kernel.wait_for_change()
    for name in list(kernel.exit_scopes):
        await _abandon(kernel, name)
