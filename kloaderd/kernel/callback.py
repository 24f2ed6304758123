"""Calling module code from a kernel function: a registration's callback
(`cra_destroy`, a notifier, a pernet init) that Linux calls on the caller's
own stack.

`call_module_code(ctx, fn, *args)` returns what a kernel function
implementation returns when it has to wait: a coroutine.  The calling
task's CPU state is saved, the callback runs to completion as a task of its
own (same command name, the callback's module as its module, so what it
allocates is accounted to that module), and its %rax becomes the kernel
function's result.  An oops in the callback is the calling task's oops, as
in Linux where both run on one stack.

Where kloader differs: the callback runs on its own stack and pid, so a
callback that compares `current` with its caller's sees a different task.
"""

from __future__ import annotations

from typing import Any, Awaitable


def call_module_code(ctx: Any, fn: int, *args: int) -> Any:
    module = ctx.kernel.registrations.module_at(fn) or ctx.module

    async def calling() -> int:
        return await ctx.machine.call(fn, *args, module=module, name=ctx.task.comm)
    return calling()


async def finished(result: Any) -> Any:
    """What a kernel function returned, awaited when it had to sleep (a
    coroutine): for kernel code that calls another kernel function."""
    return result if isinstance(result, int) or result is None else await result


def waiting(pending: Awaitable[Any] | None) -> Any:
    """What a kernel function returns for work that may have to wait
    (a drain, a release in module code): 0 when there is none, else a
    coroutine that awaits it and returns 0."""
    if pending is None:
        return 0

    async def wait() -> int:
        await pending
        return 0
    return wait()
