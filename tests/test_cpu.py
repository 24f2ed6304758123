"""The emulated CPU: calls into module code, kernel calls, faults and oopses."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
import trio
import trio.testing

from guestcode import Kernel, build, unmap
from kloaderd.config import INITIAL_JIFFIES, KERNEL_TEXT_BASE, MODULES_VADDR, PER_CPU_BASE
from kloaderd.kernel import api, cpu, preempt
from kloaderd.kernel.cpu import Machine
from kloaderd.kernel.memory import GuestFault
from kloaderd.kernel.oops import Oops
from unicorn import UC_HOOK_CODE

ARITH = r"""
long add(long a, long b) { return a + b; }
long weigh8(long a, long b, long c, long d, long e, long f, long g, long h)
{ return a + 2*b + 3*c + 4*d + 5*e + 6*f + 7*g + 8*h; }
long spin(void) { for (;;) __asm__ volatile(""); }
"""


@pytest.fixture
def kernel() -> Kernel:
    return Kernel()


@pytest.fixture
def machine(kernel) -> Machine:
    return Machine(kernel, watchdog=5.0)


def _register(monkeypatch, name, impl, nargs, *, variadic=False):
    """A kernel function for this test only (the registry is process-wide)."""
    monkeypatch.setitem(api.FUNCTIONS, name,
                        api.KernelFunction(name, impl, nargs, False, f"long {name}(...)", variadic))


@pytest.mark.trio
async def test_code_runs_at_module_addresses_and_returns_rax(machine):
    g = build(machine, ARITH)
    assert g["add"] >= MODULES_VADDR
    assert await machine.call(g["add"], 40, 2) == 42
    assert await machine.call(g["add"], -5, 2) == 2**64 - 3     # rax as unsigned


@pytest.mark.trio
async def test_more_than_six_arguments_go_on_the_stack(machine):
    g = build(machine, ARITH)
    args = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000]
    assert await machine.call(g["weigh8"], *args) == sum((i + 1) * a for i, a in enumerate(args))


@pytest.mark.trio
async def test_every_task_returns_whatever_the_last_task_on_its_stack_did(machine):
    # Stacks are recycled, and a task that returned through the return
    # address leaves it in place for the next; one that overwrote it, or
    # had arguments on the stack, does not.
    g = build(machine, ARITH + r"""
__asm__(".globl smash\n.type smash, @function\nsmash: movq $0, (%rsp)\n\tret\n.size smash, .-smash");
""")
    args = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000]
    for _ in range(2):
        assert await machine.call(g["add"], 40, 2) == 42
        assert await machine.call(g["weigh8"], *args) == sum((i + 1) * a for i, a in enumerate(args))
        assert await machine.call(g["add"], 1, 2) == 3
        with pytest.raises(Oops) as oops:
            await machine.call(g["smash"])
        assert oops.value.kind == "null-deref" and oops.value.rip == 0
        assert await machine.call(g["add"], 3, 4) == 7
    assert len(machine.sched._spare_stacks) == 1        # one stack served every task


@pytest.mark.trio
async def test_module_calls_kernel_functions_with_stack_and_variadic_args(machine, monkeypatch):
    seen = {}

    def sum8(ctx, *args):
        seen["args"] = args
        seen["module"] = ctx.module
        return sum(args)

    def vsum(ctx, n):
        values = ctx.va()
        return sum(next(values) for _ in range(n))

    _register(monkeypatch, "test_sum8", sum8, 8)
    _register(monkeypatch, "test_vsum", vsum, 1, variadic=True)
    machine = Machine(Kernel())
    g = build(machine, r"""
long test_sum8(long, long, long, long, long, long, long, long);
long test_vsum(int n, ...);
long eight(void) { return test_sum8(1, 2, 3, 4, 5, 6, 7, 8) * 1000; }
long nine(void) { return test_vsum(9, 1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L, 900L); }
""")
    owner = type("Module", (), {"name": "hello"})()
    assert await machine.call(g["eight"], module=owner) == 36000
    assert seen == {"args": (1, 2, 3, 4, 5, 6, 7, 8), "module": owner}
    assert await machine.call(g["nine"]) == 936


@pytest.mark.trio
async def test_kernel_symbols_and_kallsyms_describe_the_kernel_image(machine):
    symbols = machine.kernel_symbols()
    assert set(api.FUNCTIONS) | set(api.OBJECTS) <= set(symbols)
    table = {name: (addr, size, letter) for addr, size, letter, name in machine.kallsyms()}
    assert table["msleep"][2] == "T" and table["msleep"][0] == symbols["msleep"]
    assert table["jiffies"][2] == "D"
    assert all(KERNEL_TEXT_BASE <= addr for addr in symbols.values())
    assert machine.mem.perms(symbols["msleep"]) == "r-x"
    assert machine.mem.perms(symbols["jiffies"]) == "rw-"


@pytest.mark.trio
async def test_jiffies_is_current_in_guest_memory(machine):
    g = build(machine, r"""
extern volatile unsigned long jiffies;
unsigned long get_jiffies(void) { return jiffies; }
""")
    first = await machine.call(g["get_jiffies"])
    assert first >= INITIAL_JIFFIES
    await trio.sleep(0.02)                 # 5 ticks at HZ=250
    assert await machine.call(g["get_jiffies"]) > first


@pytest.mark.trio
async def test_stack_canary_is_at_gs_40(machine):
    g = build(machine, r"""
unsigned long canary(void) { unsigned long v; __asm__("movq %%gs:40, %0" : "=r"(v)); return v; }
""")
    assert await machine.call(g["canary"]) == machine.stack_canary
    assert machine.mem.read_u64(PER_CPU_BASE + 40) == machine.stack_canary
    assert machine.stack_canary & 0xFF == 0 and machine.stack_canary != 0


@pytest.mark.trio
async def test_stack_protector_failure_panics(machine):
    g = build(machine, r"""
void smash(char *p, long n) { for (long i = 0; i < n; i++) p[i] = 'A'; }
int victim(long n) { char buf[16]; smash(buf, n); return buf[3]; }
""", cflags=("-fstack-protector-all",))
    assert await machine.call(g["victim"], 8) == ord("A")
    with pytest.raises(Oops) as info:
        await machine.call(g["victim"], 40)
    assert info.value.kind == "panic"
    assert info.value.lines[0].startswith(
        "Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: 0xffffffffa")
    assert g["victim"] <= info.value.rip < g["victim"] + 0x80


@pytest.mark.trio
async def test_retpoline_return_thunk_and_fentry_run_as_machine_code(machine):
    g = build(machine, r"""
static long twice(long x) { return 2 * x; }
static long thrice(long x) { return 3 * x; }
long (*volatile table[])(long) = { twice, thrice };
long dispatch(long which, long x) { return table[which](x) + 1; }
""", cflags=("-mindirect-branch=thunk-extern", "-mfunction-return=thunk-extern",
             "-pg", "-mfentry"))
    assert await machine.call(g["dispatch"], 0, 20) == 41
    assert await machine.call(g["dispatch"], 1, 20) == 61


@pytest.mark.trio
async def test_every_gpr_has_an_indirect_thunk(machine):
    symbols = machine.kernel_symbols()
    regs = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp"] + [f"r{i}" for i in range(8, 16)]
    asm = "".join(f"""
.globl via_{r}
via_{r}:
    leaq target(%rip), %{r}
    call __x86_indirect_thunk_{r}
    ret
""" for r in regs if r != "rbp")
    g = build(machine, asm + """
    .globl target
target:
    movq $7, %rax
    ret
""", lang="s")
    for r in regs:
        assert f"__x86_indirect_thunk_{r}" in symbols
        if r != "rbp":
            assert await machine.call(g[f"via_{r}"]) == 7


@pytest.mark.trio
async def test_patching_module_text_takes_effect(machine):
    g = build(machine, ARITH)
    assert await machine.call(g["add"], 1, 2) == 3
    machine.mem.write(g["add"], bytes.fromhex("b802000000c3"))      # mov $2, %eax; ret
    assert await machine.call(g["add"], 1, 2) == 2


# --- faults ------------------------------------------------------------------------

FAULTS = r"""
long peek(long *p) { return *p; }
void poke(long *p, long v) { *p = v; }
long call_ptr(long (*f)(void)) { return f() + 1; }
int divide(int a, int b) { return a / b; }
void bug(void) { __builtin_trap(); }
long recurse(long n) { volatile char pad[512]; pad[0] = n; return recurse(n + 1) + pad[0]; }
long data_word = 0xc3;
"""


async def _oops(machine, addr, *args) -> Oops:
    with pytest.raises(Oops) as info:
        await machine.call(addr, *args, name="insmod")
    return info.value


async def _still_usable(machine):
    g = build(machine, "long forty_two(void) { return 42; }", base=MODULES_VADDR + 0x100000)
    assert await machine.call(g["forty_two"]) == 42
    unmap(machine, g)


@pytest.mark.trio
async def test_null_dereference_oopses_like_linux(machine, kernel):
    kernel.taint_string = lambda: "Tainted: G           O      "
    g = build(machine, FAULTS)
    oops = await _oops(machine, g["peek"], 0)
    assert oops.kind == "null-deref" and oops.taint == "D"
    assert oops.address == 0 and oops.rip == g["peek"]
    assert oops.lines[0] == "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    assert "#PF: supervisor read access in kernel mode" in oops.lines
    assert "#PF: error_code(0x0000) - not-present page" in oops.lines
    assert "Oops: 0000 [#1] PREEMPT SMP NOPTI" in oops.lines
    assert any(line.startswith("CPU: 0 PID: ") and " Comm: insmod Tainted: G           O      " in line
               for line in oops.lines)
    assert f"RIP: 0010:0x{g['peek']:x}" in oops.lines
    assert any(line.startswith("RSP: 0018:ffffc9") and " EFLAGS: " in line for line in oops.lines)
    assert any(line.startswith("RAX: ") and " RBX: " in line and " RCX: " in line for line in oops.lines)
    assert oops.lines[-1] == "---[ end trace 0000000000000000 ]---"
    await _still_usable(machine)


@pytest.mark.trio
async def test_oops_rip_is_symbolized_when_the_kernel_can(kernel):
    machine = Machine(kernel, symbolize=lambda a: f"peek+0x{a & 0xf:x}/0x10 [hello]"
                      if a >> 12 == MODULES_VADDR >> 12 else None)
    g = build(machine, FAULTS)
    oops = await _oops(machine, g["peek"], 8)
    assert "RIP: 0010:peek+0x0/0x10 [hello]" in oops.lines
    assert oops.lines[0].startswith("BUG: kernel NULL pointer dereference, address: 0000000000000008")


@pytest.mark.trio
async def test_write_to_unmapped_kernel_address(machine):
    g = build(machine, FAULTS)
    oops = await _oops(machine, g["poke"], 0xFFFF888800000000, 1)
    assert oops.kind == "page-fault"
    assert oops.lines[:3] == [
        "BUG: unable to handle page fault for address: ffff888800000000",
        "#PF: supervisor write access in kernel mode",
        "#PF: error_code(0x0002) - not-present page"]
    assert "CR2: ffff888800000000" in oops.lines


@pytest.mark.trio
async def test_non_canonical_address_is_a_general_protection_fault(machine):
    g = build(machine, FAULTS)
    oops = await _oops(machine, g["peek"], 0x8000000000000010)
    assert oops.kind == "general-protection"
    assert oops.lines[0] == ("general protection fault, probably for non-canonical address "
                             "0x8000000000000010: 0000 [#1] PREEMPT SMP NOPTI")


@pytest.mark.trio
async def test_write_to_module_text_is_a_permissions_violation(machine):
    g = build(machine, FAULTS)
    oops = await _oops(machine, g["poke"], g["peek"], 0)
    assert oops.lines[1:3] == ["#PF: supervisor write access in kernel mode",
                               "#PF: error_code(0x0003) - permissions violation"]
    assert machine.mem.read_u8(g["peek"]) != 0          # the text is intact
    await _still_usable(machine)


@pytest.mark.trio
async def test_permissions_changed_in_a_batch_hold_once_it_ends(machine):
    """A batch of mapping changes flushes the TLB once, at its end: a page
    guest code wrote while writable (its TLB entry cached) is read-only for
    the next run, as set_memory_ro makes it."""
    g = build(machine, FAULTS)
    page = g["data_word"] & ~0xFFF
    await machine.call(g["poke"], g["data_word"], 7)
    with machine.mem.batch():
        machine.mem.protect(page, 0x1000, "r--")
        machine.mem.protect(page, 0x1000, "r--")
    oops = await _oops(machine, g["poke"], g["data_word"], 8)
    assert "#PF: error_code(0x0003) - permissions violation" in oops.lines
    assert machine.mem.read_u64(g["data_word"]) == 7


@pytest.mark.trio
async def test_executing_data_is_refused_by_nx(machine):
    g = build(machine, FAULTS)
    oops = await _oops(machine, g["call_ptr"], g["data_word"])
    assert oops.rip == g["data_word"]
    assert oops.lines[0] == "kernel tried to execute NX-protected page - exploit attempt? (uid: 0)"
    assert "#PF: supervisor instruction fetch in kernel mode" in oops.lines
    assert "#PF: error_code(0x0011) - permissions violation" in oops.lines


@pytest.mark.trio
async def test_jump_into_freed_code_faults(machine):
    g = build(machine, FAULTS)
    freed = build(machine, "long gone(void) { return 1; }", base=MODULES_VADDR + 0x200000)
    assert await machine.call(g["call_ptr"], freed["gone"]) == 2
    unmap(machine, freed)
    oops = await _oops(machine, g["call_ptr"], freed["gone"])
    assert oops.rip == freed["gone"] and oops.address == freed["gone"]
    assert "#PF: error_code(0x0010) - not-present page" in oops.lines
    assert f"Code: Unable to access opcode bytes at 0x{freed['gone'] - 42:x}." in oops.lines
    # the caller's return address is found on the stack
    assert any(line.startswith(" ? 0xffffffffa") for line in oops.lines)
    await _still_usable(machine)


@pytest.mark.trio
async def test_invalid_opcode_and_divide_error(machine):
    g = build(machine, FAULTS)
    oops = await _oops(machine, g["bug"])
    assert oops.kind == "invalid-opcode"
    assert oops.lines[0] == "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"
    assert machine.mem.read(oops.rip, 2) == b"\x0f\x0b"
    assert any(line.startswith("Code: ") and "<0f> 0b" in line for line in oops.lines)
    oops = await _oops(machine, g["divide"], 1, 0)
    assert oops.kind == "divide-error"
    assert oops.lines[0] == "divide error: 0000 [#2] PREEMPT SMP NOPTI"
    assert await machine.call(g["divide"], 84, 2) == 42


@pytest.mark.trio
async def test_jumping_into_the_middle_of_a_kernel_function_traps(machine):
    g = build(machine, FAULTS)
    oops = await _oops(machine, g["call_ptr"], machine.kernel_symbols()["msleep"] + 5)
    assert oops.kind == "int3"
    assert machine.symbol_name(oops.rip) == "msleep+0x6/0x10"   # past the int3 after its jmp


@pytest.mark.trio
async def test_a_page_fault_leaves_no_trace_in_the_next_task(machine):
    # Unicorn aborts the #PF delivery; without a fresh CPU state the next
    # divide error would be taken for a double fault, ud2 would loop.
    g = build(machine, FAULTS)
    for addr, args, kind in ((g["peek"], (0,), "null-deref"), (g["divide"], (1, 0), "divide-error"),
                             (g["poke"], (0, 0), "null-deref"), (g["bug"], (), "invalid-opcode"),
                             (g["recurse"], (0,), "stack-overflow"), (g["divide"], (1, 0), "divide-error")):
        assert (await _oops(machine, addr, *args)).kind == kind


@pytest.mark.trio
async def test_an_oops_in_code_that_is_then_freed_leaves_no_fault_for_the_next_task(machine):
    # Finding the exact faulting address replays one instruction; Unicorn
    # used to look that code page up again at the next start, after the
    # oopsing module was freed, and the next module's init "faulted" there.
    # The load is mid-block: the replay translates a block of its own.
    dead = build(machine, "long peek(long *p) { long a = (long)p * 3 + 1; return *p + a; }",
                 base=MODULES_VADDR + 0x300000)
    assert (await _oops(machine, dead["peek"], 0)).kind == "null-deref"
    unmap(machine, dead)
    g = build(machine, "long one(void) { return 1; }\nlong two(void) { return one() + 1; }")
    assert await machine.call(g["two"]) == 2


@pytest.mark.trio
async def test_stack_overflow_hits_the_guard_page(machine):
    g = build(machine, FAULTS)
    oops = await _oops(machine, g["recurse"], 0)
    assert oops.kind == "stack-overflow"
    assert oops.lines[0].startswith("BUG: TASK stack guard page was hit at ffffc9")
    assert oops.lines[1] == "stack guard page: 0000 [#1] PREEMPT SMP NOPTI"
    await _still_usable(machine)


@pytest.mark.trio
async def test_guest_fault_in_a_kernel_function_oopses_at_the_caller(machine, monkeypatch):
    _register(monkeypatch, "test_strlen", lambda ctx, s: len(ctx.mem.read_cstr(s)), 1)
    machine = Machine(Kernel())
    g = build(machine, r"""
long test_strlen(const char *);
long measure(const char *s) { return test_strlen(s) + 1; }
static const char hello[] = "hello";
long measure_hello(void) { return measure(hello); }
""")
    assert await machine.call(g["measure_hello"]) == 6
    oops = await _oops(machine, g["measure"], 0)
    assert oops.kind == "null-deref"
    assert oops.lines[0] == "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    assert g["measure"] < oops.rip < g["measure"] + 0x20       # just after the call
    assert machine.mem.read(oops.rip - 5, 1) == b"\xe8"
    assert machine.sched.tasks == {}


@pytest.mark.trio
async def test_watchdog_reports_a_soft_lockup(kernel):
    machine = Machine(kernel, watchdog=0.2)
    g = build(machine, ARITH)
    with pytest.raises(Oops) as info:
        await machine.call(g["spin"], name="insmod")
    oops = info.value
    assert oops.kind == "soft-lockup" and oops.taint == "L"
    assert re.fullmatch(r"watchdog: BUG: soft lockup - CPU#0 stuck for \d+s! \[insmod:\d+\]",
                        oops.lines[0])
    assert g["spin"] <= oops.rip < g["spin"] + 0x10
    assert await machine.call(g["add"], 1, 1) == 2


@pytest.mark.trio
async def test_the_event_loop_runs_while_guest_code_spins(kernel):
    machine = Machine(kernel, watchdog=0.5)
    g = build(machine, ARITH)
    answered = []

    async def spinner():
        with pytest.raises(Oops):
            await machine.call(g["spin"])
        answered.append("spin ended")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(spinner)
        await trio.sleep(0.05)
        answered.append("answered")
    assert answered == ["answered", "spin ended"]


@pytest.mark.trio
async def test_io_ends_a_slice_that_runs_on_alone(monkeypatch):
    """Guest code with the event loop to itself runs on past its slice
    (`preempt.alone_until`), but I/O for another task — a client's request
    — still ends it at the next tick: the request is answered while the
    code spins, and not at the watchdog's soft lockup."""
    alone = threading.Event()

    def watched(budget):
        until = preempt.alone_until(budget)
        if until is not None:
            alone.set()
        return until

    monkeypatch.setattr(cpu, "alone_until", watched)
    machine = Machine(Kernel(), watchdog=3600.0)
    g = build(machine, ARITH)
    ours, theirs = socket.socketpair()
    client = threading.Thread(target=lambda: (alone.wait(), theirs.send(b"request")))
    client.start()
    try:
        with trio.socket.from_stdlib_socket(ours) as server:
            # Not a timing: the bound a run alone would reach without the
            # I/O check (its limit is the loop's next deadline, this one).
            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(machine.call, g["spin"])
                    assert await server.recv(16) == b"request"
                    nursery.cancel_scope.cancel()
    finally:
        alone.set()
        client.join()
        theirs.close()
    assert machine.sched.tasks == {}


@pytest.mark.trio
async def test_guest_code_runs_on_alone_only_if_no_other_task_is_runnable():
    """Tasks woken together run one after the other in one batch: the first
    sees the other still to run (trio's statistics count only the run queue,
    not the rest of the batch), so its guest code would not run on alone."""
    go = trio.Event()
    seen = []

    async def woken():
        await go.wait()
        seen.append(preempt.alone_until(1.0))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(woken)
        nursery.start_soon(woken)
        await trio.testing.wait_all_tasks_blocked()
        go.set()
    assert seen[0] is None
    with trio.CancelScope(deadline=trio.current_time() + 100):
        until, io = preempt.alone_until(1000.0)        # alone: the scope's deadline is the limit
    assert until - time.monotonic() <= 100 and io >= 0
    nursery_less = preempt.alone_until(0.5)
    assert nursery_less is not None and nursery_less[0] - time.monotonic() <= 0.5


@pytest.mark.trio
async def test_cancelled_call_frees_the_task(machine):
    g = build(machine, ARITH)
    with trio.move_on_after(0.05):
        await machine.call(g["spin"])
    assert machine.sched.tasks == {}
    assert await machine.call(g["add"], 2, 3) == 5


def test_guest_fault_carries_address_and_access():
    fault = GuestFault(0x10, "write")
    assert (fault.address, fault.access, fault.present) == (0x10, "write", False)


@pytest.mark.trio
async def test_a_kernel_call_runs_once_even_when_a_slice_ends_inside_it():
    """The slice timer may stop emulation after a kernel call's hook has run
    but before its stub returns; resuming must not make the call again (seen
    as kfree of a freed pointer and a leak)."""
    from kloaderd.kernel.kernel import Kernel as RealKernel
    kernel = RealKernel()
    churn = build(kernel.machine, r"""
        void *__kmalloc(unsigned long size, unsigned int flags);
        void kfree(const void *p);
        int _printk(const char *fmt, ...);
        long churn(long n)
        {
            long i;
            for (i = 0; i < n; i++) {
                kfree(__kmalloc(65536, 0xcc0));
                _printk("\001" "6" "call %ld\n", i);
            }
            return i;
        }
        """)["churn"]
    booted = kernel.slab.usage(None)          # what the kernel allocated as it booted (its kobjects)
    assert await kernel.machine.call(churn, 3000) == 3000
    lines = [r.text for r in kernel.log.records()]
    assert lines == [f"call {i}" for i in range(3000)]
    assert kernel.slab.usage(None) == booted


@pytest.mark.trio
@pytest.mark.parametrize("made", ["with the image", "provided later"])
async def test_a_slice_ending_at_the_first_stubs_entry_still_makes_the_call(monkeypatch, made):
    """Issue 13, defect 1: a fresh task's %r11 is 0, and so was the "last
    completed call" token before any call had completed, so a slice that
    ended on the first stub's entry (before its hook ran) skipped the call.
    A block hook on the stub stops emulation exactly there, every time.
    The same holds for a stub made after the image (`Kernel.provide`)."""
    from unicorn import UC_HOOK_BLOCK
    calls = []

    def answer(ctx):
        calls.append(ctx.task.pid)
        return 42

    answer_fn = api.KernelFunction("test_answer", answer, 0, False, "long test_answer(void)")
    if made == "with the image":
        monkeypatch.setitem(api.FUNCTIONS, "test_answer", answer_fn)
    machine = Machine(Kernel())
    if made == "provided later":
        machine.provide(answer_fn)
    g = build(machine, "long test_answer(void);\n"
                       "long first(void) { return test_answer() + 1; }")
    stub = machine.kernel_symbols()["test_answer"]
    stops = []

    def stop_once(uc, address, _size, _data):
        if not stops:
            stops.append(address)
            uc.emu_stop()

    block = machine.uc.hook_add(UC_HOOK_BLOCK, stop_once, begin=stub, end=stub)
    assert await machine.call(g["first"]) == 43
    assert stops == [stub] and len(calls) == 1
    # And a slice ending after the hook, before the stub's jump, is not a second call.
    stops.clear()
    machine.uc.hook_del(block)
    machine.uc.hook_add(UC_HOOK_CODE, stop_once, begin=stub, end=stub)
    assert await machine.call(g["first"]) == 43
    assert stops == [stub] and len(calls) == 2


@pytest.mark.trio
async def test_one_code_hook_dispatches_every_stub_made_now_or_later(monkeypatch):
    """Issue 13: a second UC_HOOK_CODE hook makes Unicorn lose kernel calls
    when a slice ends, and not-emulated exports (every `--kernel` profile)
    and provided functions each added one.  One hook, made with the kernel
    image, must dispatch them all; the shared return path and plain machine
    code stay outside it (they run on every call, uninstrumented)."""
    from unicorn import Uc
    from kloaderd.kernel.kernel import Kernel as RealKernel
    code_hooks = []
    add = Uc.hook_add

    def counting(uc, htype, callback, user_data=None, begin=1, end=0, *rest):
        if htype & UC_HOOK_CODE:
            code_hooks.append((begin, end))
        return add(uc, htype, callback, user_data, begin, end, *rest)

    monkeypatch.setattr(Uc, "hook_add", counting)
    kernel = RealKernel()
    machine = kernel.machine
    missing = machine.add_not_emulated(["kloader_test_not_emulated"])["kloader_test_not_emulated"]
    calls = []
    kernel.provide("kloader_test_provided", lambda ctx, x: calls.append(x) or x * 3, nargs=1)
    (begin, end), = code_hooks
    symbols = machine.kernel_symbols()
    assert not begin <= machine.stub_return <= end
    for plain in ("__fentry__", "__x86_return_thunk"):
        assert not begin <= symbols[plain] <= end
    for stub in (symbols["_printk"], symbols["__x86_indirect_thunk_rax"], missing,
                 symbols["kloader_test_provided"]):
        assert begin <= stub <= end < MODULES_VADDR
    # And each kind dispatches through it.
    g = build(machine, r"""
        long kloader_test_provided(long x);
        void kloader_test_not_emulated(void);
        int _printk(const char *fmt, ...);
        long provided(long x) { _printk("\001" "6" "provided %ld\n", x); return kloader_test_provided(x); }
        long missing(void) { kloader_test_not_emulated(); return 0; }
        """)
    assert await machine.call(g["provided"], 14) == 42 and calls == [14]
    assert [r.text for r in kernel.log.records()][-1] == "provided 14"
    with pytest.raises(Oops, match="kloader_test_not_emulated"):
        await machine.call(g["missing"])
    assert len(code_hooks) == 1



JIFFIES_WAIT = r"""
extern volatile unsigned long jiffies;
/* raid6's and xor's benchmarks time themselves this way: no kernel call,
   so only the timer interrupt can move jiffies.  Twenty jiffies outlast a
   slice several times over. */
long twenty_ticks(void)
{
    unsigned long j0 = jiffies;
    while (jiffies - j0 < 20)
        __asm__ volatile("pause");
    return jiffies - j0;
}
"""


@pytest.mark.trio
async def test_jiffies_move_while_guest_code_runs_on_alone(monkeypatch):
    """Guest code that has the daemon to itself runs on past its slice, and
    the tick still advances jiffies: a loop waiting for them to change
    returns, instead of spinning into the watchdog's soft lockup (as
    raid6_pq's init did while runs alone saw a frozen jiffies)."""
    alone = []

    def watched(budget):
        until = preempt.alone_until(budget)
        alone.append(until is not None)
        return until

    monkeypatch.setattr(cpu, "alone_until", watched)
    machine = Machine(Kernel(), watchdog=3600.0)
    g = build(machine, JIFFIES_WAIT)
    # Not a timing: the bound a frozen jiffies would spin to (the watchdog is
    # an hour), so a regression fails here instead of hanging the suite.
    with trio.fail_after(60):
        assert await machine.call(g["twenty_ticks"]) >= 20
    assert any(alone)
