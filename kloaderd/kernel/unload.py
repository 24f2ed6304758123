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
from typing import TYPE_CHECKING

import trio

from ..errors import KernelError
from .module import Module, ModuleState
from .printk import KERN_ERR

if TYPE_CHECKING:
    from .kernel import Kernel


def _busy(name: str, why: str) -> KernelError:
    return KernelError(errno.EBUSY, f"could not remove module {name}: "
                                    f"Device or resource busy ({why})")


async def delete_module(kernel: "Kernel", name: str, *, wait: bool = False,
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
    await try_stop_module(kernel, mod, wait=wait, force=force, timeout=timeout)
    await finish_removal(kernel, mod)


async def try_stop_module(kernel: "Kernel", mod: Module, *, wait: bool, force: bool,
                          timeout: float | None) -> None:
    """Clear "live"; with `wait`, block until the count drains."""
    if mod.refcount and force:
        kernel.add_taint("R")
        kernel.set_state(mod, ModuleState.GOING)
        return
    if mod.refcount and not wait:
        raise KernelError(errno.EWOULDBLOCK, f"Module {mod.name} is in use")
    kernel.set_state(mod, ModuleState.GOING)
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


async def finish_removal(kernel: "Kernel", mod: Module) -> None:
    """Run exit exactly once, then free.  Nothing may cancel this half."""
    with trio.CancelScope(shield=True):
        linked = mod.linked
        if linked is not None and linked.exit_addr is not None:
            try:
                await kernel.call_module(mod, linked.exit_addr, "exit")
            except KernelError:
                pass        # an oops in exit was logged; the module goes anyway
            except Exception as exc:    # a bug in kloader: say so, but never strand the module GOING
                kernel.log.emit(KERN_ERR, f"kloader: internal error running {mod.name}'s exit: "
                                          f"{type(exc).__name__}: {exc}")
        kernel.free_module(mod)
