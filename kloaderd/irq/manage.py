"""Interrupt lines and their handlers (Linux's kernel/irq/manage.c, irqdesc.c,
handle.c, spurious.c): `request_threaded_irq`, `free_irq`, `disable_irq`,
`enable_irq`, `synchronize_irq`, and delivering an interrupt.

kloader's machine has the 16 legacy ISA lines x86 sets up at boot
(`NR_IRQS_LEGACY`); line 0 is the kernel's timer (`IRQF_TIMER`, not shared),
the others have no handler until a module requests one.  A number past them
has no descriptor: requesting it is -EINVAL, as on a machine without that
interrupt.  An interrupt is delivered when a client asks (`raise_irq`), as a
device would raise it:

* each handler of the line runs in hardirq context (`preempt_count`
  `HARDIRQ_OFFSET`, on the interrupted CPU, named `swapper/0`): sleeping
  there is "BUG: scheduling while atomic";
* a handler returning `IRQ_WAKE_THREAD` wakes its action's irq thread
  (`irq/N-name`), which runs `thread_fn(irq, dev_id)` in process context;
  with `IRQF_ONESHOT` the line stays masked until the thread is done;
* tasklets the handler scheduled run as the interrupt ends (`irq_exit`
  runs the pending softirqs), in softirq context.

A disabled (or oneshot-masked) line remembers the interrupt (`IRQS_PENDING`)
and delivers it when enabled again, as `check_irq_resend` does.  A line
nobody handles is counted as `note_interrupt` counts it: 99,900 unhandled of
100,000 is "irq N: nobody cared" and the line is disabled.

Every action is a registration of the requesting module ("irq"): an
interrupt still requested when its module is freed is reported as a leaked
registration, taken off its line and its thread stopped.

Where kloader differs: one CPU; an irq thread is one kernel thread of
kloader per action, and each run of `thread_fn` is a task named after it
(with a pid of its own); an oops in a handler is logged and fails the
`raise_irq` that delivered it with EFAULT (Linux panics: "Fatal exception in
interrupt"), and the line goes on working.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from ..errors import KernelError
from ..kernel.api import export
from ..kernel.panic import warn
from ..kernel.printk import KERN_EMERG, KERN_ERR, KERN_WARNING
from ..kernel.sched import TASK_COMM_LEN
from .softirq import tasklets

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel
    from ..kernel.module import Module

NR_IRQS_LEGACY = 16
IRQ_NOTCONNECTED = 1 << 31
HARDIRQ_OFFSET = 1 << 16          # preempt_count in a hardirq handler

# irqreturn_t
IRQ_NONE, IRQ_HANDLED, IRQ_WAKE_THREAD = 0, 1, 2
IRQ_RETURN_NAMES = {IRQ_NONE: "IRQ_NONE", IRQ_HANDLED: "IRQ_HANDLED", IRQ_WAKE_THREAD: "IRQ_WAKE_THREAD"}

# request flags (include/linux/interrupt.h)
IRQF_TRIGGER_MASK = 0x0F
IRQF_SHARED = 0x80
IRQF_PROBE_SHARED = 0x100
IRQF_ONESHOT = 0x2000
IRQF_NO_AUTOEN = 0x80000
IRQF_TIMER_FLAGS = 0x15A00        # what x86 requests the timer with: "00015a00 (timer)"

# note_interrupt's thresholds (kernel/irq/spurious.c)
SPURIOUS_WINDOW = 100_000
SPURIOUS_LIMIT = 99_900
_NAME_MAX = 64


@dataclass(eq=False)
class IrqThread:
    """An action's irq thread: woken by IRQ_WAKE_THREAD, runs thread_fn."""
    comm: str
    wanted: bool = False               # IRQTF_RUNTHREAD
    running: bool = False
    stop: bool = False                 # kthread_stop: end after the run in progress
    wake: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope | None = None
    runs: int = 0


@dataclass(eq=False)
class Action:
    """A struct irqaction: one requester of one line."""
    irq: int
    handler: int                       # 0: irq_default_primary_handler (thread only)
    thread_fn: int
    flags: int
    name: str
    name_ptr: int
    dev_id: int
    module: "Module | None"
    thread: IrqThread | None = None
    key: Any = None                    # its registration
    kernel: bool = False               # the kernel's own (the timer): handled in Python


@dataclass(eq=False)
class IrqDesc:
    """A struct irq_desc: a line, its handlers, its state."""
    irq: int
    chip: str = "IO-APIC"
    actions: list[Action] = field(default_factory=list)
    depth: int = 0                     # nested disables; 0: enabled
    pending: bool = False              # IRQS_PENDING: raised while disabled
    oneshot_masked: bool = False       # IRQF_ONESHOT: masked until the threads finish
    in_progress: bool = False          # IRQD_IRQ_INPROGRESS
    threads_active: int = 0
    count: int = 0                     # kstat_irqs: what /proc/interrupts shows
    irq_count: int = 0                 # note_interrupt's window
    unhandled: int = 0
    changed: trio.Event = field(default_factory=trio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    @property
    def idle(self) -> bool:
        return not self.in_progress and not self.threads_active


class Irqs:
    """The interrupt descriptors of one kernel."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.descs = {irq: IrqDesc(irq, "XT-PIC" if irq == 2 else "IO-APIC")
                      for irq in range(NR_IRQS_LEGACY)}
        self.registry = kernel.registrations.registry("irq")
        self._keys = 0
        self.descs[0].actions.append(Action(0, 0, 0, IRQF_TIMER_FLAGS, "timer", 0, 0, None, kernel=True))

    # -- requesting ---------------------------------------------------------

    def request(self, action: Action) -> int:
        """__setup_irq: 0, or a negative errno with Linux's message."""
        log = self.kernel.log
        module = getattr(action.module, "name", None)
        desc = self.descs.get(action.irq)
        if desc is None:
            return -errno.EINVAL
        if action.handler == 0 and not action.flags & IRQF_ONESHOT:
            log.emit(KERN_ERR, f"genirq: Threaded irq requested with handler=NULL and !ONESHOT for "
                               f"{action.name} (irq {action.irq})", module)
            return -errno.EINVAL
        if desc.actions:
            old = desc.actions[0]
            shared = old.flags & action.flags & IRQF_SHARED
            trigger = (old.flags ^ action.flags) & IRQF_TRIGGER_MASK
            oneshot = (old.flags ^ action.flags) & IRQF_ONESHOT
            if not shared or trigger or oneshot:
                if not action.flags & IRQF_PROBE_SHARED:
                    log.emit(KERN_ERR, f"genirq: Flags mismatch irq {action.irq}. {action.flags:08x} "
                                       f"({action.name}) vs. {old.flags:08x} ({old.name})", module)
                return -errno.EBUSY
        if action.thread_fn:
            action.thread = IrqThread(f"irq/{action.irq}-{action.name}"[:TASK_COMM_LEN - 1])
            action.thread.scope = self.kernel.spawn(self._irq_thread, desc, action,
                                                    name=action.thread.comm)
        if not desc.actions and action.flags & IRQF_NO_AUTOEN:
            desc.depth += 1
        desc.actions.append(action)
        self._keys += 1
        action.key = (action.irq, self._keys)
        self.registry.add(action.key, f'irq {action.irq} handler "{action.name}"', owner=action.module,
                          address=action.dev_id, points_to=(action.handler, action.thread_fn),
                          data=action, on_leftover=self._leftover)
        return 0

    def find(self, irq: int, dev_id: int) -> Action | None:
        desc = self.descs.get(irq)
        return next((a for a in desc.actions if a.dev_id == dev_id and not a.kernel), None) if desc else None

    def detach(self, action: Action) -> None:
        """Take the action off its line and stop its thread once its run
        in progress is over (free_irq then waits for synchronize_irq)."""
        desc = self.descs[action.irq]
        desc.actions.remove(action)
        self.registry.remove(action.key)
        if action.thread is not None:
            action.thread.stop = True
            action.thread.wake.set()
        desc.notify()

    def _leftover(self, entry: Any) -> None:
        """Its module is being freed with the line still requested: its code
        is going, so the thread is killed where it is."""
        action: Action = entry.data
        desc = self.descs[action.irq]
        desc.actions.remove(action)
        thread = action.thread
        if thread is not None and thread.scope is not None:
            thread.scope.cancel()
            desc.threads_active -= int(thread.wanted) + int(thread.running)
            if desc.threads_active == 0:
                desc.oneshot_masked = False
        desc.notify()

    # -- waiting ----------------------------------------------------------------

    async def synchronize(self, irq: int) -> None:
        """synchronize_irq: until no handler and no thread of the line runs."""
        desc = self.descs.get(irq)
        while desc is not None and not desc.idle:
            await desc.changed.wait()

    # -- enabling ------------------------------------------------------------------

    def disable(self, desc: IrqDesc) -> None:
        desc.depth += 1

    def enable(self, ctx: Any, desc: IrqDesc) -> None:
        if desc.depth == 0:
            warn(ctx, f"Unbalanced enable for IRQ {desc.irq}", "kernel/irq/manage.c:774", "enable_irq")
            return
        desc.depth -= 1
        if desc.depth == 0:
            self._resend(desc)

    def _resend(self, desc: IrqDesc) -> None:
        """check_irq_resend: an interrupt that came while masked is delivered now."""
        if desc.pending and desc.depth == 0 and not desc.oneshot_masked:
            desc.pending = False
            self.kernel.spawn(self._deliver_quietly, desc.irq, name=f"irq {desc.irq} resend")

    async def _deliver_quietly(self, irq: int) -> None:
        try:
            await self.deliver(irq)
        except KernelError:
            pass                        # the oops is logged

    # -- delivering ------------------------------------------------------------------

    async def deliver(self, irq: int) -> dict[str, Any]:
        """handle_irq: what a device raising `irq` makes the kernel do."""
        desc = self.descs.get(irq)
        if desc is None:
            raise KernelError(errno.EINVAL, f"raise_irq: irq {irq} does not exist on this machine "
                                            f"(lines 0-{NR_IRQS_LEGACY - 1})")
        if desc.depth or desc.oneshot_masked or desc.in_progress:
            desc.pending = True         # masked: remembered for check_irq_resend
            return {"irq": irq, "delivered": False, "pending": True, "result": IRQ_NONE}
        desc.count += 1
        desc.in_progress = True
        result, failure = IRQ_NONE, None
        try:
            for action in list(desc.actions):
                if action.kernel:
                    result |= IRQ_HANDLED           # the timer's tick
                    continue
                try:
                    ret = await self._hardirq(action)
                except KernelError as exc:
                    failure, ret = failure or exc, IRQ_NONE
                if ret & IRQ_WAKE_THREAD:
                    self._wake_thread(desc, action)
                result |= ret
        finally:
            desc.in_progress = False
            desc.notify()
        self._note_interrupt(desc, result)
        await tasklets(self.kernel).run_pending()      # irq_exit(): the softirqs raised meanwhile
        if failure is not None:
            raise failure
        return {"irq": irq, "delivered": True, "pending": False, "result": result}

    async def _hardirq(self, action: Action) -> int:
        if action.handler == 0:
            return IRQ_WAKE_THREAD              # irq_default_primary_handler
        ret = await self.kernel.sanitizer.call_pointer(
            action.handler, action.irq, action.dev_id, via="__handle_irq_event_percpu",
            comm="swapper/0", preempt_count=HARDIRQ_OFFSET)
        return ret & 0xFFFFFFFF

    def _wake_thread(self, desc: IrqDesc, action: Action) -> None:
        thread = action.thread
        if thread is None:
            self.kernel.log.emit(KERN_WARNING, f"IRQ {action.irq} device {action.name} returned "
                                               "IRQ_WAKE_THREAD but no thread function available.",
                                 getattr(action.module, "name", None))
            return
        if thread.wanted:
            return                              # IRQTF_RUNTHREAD already set
        thread.wanted = True
        desc.threads_active += 1
        if action.flags & IRQF_ONESHOT:
            desc.oneshot_masked = True
        thread.wake.set()

    async def _irq_thread(self, desc: IrqDesc, action: Action) -> None:
        """irq_thread: wait for IRQTF_RUNTHREAD, run thread_fn in process context."""
        thread = action.thread
        assert thread is not None
        while True:
            while not thread.wanted:
                if thread.stop:
                    return
                await thread.wake.wait()
                thread.wake = trio.Event()
            thread.wanted, thread.running = False, True
            try:
                await self.kernel.sanitizer.call_pointer(action.thread_fn, action.irq, action.dev_id,
                                                         via="irq_thread_fn", comm=thread.comm,
                                                         check=False)
            except KernelError:
                pass                   # the oops is logged; the thread goes on
            finally:
                thread.running = False
                thread.runs += 1
                desc.threads_active -= 1
                if desc.threads_active == 0 and desc.oneshot_masked:
                    desc.oneshot_masked = False        # irq_finalize_oneshot: unmask
                    self._resend(desc)
                desc.notify()

    def _note_interrupt(self, desc: IrqDesc, result: int) -> None:
        """kernel/irq/spurious.c: a line that nobody handles is switched off."""
        desc.irq_count += 1
        if result == IRQ_NONE:
            desc.unhandled += 1
        if desc.irq_count < SPURIOUS_WINDOW:
            return
        if desc.unhandled > SPURIOUS_LIMIT:
            log = self.kernel.log
            log.emit(KERN_ERR, f"irq {desc.irq}: nobody cared (try booting with the \"irqpoll\" option)",
                     None)
            log.emit(KERN_ERR, "handlers:", None)
            for action in desc.actions:
                log.emit(KERN_ERR, f"[<{action.handler:016x}>] "
                                   f"{self.kernel.machine.symbol_name(action.handler)}", None)
            log.emit(KERN_EMERG, f"Disabling IRQ #{desc.irq}", None)
            desc.depth += 1
        desc.irq_count = desc.unhandled = 0

    def table(self) -> list[dict[str, Any]]:
        """The lines with handlers, as /proc/interrupts lists them."""
        return [{"irq": d.irq, "count": d.count, "chip": d.chip, "enabled": d.depth == 0,
                 "actions": [a.name for a in d.actions]}
                for d in self.descs.values() if d.actions]


def irqs(kernel: "Kernel") -> Irqs:
    return kernel.subsystem(Irqs)


def _name(ctx: Any, address: int) -> str:
    return ctx.mem.read_cstr(address, _NAME_MAX).decode("utf-8", "replace") if address else ""


def request_threaded(ctx: Any, irq: int, handler: int, thread_fn: int, flags: int, devname: int,
                     dev_id: int) -> Action | int:
    """request_threaded_irq's checks and setup: the Action or a negative errno."""
    irq &= 0xFFFFFFFF
    flags &= 0xFFFFFFFFFFFFFFFF
    if irq == IRQ_NOTCONNECTED:
        return -errno.ENOTCONN
    if flags & IRQF_SHARED and not dev_id:
        return -errno.EINVAL
    if not handler and not thread_fn:
        return -errno.EINVAL
    action = Action(irq, handler, thread_fn, flags, _name(ctx, devname), devname, dev_id,
                    ctx.kernel.registrations.module_at(handler or thread_fn) or ctx.module)
    ret = irqs(ctx.kernel).request(action)
    return action if ret == 0 else ret


def free(ctx: Any, irq: int, dev_id: int) -> Any:
    """free_irq: the devname pointer, once no handler of the line runs."""
    subsystem = irqs(ctx.kernel)
    irq &= 0xFFFFFFFF
    if irq not in subsystem.descs:
        return 0
    action = subsystem.find(irq, dev_id)
    if action is None:
        warn(ctx, f"Trying to free already-free IRQ {irq}", "kernel/irq/manage.c:1893", "free_irq")
        return 0
    subsystem.detach(action)
    desc = subsystem.descs[irq]
    if desc.idle:
        return action.name_ptr

    async def waiting() -> int:
        await subsystem.synchronize(irq)
        return action.name_ptr
    return waiting()


@export("request_threaded_irq",
        "int request_threaded_irq(unsigned int irq, irq_handler_t handler, irq_handler_t thread_fn, "
        "unsigned long flags, const char *name, void *dev)", nargs=6)
def request_threaded_irq(ctx: Any, irq: int, handler: int, thread_fn: int, flags: int, devname: int,
                         dev_id: int) -> int:
    result = request_threaded(ctx, irq, handler, thread_fn, flags, devname, dev_id)
    return result if isinstance(result, int) else 0


@export("free_irq", "const void *free_irq(unsigned int irq, void *dev_id)", nargs=2)
def free_irq(ctx: Any, irq: int, dev_id: int) -> Any:
    return free(ctx, irq, dev_id)


@export("disable_irq_nosync", "void disable_irq_nosync(unsigned int irq)", nargs=1)
def disable_irq_nosync(ctx: Any, irq: int) -> None:
    desc = irqs(ctx.kernel).descs.get(irq & 0xFFFFFFFF)
    if desc is not None:
        irqs(ctx.kernel).disable(desc)


@export("disable_irq", "void disable_irq(unsigned int irq)", nargs=1)
def disable_irq(ctx: Any, irq: int) -> Any:
    subsystem = irqs(ctx.kernel)
    desc = subsystem.descs.get(irq & 0xFFFFFFFF)
    if desc is None:
        return 0
    subsystem.disable(desc)
    return synchronize_irq(ctx, irq)


@export("enable_irq", "void enable_irq(unsigned int irq)", nargs=1)
def enable_irq(ctx: Any, irq: int) -> None:
    desc = irqs(ctx.kernel).descs.get(irq & 0xFFFFFFFF)
    if desc is not None:
        irqs(ctx.kernel).enable(ctx, desc)


@export("synchronize_irq", "void synchronize_irq(unsigned int irq)", nargs=1)
def synchronize_irq(ctx: Any, irq: int) -> Any:
    subsystem = irqs(ctx.kernel)
    desc = subsystem.descs.get(irq & 0xFFFFFFFF)
    if desc is None or desc.idle:
        return 0

    async def waiting() -> int:
        await subsystem.synchronize(desc.irq)
        return 0
    return waiting()
