"""Kernel threads (Linux's kernel/kthread.c).

`kthread_create_on_node` makes a task that does not run until
`wake_up_process`; its `struct task_struct *` is the task's `current`
value, opaque to modules.  The thread runs `threadfn(data)` in process
context, as a kernel thread of this kernel (it outlives the request that
started it).  `kthread_stop` sets the stop flag, wakes the thread out of a
`schedule_timeout`, waits for it to end and returns its result — or -EINTR
if it never ran, as Linux's does.  `kthread_exit` and
`__module_put_and_kthread_exit` end the thread where they are called: the
latter drops the module reference *and* never returns into the module,
which is what makes it the cure for the put-and-return race.

A thread whose function lies in a module still running when that module is
freed is reported and killed.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from ..errors import KernelError
from ..kernel.api import export
from ..kernel.api.printk import format_guest
from ..kernel.cpu import TaskExit
from ..kernel.printk import KERN_ERR, Problem
from ..kernel.sched import TASK_COMM_LEN

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel
    from ..kernel.module import Module
    from ..kernel.sched import Task

_MASK64 = (1 << 64) - 1


@dataclass(eq=False)
class Kthread:
    task: "Task"
    threadfn: int
    data: int
    module: Any
    should_stop: bool = False
    started: bool = False
    result: int | None = None
    done: trio.Event = field(default_factory=trio.Event)
    scope: Any = None


class Kthreads:
    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.by_task: dict[int, Kthread] = {}          # task_struct address -> thread
        kernel.sanitizer.leftover_checks.append(self._module_freed)

    def create(self, threadfn: int, data: int, comm: str, module: Any) -> Kthread:
        task = self.kernel.machine.sched.new_task(comm, module)
        thread = Kthread(task, threadfn, data, module)
        self.by_task[task.current] = thread
        return thread

    def wake(self, thread: Kthread) -> None:
        if not thread.started:
            thread.started = True
            thread.scope = self.kernel.spawn(self._run, thread, name=f"kthread {thread.task.comm}")
        else:
            self.kernel.machine.sched.wake_up(thread.task)

    async def _run(self, thread: Kthread) -> None:
        kernel = self.kernel
        result = 0
        try:
            result = await kernel.sanitizer.call_pointer(thread.threadfn, thread.data, via="kthread",
                                                         task=thread.task, check=False)
        except TaskExit as exit_:
            result = exit_.code
        except KernelError:
            result = -errno.EFAULT        # it oopsed: logged; the thread is dead
        finally:
            thread.result = result
            self.by_task.pop(thread.task.current, None)
            thread.done.set()

    async def stop(self, thread: Kthread) -> int:
        thread.should_stop = True
        if not thread.started:
            # Linux wakes it and the thread sees the flag before threadfn runs.
            self.by_task.pop(thread.task.current, None)
            self.kernel.machine.sched.exit_task(thread.task)
            return -errno.EINTR
        self.kernel.machine.sched.wake_up(thread.task)
        await thread.done.wait()
        return thread.result if thread.result is not None else 0

    def _module_freed(self, mod: "Module") -> None:
        for thread in list(self.by_task.values()):
            if not self.kernel.sanitizer.belongs_to(mod, thread.threadfn):
                continue
            task = thread.task
            self.kernel.log.emit(KERN_ERR, f"BUG: kthread {task.comm}/{task.pid} still running "
                                           f"{self.kernel.machine.symbol_name(thread.threadfn)} "
                                           f"as module {mod.name} is freed; the thread was killed "
                                           f"(kthread_stop it in the module's exit)", None,
                                 problem=Problem.OOPS)
            self.by_task.pop(task.current, None)
            if thread.scope is not None:
                thread.scope.cancel()
            else:
                self.kernel.machine.sched.exit_task(task)


def kthreads(kernel: "Kernel") -> Kthreads:
    return kernel.subsystem(Kthreads)


def _thread_of(ctx: Any, task_struct: int) -> Kthread | None:
    return kthreads(ctx.kernel).by_task.get(task_struct)


@export("kthread_create_on_node",
        "struct task_struct *kthread_create_on_node(int (*threadfn)(void *data), void *data, int node, "
        "const char namefmt[], ...)", nargs=4, variadic=True)
def kthread_create_on_node(ctx: Any, threadfn: int, data: int, node: int, namefmt: int) -> int:
    comm = format_guest(ctx, namefmt, ctx.va(), room=TASK_COMM_LEN)[0].decode(errors="replace")
    module = ctx.kernel.sanitizer.module_at(threadfn)
    return kthreads(ctx.kernel).create(threadfn, data, comm, module).task.current


@export("wake_up_process", "int wake_up_process(struct task_struct *p)", nargs=1)
def wake_up_process(ctx: Any, task_struct: int) -> int:
    thread = _thread_of(ctx, task_struct)
    if thread is not None:
        kthreads(ctx.kernel).wake(thread)
        return 1
    task = ctx.kernel.machine.sched.task_at(task_struct)
    return int(task is not None and ctx.kernel.machine.sched.wake_up(task))


@export("kthread_stop", "int kthread_stop(struct task_struct *k)", nargs=1)
def kthread_stop(ctx: Any, task_struct: int) -> Any:
    thread = _thread_of(ctx, task_struct)
    if thread is None:
        return -errno.EINTR
    return kthreads(ctx.kernel).stop(thread)


@export("kthread_should_stop", "bool kthread_should_stop(void)", nargs=0)
def kthread_should_stop(ctx: Any) -> int:
    thread = _thread_of(ctx, ctx.task.current)
    return int(thread is not None and thread.should_stop)


@export("kthread_exit", "void kthread_exit(long result)", nargs=1)
def kthread_exit(ctx: Any, result: int) -> None:
    raise TaskExit(_signed(result))


@export("__module_put_and_kthread_exit",
        "void __module_put_and_kthread_exit(struct module *mod, long code)", nargs=2)
def __module_put_and_kthread_exit(ctx: Any, module: int, code: int) -> None:
    target = ctx.kernel.module_by_struct(module) if module else None
    if target is not None:
        owner = ctx.module.code_owner if ctx.module is not None else ctx.kernel.kernel_owner
        ctx.kernel.module_put_from_code(target, owner)
    raise TaskExit(_signed(code))


def _signed(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value
