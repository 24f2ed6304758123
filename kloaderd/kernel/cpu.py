"""The emulated CPU: running module code, dispatching kernel calls, oopsing.

Kernel functions (`kloaderd.kernel.api.FUNCTIONS`) are 16-byte stubs in
kernel text whose one instruction jumps to a shared return path.  One
`UC_HOOK_CODE` over the stub range runs the Python implementation before
that jump executes and puts its result in %rax, so a kernel call costs one
hook and no stop of the emulation (measured faster than `syscall` + an instruction hook, and only
instructions in the stub range are instrumented).  An implementation that
has to sleep returns a coroutine: the emulation stops, the task's context is
saved, the CPU is released while the coroutine runs, and on return the CPU
performs the stub's `ret` for it.  Machine-code helpers (`ret`, `jmp *%reg`)
are laid down as real code before the stubs (`Machine._build_kernel_image`
says why there is exactly one hook, and what its range holds).

Guest code runs in slices of `SLICE_US`, ended by `preempt.TIMER` (one
long-lived thread calling `emu_stop`, as the local APIC timer interrupts a
CPU), and the event loop runs between slices, so the daemon keeps answering
while a module's init spins.  A slice that ran out while nothing else
wanted the CPU is followed by one that runs on until something does (the
loop's I/O, its next deadline, the watchdog: `preempt.alone_until`), since
each stop slowed the guest far more than its own cost.  Neither `emu_start(timeout=...)` (a thread
created and joined per call) nor `count=` (a hook on every instruction) is
used: entering guest code costs what `emu_start` itself costs.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import resource
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

import trio
from unicorn import (UC_ARCH_X86, UC_HOOK_CODE, UC_HOOK_INTR, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE,
                     UC_MODE_64, Uc, UcError)
from unicorn import x86_const as X
from unicorn.unicorn_const import UC_ERR_INSN_INVALID, UC_TLB_VIRTUAL

from ..config import (HZ, INITIAL_JIFFIES, KERNEL_TEXT_BASE, MODULES_VADDR, PAGE_SIZE,
                      PER_CPU_BASE)
from . import api
from ..errors import KernelError
from .entry import ARG_REGS as _ARG_REGS
from .entry import EntryRegs
from .memory import ARENA_SIZE, AddressSpace, GuestFault, page_align
from .oops import NotEmulated, OopsKernel, OopsReports, SoftLockup
from .preempt import TIMER, alone_until
from .sched import BusyWait, Scheduler, SchedulerKernel, Task

STUB_SIZE = 16
SLICE_US = 10_000                  # one time slice: the event loop runs at least this often
SLICE = SLICE_US / 1e6
_MASK64 = (1 << 64) - 1
_RET, _INT3, _HLT = b"\xc3", b"\xcc", b"\xf4"
# The stubs' shared return path: `xor %r11d, %r11d; ret`.  A completed call
# leaves a one-time token in %r11 (a scratch register the ABI lets callees
# clobber) until this path clears it, so a slice that timed out between the
# hook and its stub's jump is told apart from a call not yet made.  Tokens
# are never 0 (what a fresh task's %r11 holds, and what this path leaves),
# are drawn from a per-machine random base, and are forgotten once the
# emu_start that issued one returns: guest code never sees one.
_STUB_RETURN = b"\x45\x31\xdb" + _RET
_U64 = struct.Struct("<Q")
TOP_OF_STACK_RESERVE = 256        # where Linux keeps the thread's pt_regs
STACK_CANARY_OFFSET = 40           # %gs:40, fixed by gcc's -mstack-protector-guard=tls

def _not_emulated(name: str) -> Callable[..., Any]:
    def call(_ctx: Any) -> None:
        raise NotEmulated(name)
    return call


class TaskExit(Exception):
    """Raised by a kernel function that ends its task where it is called
    (kthread_exit, module_put_and_kthread_exit): no oops, and `Machine.call`
    raises it to whoever runs the task, with the exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"task exit({code})")
        self.code = code


TCG_BUFFER_SIZE = 256 << 20    # Unicorn's translated-code cache; its default is 1 GiB
TCG_BUFFER_MIN = 16 << 20      # below this, code would be retranslated all the time
ADDRESS_SPACE_SLACK = 128 << 20  # the daemon's own growth: Python objects, an image being loaded


def _vm_size() -> int:
    """Bytes of address space this process uses now (0 if not known)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) << 10
    except (OSError, ValueError, IndexError):
        pass
    return 0


def translation_buffer_size() -> int:
    """How much address space Unicorn's translation cache may reserve.

    Unicorn reserves its cache (1 GiB by default) in one mmap when the CPU is
    first used, and exits the process if that fails ("Could not allocate
    dynamic translator buffer") or leaves too little for the physical memory
    arenas.  Under `ulimit -v` the cache is sized to fit beside what the
    process uses, an arena and some room; if even TCG_BUFFER_MIN does not
    fit, the kernel refuses to start, saying what it needs.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return TCG_BUFFER_SIZE
    used = _vm_size()
    size = min(TCG_BUFFER_SIZE, (soft - used - ARENA_SIZE - ADDRESS_SPACE_SLACK) // 2) & ~((1 << 20) - 1)
    if size < TCG_BUFFER_MIN:
        need = used + 2 * TCG_BUFFER_MIN + ARENA_SIZE + ADDRESS_SPACE_SLACK
        raise KernelError(errno.ENOMEM, (
            f"the address-space limit (ulimit -v {soft >> 10}) is too small: the emulated kernel "
            f"needs at least {need >> 20} MiB ({used >> 20} MiB in use, a {TCG_BUFFER_MIN >> 20} MiB "
            f"translation cache, a {ARENA_SIZE >> 20} MiB physical memory arena and "
            f"{ADDRESS_SPACE_SLACK >> 20} MiB to work in): raise it to ulimit -v {(need >> 10) + 1} "
            "or more, or lift it"))
    return size


# The watchdog's clock: CPU time of the thread that runs guest code (which is
# where emulation and kernel functions run), not wall time.  A task is "stuck"
# for the seconds it kept the emulated CPU busy, as Linux counts a soft
# lockup on its own CPU; wall time would also count every moment this
# process waited for the host's CPUs, so a busy host would oops healthy code.
task_clock = time.thread_time


@dataclass(slots=True)
class CallContext:
    """What a kernel function implementation sees of its caller."""
    kernel: Any
    mem: AddressSpace
    task: Task
    module: Any
    machine: "Machine"
    _rsp: int                      # %rsp at the stub: the return address is on top
    _regs: list[int]               # the six argument registers at the call
    _nargs: int

    def still_running(self) -> None:
        """Called by kernel functions between chunks of work that grows with
        their arguments (memset of a huge length, a format with thousands of
        wide fields): past the watchdog, the task dies of a soft lockup
        rather than hold the daemon's only thread."""
        machine = self.machine
        left = machine.watchdog - self.task.runtime
        # A thread's CPU time grows no faster than wall time: the CPU clock
        # (a system call here) is read only once the wall clock says the
        # watchdog might be due.
        if time.monotonic() - machine.slice_began > left and task_clock() - machine.slice_started > left:
            raise SoftLockup()

    @property
    def caller(self) -> int:
        """The return address: where in module code the call came from."""
        return self.mem.read_u64(self._rsp)

    def va(self) -> Iterator[int]:
        """Integer arguments after the fixed ones: the remaining argument
        registers, then the stack slots, as a variadic callee finds them."""
        for value in self._regs[self._nargs:]:
            yield value
        slot = self._rsp + 8 + 8 * max(0, self._nargs - len(_ARG_REGS))
        while True:
            yield self.mem.read_u64(slot)
            slot += 8


class MachineKernel(SchedulerKernel, OopsKernel, Protocol):
    """What the machine needs of the kernel it runs for: where its scheduler
    and oops reports go.  `Kernel` is one; kernel functions see the whole
    Kernel as `ctx.kernel`."""


class Machine(OopsReports):
    """One emulated x86-64 CPU with the kernel's text, data and per-CPU area."""

    def __init__(self, kernel: MachineKernel, *, watchdog: float = 5.0,
                 symbolize: Callable[[int], str | None] | None = None,
                 per_cpu_base: int = PER_CPU_BASE) -> None:
        api.load_all()
        self.kernel = kernel
        self.watchdog = watchdog
        self.symbolize = symbolize
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        self.uc.ctl_set_tcg_buffer_size(translation_buffer_size())
        self.uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        self.mem = AddressSpace(self.uc)
        self.sched = Scheduler(kernel, self.mem)
        self._symbols: dict[str, int] = {}
        self._kallsyms: list[tuple[int, int, str, str]] = []
        self._stubs: dict[int, api.KernelFunction] = {}
        self._watched: set[int] = set()        # machine code whose entry calls `watch`
        # watch(uc, address): called on entering watched machine code (the
        # sanitizer's indirect-call check), before its first instruction runs.
        self.watch: Callable[[Uc, int], None] | None = None
        self._not_emulated: tuple[int, list[str]] = (0, [])
        self._calls = itertools.count(1)
        self._token_base = int.from_bytes(os.urandom(8), "little") >> 2 | 1 << 62
        self._token: int | None = None   # the token of a call completed in this slice
        self._boot = time.monotonic()
        self._running: Task | None = None      # the task inside emu_start
        # The per-CPU words `current` is read from (kernel/task_struct.py),
        # and the task they were last set to.
        self.current_words: list[ctypes.c_uint64] = []
        self._shown: Task | None = None
        self._loaded: Task | None = None       # whose registers the CPU holds
        self._pending: tuple[str, Any, str] | None = None   # (what, exception or wait, function)
        self._intno: int | None = None
        self._die_counter = 0
        self._regs = EntryRegs(self.uc)
        self._dirty = True                      # the CPU state needs a context_restore
        self.slice_started = 0.0                # task_clock() when the running slice began
        self.slice_began = 0.0                  # and time.monotonic()
        self.per_cpu_base = per_cpu_base
        self._build_kernel_image()
        self._setup_per_cpu()
        self._trap_frame = _U64.pack(self.trap)      # the return address every task starts with
        self._entry_slots: dict[int, tuple[int, ctypes.c_uint64]] = {}   # stack -> (%rsp, its physical address)
        # Stacks whose entry slot holds the return address: their last task
        # was entered there and returned through it (%rsp just above it).
        self._returned: set[int] = set()
        self._jiffies = self.mem.word(self._symbols["jiffies"])
        # Two writers: this thread (entries, kernel calls) and the slice
        # timer's tick while a run goes on alone; jiffies never goes back.
        self._jiffies_lock = threading.Lock()
        self._jiffies_seen = -1
        self.uc.hook_add(UC_HOOK_INTR, self._on_interrupt)
        # What every task starts from: all GPRs zero, IF set as in a kernel
        # thread, GS at this CPU's per-CPU area.
        self.uc.reg_write(X.UC_X86_REG_RFLAGS, 0x202)
        self.uc.reg_write(X.UC_X86_REG_GS_BASE, self.per_cpu_base)
        self._clean_cpu = self.uc.context_save()

    # --- the kernel image --------------------------------------------------------

    def _build_kernel_image(self) -> None:
        """vmlinux: machine code, stubs and helpers in .text, objects in
        .rodata and .data; stubs made later (a profile's not-emulated
        exports, provided functions) go above the image.

        Exactly one `UC_HOOK_CODE` hook dispatches every kernel call: a
        second one makes Unicorn lose kernel calls when a slice ends (issue
        13, as defect 1's skipped first call).  So the layout is

            [native][trap][return path][watched][stubs][rodata][data][later stubs, data]...

        and the hook runs from the first watched instruction to the module
        area: it covers every stub made now or later, and the retpoline
        thunks whose entry the sanitizer watches, but not the shared return
        path every call runs nor plain machine code (`__fentry__`, the
        return thunk), which run uninstrumented.  Data in the range is never
        executed, so it costs nothing."""
        text = bytearray()
        functions = sorted(api.FUNCTIONS.values(), key=lambda f: f.name)
        hooked = [f for f in functions if getattr(f.impl, "machine_code", None) is None]
        native = [f for f in functions if getattr(f.impl, "machine_code", None) is not None]
        watched = [f for f in native if getattr(f.impl, "watched", False)]
        for fn in native:
            if fn not in watched:
                self._place_native(fn, text)
        # Where every task returns when its function does: one `hlt`, which
        # ends emu_start (`_stop_at` is just after it; the int3s never run).
        # Runs are started with no end address (0) rather than ending at
        # one: at every exit Unicorn invalidates the translated block before
        # a run's end address, so code there was translated afresh on every
        # entry — 2.5 µs, two thirds of a bare one-instruction emu_start
        # (docs/performance.md).  Linux's threads start from here too.
        self.trap = KERNEL_TEXT_BASE + len(text)
        self._stop_at = self.trap + len(_HLT)
        self._kallsyms.append((self.trap, STUB_SIZE, "t", "ret_from_fork_asm"))
        text += _HLT.ljust(STUB_SIZE, _INT3)
        self.stub_return = KERNEL_TEXT_BASE + len(text)
        self._kallsyms.append((self.stub_return, STUB_SIZE, "t", "__kernel_call_return"))
        text += _STUB_RETURN.ljust(STUB_SIZE, _INT3)
        hooked_start = KERNEL_TEXT_BASE + len(text)
        for fn in watched:
            self._place_native(fn, text)
            self._watched.add(self._symbols[fn.name])
        for fn in hooked:
            self._add_stub(fn.name, fn, KERNEL_TEXT_BASE, text)
        addr = self._load_section(KERNEL_TEXT_BASE, bytes(text), "r-x")
        for writable, letter, perms in ((False, "R", "r--"), (True, "D", "rw-")):
            section = bytearray()
            base = addr
            for obj in sorted((o for o in api.OBJECTS.values() if o.writable == writable),
                              key=lambda o: o.name):
                section += b"\0" * (-len(section) % obj.align)
                self._define(obj.name, base + len(section), obj.size, letter)
                section += obj.init
            addr = self._load_section(base, bytes(section), perms)
        self.image_end = addr
        self._kallsyms.sort()
        self.uc.hook_add(UC_HOOK_CODE, self._on_stub, begin=hooked_start, end=MODULES_VADDR - 1)

    def _add_stub(self, name: str, fn: api.KernelFunction | None, base: int,
                  text: bytearray) -> int:
        """Append the stub of `name` to `text` (to be loaded at `base`): one
        `jmp` to the return path, before which the hook runs `fn`.  `fn`
        None: a not-emulated export, whose dispatch entry is made on its
        first call.  Returns the stub's address."""
        addr = base + len(text)
        if fn is not None:
            self._stubs[addr] = fn
        self._define(name, addr, STUB_SIZE, "T")
        text += (b"\xe9" + struct.pack("<i", self.stub_return - (addr + 5))).ljust(STUB_SIZE, _INT3)
        return addr

    def _place_native(self, fn: api.KernelFunction, text: bytearray) -> None:
        """Lay machine code down at the end of `text`, padded to a stub's size."""
        code = fn.impl.machine_code
        self._define(fn.name, KERNEL_TEXT_BASE + len(text), len(code), "T")
        text += code.ljust(-(-len(code) // STUB_SIZE) * STUB_SIZE, _INT3)

    def add_not_emulated(self, names: list[str]) -> dict[str, int]:
        """Stubs for exports of a real kernel kloader does not implement,
        after the image: calling one oopses the caller, naming the function
        (an honest gap, never a call that returns 0 and pretends).  Their
        dispatch entries are made on first call: a profile has thousands.
        The stubs are execute-only, so an export that is data oopses the
        module that reads it, naming it, instead of handing it code bytes."""
        if not names:
            return {}
        base = self.image_end
        names = sorted(names)
        text = bytearray()
        addresses = {}
        for name in names:
            addresses[name] = self._add_stub(name, None, base, text)
        self._not_emulated = (base, names)
        self.image_end = self._load_section(base, bytes(text), "--x")
        self._kallsyms.sort()
        return addresses

    def function(self, name: str) -> api.KernelFunction | None:
        """What a call to the exported function `name` runs now."""
        address = self._symbols.get(name)
        if address is None:
            return None
        return self._stubs.get(address) or self._not_emulated_stub(address)

    def provide(self, fn: api.KernelFunction) -> int:
        """Make calls to `fn.name` run `fn`: an export's stub (kloader's own
        implementation or a not-emulated one) is redirected; a name the kernel
        does not have gets a stub of its own.  Returns the stub's address."""
        address = self._symbols.get(fn.name)
        if address is not None:
            if self.function(fn.name) is None:
                raise ValueError(f"{fn.name} is not a kernel function kloader dispatches "
                                 "(machine code, or data): it cannot be provided")
            self._stubs[address] = fn
            return address
        base = self.image_end
        text = bytearray()
        self._add_stub(fn.name, fn, base, text)
        self.image_end = self._load_section(base, bytes(text), "r-x")
        self._kallsyms.sort()
        return base

    def not_emulated_at(self, address: int) -> str | None:
        """The not-emulated export whose stub holds `address`, if any."""
        base, names = self._not_emulated
        index = (address - base) // STUB_SIZE
        return names[index] if base and 0 <= index < len(names) else None

    def add_objects(self, objects: list[tuple[str, int, bytes]]) -> dict[str, int]:
        """Kernel data after the image, (name, size, initial bytes) each,
        writable and 64-byte aligned as cache-aligned kernel data is."""
        base = self.image_end
        data = bytearray()
        addresses = {}
        for name, size, init in objects:
            data += bytes(-len(data) % 64)
            addresses[name] = base + len(data)
            self._define(name, base + len(data), size, "D")
            data += init.ljust(size, b"\0")[:size]
        self.image_end = self._load_section(base, bytes(data), "rw-")
        self._kallsyms.sort()
        return addresses

    def _not_emulated_stub(self, addr: int) -> api.KernelFunction | None:
        base, names = self._not_emulated
        index, offset = divmod(addr - base, STUB_SIZE)
        if offset or not 0 <= index < len(names):
            return None
        fn = self._stubs[addr] = api.KernelFunction(names[index], _not_emulated(names[index]), 0,
                                                    False, "")
        return fn

    def _define(self, name: str, addr: int, size: int, letter: str) -> None:
        self._symbols[name] = addr
        self._kallsyms.append((addr, size, letter, name))

    def _load_section(self, base: int, data: bytes, perms: str) -> int:
        if base + len(data) > MODULES_VADDR:
            # The kernel image's 512 MiB: far beyond any profile's exports.
            raise KernelError(errno.ENOMEM, "kloader: the kernel image would reach the module area")
        if data:
            self.mem.map(base, len(data), "rw-")
            self.mem.write(base, data)
            if perms != "rw-":
                self.mem.protect(base, len(data), perms)
        return base + page_align(len(data))

    def _setup_per_cpu(self) -> None:
        """CPU 0's per-CPU area, reached through GS, with the stack canary at
        %gs:40; random with a zero low byte, as get_random_canary() makes it."""
        self.mem.map(self.per_cpu_base, PAGE_SIZE, "rw-")
        self.stack_canary = int.from_bytes(os.urandom(8), "little") & ~0xFF
        self.mem.write_u64(self.per_cpu_base + STACK_CANARY_OFFSET, self.stack_canary)

    def kernel_symbols(self) -> dict[str, int]:
        """Every exported kernel function and object → address."""
        return dict(self._symbols)

    def kallsyms(self) -> list[tuple[int, int, str, str]]:
        """(address, size, type letter, name) of the core kernel, by address."""
        return list(self._kallsyms)

    def next_die(self) -> int:
        """The oops counter ([#N]) for a death reported outside guest code."""
        self._die_counter += 1
        return self._die_counter

    @property
    def current(self) -> Task | None:
        """The task running guest code now (what `current` is), if any."""
        return self._running

    # --- time ------------------------------------------------------------------

    def uptime(self) -> float:
        return time.monotonic() - self._boot

    def jiffies(self) -> int:
        return (INITIAL_JIFFIES + int(self.uptime() * HZ)) & _MASK64

    def _update_jiffies(self, now: float | None = None) -> None:
        """jiffies in guest memory, as of `now` (time.monotonic()): at every
        entry, every kernel call and, while a run goes on alone past its
        slice, every tick of the slice timer (from its thread) — code that
        waits for jiffies to move without calling the kernel (raid6's and
        xor's benchmarks: `while (jiffies == j0) cpu_relax();`) sees it move,
        as on Linux, where the timer interrupt advances it."""
        if now is None:
            now = time.monotonic()
        j = (INITIAL_JIFFIES + int((now - self._boot) * HZ)) & _MASK64
        if j != self._jiffies_seen:         # the usual: no tick since this caller's last look
            self._jiffies_seen = j
            with self._jiffies_lock:
                if j > self._jiffies.value:
                    self._jiffies.value = j

    # --- calling into guest code ---------------------------------------------

    async def call(self, addr: int, *args: int, module: Any = None, name: str = "",
                   task: Task | None = None, preempt_count: int = 0) -> int:
        """Run the function at addr as a new task on its own stack (or on
        `task`, made beforehand with `sched.new_task`, and entered at once
        if it holds the CPU already: `GoldenRule.call_deferred`); return %rax.
        `preempt_count`: the context it runs in (SOFTIRQ_OFFSET for a
        softirq: atomic, sleeping there is a bug).

        Raises Oops if the task dies (fault, invalid opcode, soft lockup...).
        """
        if task is None:
            task = self.sched.new_task(name or "kworker/0:1", module)
        task.preempt_count = preempt_count
        try:
            if not task.holds_cpu:
                await self.sched.acquire(task)
            self._start(task, addr, args)
            return await self._run(task)
        finally:
            if self._loaded is task:
                self._loaded = None
            self.sched.exit_task(task)

    def _start(self, task: Task, addr: int, args: tuple[int, ...]) -> None:
        """System V entry: args in registers then on the stack, the return
        address on top, %rsp+8 16-byte aligned."""
        if self._dirty:
            # A fault aborted by Unicorn leaves exception bookkeeping behind
            # that would turn the next trap into a double fault.
            self.uc.context_restore(self._clean_cpu)
            self._dirty = False
        on_stack = args[len(_ARG_REGS):]
        if on_stack:
            rsp = ((task.stack_top - TOP_OF_STACK_RESERVE - 8 * len(on_stack)) & ~15) - 8
            self.mem.write(rsp, self._trap_frame + b"".join(_U64.pack(a & _MASK64) for a in on_stack))
            self._returned.discard(task.stack_base)
            self._regs.enter(args, rsp, addr, self.per_cpu_base)
        else:
            # The usual: the return address alone, where it always goes on
            # this (recycled, never unmapped) stack — and is still, if the
            # last task entered there returned through it.
            base = task.stack_base
            slot = self._entry_slots.get(base)
            if slot is None:
                rsp = ((task.stack_top - TOP_OF_STACK_RESERVE) & ~15) - 8
                slot = self._entry_slots[base] = (rsp, ctypes.c_uint64(self.mem.translate(rsp, "write")))
            rsp, phys = slot
            if base in self._returned:
                self._returned.remove(base)
                self._regs.enter(args, rsp, addr, self.per_cpu_base)
            else:
                self._regs.enter(args, rsp, addr, self.per_cpu_base, self._trap_frame, phys)
        task.rip = addr & _MASK64
        self._loaded = task

    async def _run(self, task: Task) -> int:
        uc, regs, stop_at = self.uc, self._regs, self._stop_at
        alone: tuple[float, int] | None = None      # run on past the slice: `preempt.alone_until`
        while True:
            if task.runtime > self.watchdog:
                raise self._soft_lockup(task)
            if self._loaded is not task:
                uc.context_restore(task.context)
                self._loaded = task
            self._pending = self._intno = None
            self.mem.last_fault = None
            now = time.monotonic()
            self._update_jiffies(now)
            self._running = task
            if task is not self._shown:
                self._shown = task
                for word in self.current_words:
                    word.value = task.current
            self.slice_began = now
            started = self.slice_started = task_clock()
            if alone is None:
                timer = TIMER.arm(uc, now + SLICE)
            else:
                until, io = alone
                timer = TIMER.arm(uc, min(now + SLICE, until), until, io, SLICE, self._update_jiffies)
                alone = None
            try:
                regs.emu_start(task.rip, 0)      # stops at the trap's hlt
            except UcError as err:
                task.runtime += task_clock() - started
                if err.errno == UC_ERR_INSN_INVALID and self._warned(task, uc.reg_read(X.UC_X86_REG_RIP)):
                    continue
                self._dirty = True
                raise self._fault_oops(task, err) from None
            finally:
                TIMER.disarm(timer)
                self._running = None
            rip, r11, rax, rsp = regs.stopped()
            if rip == stop_at and self._intno is None and self._pending is None:
                # The function returned: its task ends here, and with it the
                # runtime the watchdog would have counted.
                if rsp == (task.stack_top - TOP_OF_STACK_RESERVE) & ~15:
                    self._returned.add(task.stack_base)
                return rax
            task.runtime += task_clock() - started
            task.rip = rip
            if self._intno is not None:
                if self._intno == 6 and self._warned(task, rip):
                    continue
                self._dirty = True
                raise self._trap_oops(task, self._intno)
            if self._pending is not None:
                what, obj, function = self._pending
                if what == "raise":
                    if isinstance(obj, TaskExit):
                        self._dirty = True
                        raise obj
                    raise self._api_oops(task, obj, function)
                await self._block(task, obj, function)
                continue
            token, self._token = self._token, None
            if rip in self._stubs and r11 == token:
                # Stopped between a completed call and its stub's jump:
                # resuming at the stub would make the call a second time.
                task.rip = self.stub_return
            # The slice ran out: let the event loop and other tasks in.
            if self.sched.cpu.waiting:
                task.context = uc.context_save()
            await self.sched.yield_cpu(task)
            if not self.sched.cpu.waiting:
                # Nothing else wants the CPU: the next slice goes on until
                # something does (preempt.py says why that matters).
                alone = alone_until(self.watchdog - task.runtime)

    def _on_stub(self, uc: Uc, addr: int, _size: int, _data: Any) -> None:
        """A kernel function was called: run its implementation."""
        fn = self._stubs.get(addr)
        if fn is None:
            if addr in self._watched:
                if self.watch is not None:
                    self.watch(uc, addr)
                return
            fn = self._not_emulated_stub(addr)
            if fn is None:          # a jump into a stub's int3 padding: let it trap
                return
        task = self._running
        nargs = fn.nargs
        *regs, rsp = self._regs.read()
        self._update_jiffies()
        try:
            args = regs[:nargs]
            if nargs > len(_ARG_REGS):
                args += [self.mem.read_u64(rsp + 8 * i) for i in range(1, nargs - len(_ARG_REGS) + 1)]
            ctx = CallContext(self.kernel, self.mem, task, task.module, self, rsp, regs, nargs)
            result = fn.impl(ctx, *args)
        except Exception as exc:        # reported as the task's death, after emu_start returns
            self._pending = ("raise", exc, fn.name)
            uc.emu_stop()
            return
        if result is None:
            result = 0
        elif not isinstance(result, int):
            self._pending = ("block", result, fn.name)
            uc.emu_stop()
            return
        self._token = self._token_base + next(self._calls)
        self._regs.done(result & _MASK64, self._token)

    def _on_interrupt(self, uc: Uc, intno: int, _data: Any) -> None:
        self._intno = intno
        uc.emu_stop()

    async def _block(self, task: Task, waiting: Any, function: str) -> None:
        """Finish a kernel call that waits; then perform the stub's `ret`."""
        uc = self.uc
        if isinstance(waiting, BusyWait):
            # Spinning keeps the CPU (no other task runs) and counts as running.
            spin = min(waiting.seconds, max(0.0, self.watchdog - task.runtime) + 0.01)
            await trio.sleep(spin)
            task.runtime += spin
            result: Any = 0
        else:
            task.context = uc.context_save()
            self.sched.schedule_out(task)
            self.sched.release(task)
            failure: Exception | None = None
            try:
                result = await waiting
            except Exception as exc:       # any failure is the task's death (an oops), never EIO
                failure, result = exc, 0
            await self.sched.acquire(task)
            if self._loaded is not task:
                uc.context_restore(task.context)
                self._loaded = task
            if failure is not None:
                raise self._api_oops(task, failure, function)
        rsp = uc.reg_read(X.UC_X86_REG_RSP)
        uc.reg_write(X.UC_X86_REG_RAX, (result or 0) & _MASK64)
        task.rip = self.mem.read_u64(rsp)
        uc.reg_write(X.UC_X86_REG_RSP, rsp + 8)

    def _precise(self, fault: GuestFault) -> GuestFault:
        """The exact faulting address (the TLB only tells the page): replay
        the instruction once with the page backed by a scratch page and
        watch its data accesses."""
        uc = self.uc
        rip = uc.reg_read(X.UC_X86_REG_RIP)
        if fault.access == "exec":
            exact = rip if rip >> 12 == fault.address >> 12 else fault.address
            return GuestFault(exact, "exec", present=fault.present)
        seen: list[int] = []

        def record(_uc: Uc, access: int, address: int, _size: int, _value: int, _data: Any) -> None:
            # Unicorn reports the physical address here: the scratch page's.
            if address >> 12 in (fault.address >> 12, self.mem.probe_phys >> 12):
                seen.append((fault.address & ~0xFFF) | (address & 0xFFF))

        saved = uc.context_save()
        hook = uc.hook_add(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, record)
        self.mem.probe(fault.address)
        try:
            uc.emu_start(rip, self.trap, count=1)
        except UcError:
            pass
        finally:
            self.mem.probe(None)
            uc.hook_del(hook)
            # Unicorn drops the count=1 hook at the next emu_start, and in
            # doing so looks up the code page it instrumented: the module's,
            # which is gone by then when the oops unloads it, and that stale
            # fetch fault would be reported against the next task.  Drop it
            # now, while the page is mapped (begin == until runs nothing).
            uc.emu_start(self.trap, self.trap)
            uc.ctl_flush_tb()
            uc.context_restore(saved)
        if seen:
            return GuestFault(seen[0], fault.access, present=fault.present)
        return fault

    def _lookup(self, addr: int) -> str | None:
        name = self.symbolize(addr) if self.symbolize is not None else None
        if name is None:
            for start, size, _letter, sym in self._kallsyms:
                if start <= addr < start + size:
                    return f"{sym}+{addr - start:#x}/{size:#x}"
        return name

    def symbol_name(self, addr: int) -> str:
        """`hello_init+0x12/0x40 [hello]`, or the bare address."""
        return self._lookup(addr) or f"0x{addr:x}"
