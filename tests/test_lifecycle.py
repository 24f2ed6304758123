"""The FAQ's semantics, in process: loading, references, removal, and the
races of the 2002 threads.  Every test runs real fixture modules on the
emulated CPU."""

from __future__ import annotations

import errno
import re

import pytest
import trio
import trio.testing

from kloaderd.embed import Problems
from kloaderd.errors import KernelError
from kloaderd.uapi import MODULE_INIT_IGNORE_MODVERSIONS, MODULE_INIT_IGNORE_VERMAGIC
from lifecycle_helpers import footprint, ko, new_kernel, texts

pytestmark = pytest.mark.trio


async def expect_error(code: int, coro) -> KernelError:
    with pytest.raises(KernelError) as info:
        await coro
    assert info.value.errno == code, info.value.message
    return info.value


# -- loading -------------------------------------------------------------------

async def test_hello_runs_init_and_exit():
    kernel = new_kernel()
    assert await kernel.init_module(ko("hello")) == "hello"
    assert "Hello, world" in texts(kernel)
    info = kernel.module_info("hello")
    assert info["state"] == "live"
    assert info["refcnt"] == 0 and info["holders"] == []
    assert info["init_size"] == 0 and info["core_size"] > 0
    assert info["address"] >= 0xFFFFFFFFA0000000
    assert info["version"] == "1.0"
    assert ["description", "Says hello on load and goodbye on unload"] in info["modinfo"]
    assert "O" in info["taints"]        # out of tree, as Linux says of every external module
    await kernel.delete_module("hello")
    assert texts(kernel)[-1] == "Goodbye, world"
    assert kernel.modules() == []
    assert kernel.module_memory == 0


async def test_loading_twice_is_eexist_and_unknown_is_enoent():
    kernel = new_kernel()
    await kernel.init_module(ko("hello"))
    await expect_error(errno.EEXIST, kernel.init_module(ko("hello")))
    await expect_error(errno.ENOENT, kernel.delete_module("nosuch"))
    await expect_error(errno.ENOENT, kernel.delete_module("nosuch", wait=True))


async def test_bad_image_is_enoexec_and_leaves_nothing():
    kernel = new_kernel()
    before = footprint(kernel)
    await expect_error(errno.ENOEXEC, kernel.init_module(b"\x7fELF" + b"\0" * 100))
    await expect_error(errno.EFBIG, new_kernel(max_image_size=1000).init_module(ko("hello")))
    assert footprint(kernel) == before


async def test_every_unknown_symbol_is_logged_and_nothing_remains():
    kernel = new_kernel()
    before = footprint(kernel)
    err = await expect_error(errno.ENOENT, kernel.init_module(ko("unknownsym")))
    unknown = [t for t in texts(kernel) if "Unknown symbol" in t]
    assert len(unknown) >= 2
    assert all(t.startswith("unknownsym: Unknown symbol ") and t.endswith("(err -2)")
               for t in unknown)
    assert "Unknown symbol" in err.message
    assert footprint(kernel) == before


async def test_dependency_references_and_holders():
    kernel = new_kernel()
    await kernel.init_module(ko("exporter"))
    await kernel.init_module(ko("user"))
    exporter = kernel.module_info("exporter")
    assert exporter["holders"] == ["user"] and exporter["refcnt"] == 1
    assert exporter["references"] == [
        {"owner": "module user (uses its symbols)", "kind": "dependency", "count": 1}]
    assert kernel.module_info("user")["uses"] == ["exporter"]
    err = await expect_error(errno.EWOULDBLOCK, kernel.delete_module("exporter"))
    assert err.message == "Module exporter is in use by: user"
    # force does not override a dependency
    await expect_error(errno.EWOULDBLOCK, kernel.delete_module("exporter", force=True))
    await kernel.delete_module("user")
    assert kernel.module_info("exporter")["refcnt"] == 0
    await kernel.delete_module("exporter")
    assert kernel.modules() == []


async def test_gpl_only_exports_are_invisible_to_proprietary_modules():
    kernel = new_kernel()
    await kernel.init_module(ko("exporter"))
    before = footprint(kernel)
    await expect_error(errno.ENOENT, kernel.init_module(ko("user_proprietary")))
    assert any("user_proprietary: Unknown symbol exp_gpl_mul (err -2)" == t
               for t in texts(kernel))
    assert footprint(kernel) == before
    await kernel.init_module(ko("user_plain_proprietary"))
    assert "P" in kernel.module_info("user_plain_proprietary")["taints"]
    assert "P" in kernel.taints
    assert any("module license 'Proprietary' taints kernel." in t for t in texts(kernel))


async def test_duplicate_export_is_enoexec():
    kernel = new_kernel()
    await kernel.init_module(ko("dup_a"))
    err = await expect_error(errno.ENOEXEC, kernel.init_module(ko("dup_b")))
    assert "dup_b: exports duplicate symbol dup_sym (owned by dup_a)" in err.message
    assert [m["name"] for m in kernel.modules()] == ["dup_a"]


async def test_vermagic_mismatch_and_force():
    kernel = new_kernel()
    err = await expect_error(errno.ENOEXEC, kernel.init_module(ko("badmagic")))
    assert "version magic '5.10.0 SMP mod_unload ' should be" in err.message
    assert await kernel.init_module(ko("badmagic"), flags=MODULE_INIT_IGNORE_VERMAGIC)
    assert "F" in kernel.taints and "F" in kernel.module_info("badmagic")["taints"]


async def test_modversions_crc_mismatch_and_force():
    kernel = new_kernel()
    before = footprint(kernel)
    await expect_error(errno.EINVAL, kernel.init_module(ko("badcrc")))
    assert any("badcrc: disagrees about version of symbol" in t for t in texts(kernel))
    assert footprint(kernel) == before
    await kernel.init_module(ko("badcrc"), flags=MODULE_INIT_IGNORE_MODVERSIONS)
    assert "F" in kernel.taints


async def test_common_symbols_are_refused():
    kernel = new_kernel()
    err = await expect_error(errno.ENOEXEC, kernel.init_module(ko("common")))
    assert "please compile with -fno-common" in err.message


# -- init -------------------------------------------------------------------------

async def test_failing_init_returns_its_errno_and_is_unwound():
    kernel = new_kernel()
    before = footprint(kernel)
    await expect_error(errno.ENODEV, kernel.init_module(ko("initfail")))
    await expect_error(errno.EIO, kernel.init_module(ko("initfail"), "err=-5"))
    assert footprint(kernel) == before


async def test_positive_init_return_warns_and_loads():
    kernel = new_kernel()
    await kernel.init_module(ko("initfail"), "err=3")
    assert any("'initfail'->init suspiciously returned 3" in t for t in texts(kernel))
    assert kernel.module_info("initfail")["state"] == "live"


async def test_half_initialised_module_unregisters_before_failing():
    kernel = new_kernel()
    await kernel.init_module(ko("exporter"))
    await expect_error(errno.EIO, kernel.init_module(ko("halfinit")))
    log = texts(kernel)
    assert any("registered widget" in t for t in log)
    assert any("unregistered widget" in t for t in log)
    assert kernel.module_info("exporter")["refcnt"] == 0
    await kernel.delete_module("exporter")
    assert "exporter: unloaded with widgets still registered" not in texts(kernel)


async def test_init_sections_are_freed_after_init():
    kernel = new_kernel()
    await kernel.init_module(ko("initsec"))
    info = kernel.module_info("initsec")
    assert info["init_size"] == 0
    assert not any(name.startswith(".init") for name in info["sections"])
    stale = kernel.symbols.get("initsec_call_stale")
    mod = kernel.find_module("initsec")
    # calling the stored pointer into freed init text oopses, the kernel survives
    from kloaderd.kernel.oops import Oops
    with pytest.raises(Oops):
        await kernel.machine.call(stale.address, module=mod, name="test")
    await kernel.delete_module("initsec")


# -- removal ----------------------------------------------------------------------

async def test_no_exit_means_permanent_unless_forced():
    kernel = new_kernel()
    await kernel.init_module(ko("noexit"))
    await expect_error(errno.EBUSY, kernel.delete_module("noexit"))
    assert "R" not in kernel.taints
    await kernel.delete_module("noexit", force=True)
    assert "R" in kernel.taints
    assert kernel.modules() == []


async def test_session_reference_blocks_removal_without_wait():
    kernel = new_kernel()
    await kernel.init_module(ko("hello"))
    owner = kernel.new_owner("session test[1]")
    kernel.try_module_get("hello", owner)
    err = await expect_error(errno.EWOULDBLOCK, kernel.delete_module("hello"))
    assert err.message == "Module hello is in use"
    info = kernel.module_info("hello")
    assert info["refcnt"] == 1
    assert info["references"] == [{"owner": "session test[1]", "kind": "session", "count": 1}]
    kernel.module_put("hello", owner)
    await expect_error(errno.EINVAL, _sync(kernel.module_put, "hello", owner))
    await kernel.delete_module("hello")


async def _sync(fn, *args):
    return fn(*args)


async def test_wait_goes_going_at_once_and_last_put_completes_it():
    kernel = new_kernel()
    await kernel.init_module(ko("hello"))
    a, b = kernel.new_owner("a"), kernel.new_owner("b")
    kernel.try_module_get("hello", a)
    kernel.try_module_get("hello", b)
    done = trio.Event()

    async def remover():
        await kernel.delete_module("hello", wait=True)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(remover)
        await trio.testing.wait_all_tasks_blocked()
        assert kernel.module_info("hello")["state"] == "going"
        with pytest.raises(KernelError) as info:      # no new references while going
            kernel.try_module_get("hello", kernel.new_owner("c"))
        assert info.value.errno == errno.EBUSY
        kernel.module_put("hello", a)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()                      # one reference still held
        kernel.module_put("hello", b)
    assert done.is_set()
    assert texts(kernel).count("Goodbye, world") == 1
    assert kernel.modules() == []


async def test_wait_given_up_returns_module_to_live():
    kernel = new_kernel()
    await kernel.init_module(ko("hello"))
    owner = kernel.new_owner("holder")
    kernel.try_module_get("hello", owner)
    # by timeout
    err = await expect_error(errno.ETIMEDOUT, kernel.delete_module("hello", wait=True,
                                                                    timeout=0.05))
    assert "stays loaded" in err.message
    assert kernel.module_info("hello")["state"] == "live"
    # by cancellation (a client that disconnects)
    with trio.move_on_after(0.05):
        await kernel.delete_module("hello", wait=True)
    assert kernel.module_info("hello")["state"] == "live"
    kernel.try_module_get("hello", kernel.new_owner("new"))   # live again: gets succeed
    assert "Goodbye, world" not in texts(kernel)


async def test_session_end_drops_its_references_and_wakes_waiter():
    kernel = new_kernel()
    await kernel.init_module(ko("hello"))
    owner = kernel.new_owner("dying client")
    for _ in range(3):
        kernel.try_module_get("hello", owner)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: kernel.delete_module("hello", wait=True))
        await trio.testing.wait_all_tasks_blocked()
        kernel.release_owner(owner)
    assert kernel.modules() == []


async def test_force_removes_despite_references():
    kernel = new_kernel()
    await kernel.init_module(ko("hello"))
    kernel.try_module_get("hello", kernel.new_owner("stuck"))
    await kernel.delete_module("hello", force=True)
    assert "R" in kernel.taints
    assert kernel.modules() == []
    assert texts(kernel)[-1] == "Goodbye, world"


# -- the races of the seeds ----------------------------------------------------------
#
# The races below run on trio's autojump clock (pytest-trio's `autojump_clock`):
# time moves only when every task is waiting, so an init's 300 ms sleep cannot
# run out while the test is still checking what happens during it, however
# slowly a busy host runs the test, and a deadline fails only a real hang.

async def test_rmmod_and_try_module_get_during_sleeping_init(autojump_clock):
    kernel = new_kernel()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel.init_module, ko("sleepy"), "sleep_ms=300")
        await trio.testing.wait_all_tasks_blocked()
        assert kernel.module_info("sleepy")["state"] == "coming"
        await expect_error(errno.EBUSY, kernel.delete_module("sleepy"))
        await expect_error(errno.EBUSY, _sync(kernel.try_module_get, "sleepy",
                                              kernel.new_owner("early")))
        # the kernel keeps answering while init sleeps
        assert [m["name"] for m in kernel.modules()] == ["sleepy"]
        await kernel.init_module(ko("hello"))
    assert kernel.module_info("sleepy")["state"] == "live"


async def test_try_get_coming_option_admits_coming_modules(autojump_clock):
    kernel = new_kernel(try_get_coming=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel.init_module, ko("sleepy"), "sleep_ms=200")
        await trio.testing.wait_all_tasks_blocked()
        kernel.try_module_get("sleepy", kernel.new_owner("early"))
    assert kernel.module_info("sleepy")["refcnt"] == 1


async def test_concurrent_loads_of_one_name(autojump_clock):
    kernel = new_kernel()
    results = []

    async def load():
        try:
            results.append(await kernel.init_module(ko("sleepy"), "sleep_ms=200"))
        except KernelError as e:
            results.append(e.errno)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(load)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(load)
    assert sorted(map(str, results)) == sorted(["sleepy", str(errno.EEXIST)])


async def test_concurrent_load_of_failing_module_is_ebusy(autojump_clock):
    kernel = new_kernel()
    results = []

    async def load(params):
        try:
            results.append(await kernel.init_module(ko("initfail"), params))
        except KernelError as e:
            results.append(e.errno)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(load, "delay_ms=200")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(load, "err=0")
    assert sorted(results) == sorted([errno.EBUSY, errno.ENODEV])


async def test_dependent_load_waits_for_coming_exporter(autojump_clock):
    kernel = new_kernel()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel.init_module, ko("sleepy"), "sleep_ms=300")
        await trio.testing.wait_all_tasks_blocked()
        await kernel.init_module(ko("sleepy_user"))
        assert kernel.module_info("sleepy")["state"] == "live"
    assert kernel.module_info("sleepy")["holders"] == ["sleepy_user"]


async def test_dependent_load_gives_up_on_slow_exporter(autojump_clock):
    kernel = new_kernel(exporter_wait=0.1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel.init_module, ko("sleepy"), "sleep_ms=1000")
        await trio.testing.wait_all_tasks_blocked()
        await expect_error(errno.EBUSY, kernel.init_module(ko("sleepy_user")))
    assert any("sleepy_user: gave up waiting for init of module sleepy." in t
               for t in texts(kernel))
    assert any("sleepy_user: Unknown symbol sleepy_value (err -16)" in t for t in texts(kernel))


async def test_module_code_references_and_symbol_get():
    kernel = new_kernel()
    await kernel.init_module(ko("exporter"))
    await kernel.init_module(ko("getter"))
    refs = kernel.module_info("exporter")["references"]
    assert {"owner": "symbol_get by getter", "kind": "symbol_get", "count": 1} in refs
    await kernel.delete_module("getter")
    assert kernel.module_info("exporter")["refcnt"] == 0


# -- parameters --------------------------------------------------------------------

async def test_parameters_of_every_type():
    kernel = new_kernel()
    await kernel.init_module(ko("params"), 'pint=-7 pshort=-300 pbool=n pcharp="hi there" '
                                           "parray=1,2,3 phexint=0x1f pstring=abc unknown-one=5")
    params = kernel.module_info("params")["params"]
    assert params["pint"] == "-7" and params["pshort"] == "-300"
    assert params["pbool"] == "N" and params["pcharp"] == "hi there"
    assert params["parray"] == "1,2,3" and params["phexint"] == "0x00001f"
    assert params["pstring"] == "abc" and params["answer"] == "42"
    assert "puint" not in params                        # mode 0: not in sysfs
    assert "params: pcharp=hi there" in texts(kernel)   # the module saw the values
    assert "params: parray_count=3" in texts(kernel)
    assert "params: unknown parameter 'unknown-one' ignored" in texts(kernel)


@pytest.mark.parametrize("args, code, message", [
    ("pbyte=256", errno.ERANGE, "params: `256' invalid for parameter `pbyte'"),
    ("pint=abc", errno.EINVAL, "params: `abc' invalid for parameter `pint'"),
    ("pshort=-32769", errno.ERANGE, "params: `-32769' invalid for parameter `pshort'"),
    ("parray=1,2,3,4,5", errno.EINVAL, "parray: can only take 4 arguments"),
    ("pstring=0123456789abcdef", errno.ENOSPC, "pstring: string doesn't fit in 15 chars."),
    ("pstring=0123456789abcdef", errno.ENOSPC,
     "params: `0123456789abcdef' too large for parameter `pstring'"),
    ("pint", errno.EINVAL, "params: `' invalid for parameter `pint'"),
])
async def test_bad_parameter_values_fail_the_load(args, code, message):
    kernel = new_kernel()
    before = footprint(kernel)
    await expect_error(code, kernel.init_module(ko("params"), args))
    assert message in texts(kernel)
    assert footprint(kernel) == before


async def test_runtime_parameters_follow_permissions():
    kernel = new_kernel()
    await kernel.init_module(ko("params"))
    kernel.param_set("params", "pint", "123")
    assert kernel.param_get("params", "pint") == "123"
    with pytest.raises(KernelError) as info:
        kernel.param_set("params", "pbyte", "1")          # 0444
    assert info.value.errno == errno.EACCES
    for missing in ("puint", "nosuch"):                  # mode 0, and no such parameter
        with pytest.raises(KernelError) as info:
            kernel.param_get("params", missing)
        assert info.value.errno == errno.ENOENT
    with pytest.raises(KernelError) as info:
        kernel.param_set("params", "pint", "x1")
    assert info.value.errno == errno.EINVAL
    assert kernel.param_get("params", "pint") == "123"


# -- module code behaving badly ----------------------------------------------------

@pytest.mark.parametrize("kind, first_line, taint", [
    ("null", "BUG: kernel NULL pointer dereference, address: 0000000000000000", "D"),
    ("rodata", "BUG: unable to handle page fault for address:", "D"),
    ("bug", "invalid opcode: 0000 [#1] PREEMPT SMP", "D"),
    ("div0", "divide error: 0000 [#1] PREEMPT SMP", "D"),
    ("stack", "BUG: TASK stack guard page was hit at", "D"),
    ("spin", "watchdog: BUG: soft lockup - CPU#0 stuck for", "L"),
])
async def test_an_oopsing_init_fails_with_efault_and_is_unwound(kind, first_line, taint):
    kernel = new_kernel(watchdog=0.3)
    before = footprint(kernel)
    err = await expect_error(errno.EFAULT, kernel.init_module(ko("faults"), f"kind={kind}"))
    assert "faults: init oopsed" in err.message
    log = texts(kernel)
    assert any(t.startswith(first_line) for t in log), log
    rip = [t for t in log if t.startswith("RIP: 0010:")]
    assert len(rip) == 1 and re.fullmatch(r"RIP: 0010:\w+\+0x[0-9a-f]+/0x[0-9a-f]+ \[faults\]",
                                          rip[0]), rip
    assert "Modules linked in: faults(O+)" in log     # still COMING when it oopsed
    assert taint in kernel.taints
    assert footprint(kernel) == before
    # the kernel carries on
    await kernel.init_module(ko("hello"))
    assert kernel.module_info("hello")["state"] == "live"


async def test_leaks_are_reported_and_reclaimed():
    kernel = new_kernel()
    await kernel.init_module(ko("leaky"))
    assert kernel.slab.usage("leaky") == (1024, 2)
    await kernel.delete_module("leaky")
    assert "leaky: leaked 1024 bytes in 2 allocations" in texts(kernel)
    assert kernel.slab.usage("leaky") == (0, 0)


async def test_double_free_is_reported_without_corrupting_the_heap():
    kernel = new_kernel()
    await kernel.init_module(ko("leaky"), "double_free=1")
    assert any("Object already free" in t for t in texts(kernel))
    found = Problems.from_log(kernel.log.records()).sanitizer        # SLUB's report is a problem
    assert len(found) == 1 and found[0].startswith("BUG kmalloc-") and found[0].endswith(": Object already free")
    await kernel.delete_module("leaky")
    await kernel.init_module(ko("hello"))       # the heap still works


async def test_a_module_that_allocates_until_refused():
    kernel = new_kernel(module_heap_limit=1 << 20)
    await kernel.init_module(ko("leaky"), "hog=1")
    assert any(t.startswith("leaky: kmalloc failed after ") for t in texts(kernel))
    assert any(t.startswith("leaky: freed all ") for t in texts(kernel))


async def test_sleeping_in_a_spinlock_is_reported():
    kernel = new_kernel()
    await kernel.init_module(ko("locks"), "sleep_in_spinlock=1")
    assert any(t.startswith("BUG: scheduling while atomic: insmod/") for t in texts(kernel))


async def test_module_limits():
    kernel = new_kernel(max_modules=1)
    await kernel.init_module(ko("hello"))
    await expect_error(errno.ENOSPC, kernel.init_module(ko("exporter")))
    kernel = new_kernel(max_module_memory=4096)
    err = await expect_error(errno.ENOMEM, kernel.init_module(ko("hello")))
    assert "max_module_memory" in err.message
    assert kernel.module_memory == 0


async def test_shutdown_removes_users_before_what_they_use():
    kernel = new_kernel()
    for name in ("exporter", "user", "hello"):
        await kernel.init_module(ko(name))
    await kernel.shutdown()
    log = texts(kernel)
    assert kernel.modules() == []
    assert log.index("user: unloaded") < log.index("exporter: unloaded")
    assert "Goodbye, world" in log


async def test_loading_a_namesake_that_is_going_is_ebusy_at_once(autojump_clock):
    kernel = new_kernel()
    await kernel.init_module(ko("hello"))
    kernel.try_module_get("hello", kernel.new_owner("holder"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: kernel.delete_module("hello", wait=True))
        await trio.testing.wait_all_tasks_blocked()
        with trio.fail_after(1):      # must not wait for a remover that is itself waiting
            await expect_error(errno.EBUSY, kernel.init_module(ko("hello")))
        nursery.cancel_scope.cancel()
    assert kernel.module_info("hello")["state"] == "live"


async def test_shutdown_interrupts_an_init_that_sleeps_forever(autojump_clock):
    kernel = new_kernel()
    before = footprint(kernel)
    async with trio.open_nursery() as nursery:
        async def load():
            await expect_error(errno.EINTR, kernel.init_module(ko("forever")))
        nursery.start_soon(load)
        await trio.testing.wait_all_tasks_blocked()
        assert kernel.module_info("forever")["state"] == "coming"
        await expect_error(errno.EBUSY, kernel.delete_module("forever"))
        with trio.fail_after(5):
            await kernel.shutdown()
    assert footprint(kernel) == before
    await expect_error(errno.ESHUTDOWN, kernel.init_module(ko("hello")))
