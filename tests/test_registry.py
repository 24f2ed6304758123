"""The registrations facility (kloaderd/kernel/registry.py): what modules
registered, per subsystem, undone by unregister, reported and made inert
when a module is freed with it still registered."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kloaderd.embed import Problems
from kloaderd.kernel.kallsyms import Kallsyms
from kloaderd.kernel.printk import KERN_ERR, LogBuffer
from kloaderd.kernel.registry import Registrations


class FakeModule(SimpleNamespace):
    """Only what the registries read of a module, and a module's identity."""
    __eq__ = object.__eq__
    __hash__ = object.__hash__


def fake_module(name: str, core: int, size: int = 0x1000, init: int = 0, init_size: int = 0):
    layout = SimpleNamespace(core=SimpleNamespace(size=size), init=SimpleNamespace(size=init_size))
    return FakeModule(name=name, core_base=core, init_base=init, layout=layout, init_freed=False)


@pytest.fixture
def world():
    a = fake_module("a", 0xFFFFFFFFC0000000, init=0xFFFFFFFFC0100000, init_size=0x100)
    b = fake_module("b", 0xFFFFFFFFC0010000)
    ksyms = Kallsyms([])
    for mod in (a, b):
        ksyms.add_module(mod)
    return SimpleNamespace(a=a, b=b, ksyms=ksyms, regs=Registrations(LogBuffer(), ksyms.module_at))


def test_add_find_remove(world):
    crypto = world.regs.registry("crypto")
    assert world.regs.registry("crypto") is crypto          # one registry per subsystem
    entry = crypto.add("sha1-generic", 'crypto algorithm "sha1" (sha1-generic)',
                       owner=world.a, address=world.a.core_base + 0x40, data={"prio": 100})
    assert crypto.find("sha1-generic") is entry and "sha1-generic" in crypto
    with pytest.raises(KeyError):
        crypto.add("sha1-generic", "again", owner=world.b)
    assert world.regs.of_module(world.a) == [entry]
    assert entry.describe() == {"subsystem": "crypto", "address": world.a.core_base + 0x40,
                                "what": 'crypto algorithm "sha1" (sha1-generic)'}
    assert crypto.remove("sha1-generic") is entry
    assert crypto.remove("sha1-generic") is None
    assert world.regs.of_module(world.a) == []


def test_module_at_covers_core_and_unfreed_init(world):
    regs, a, b = world.regs, world.a, world.b
    assert regs.module_at(a.core_base) is a
    assert regs.module_at(a.core_base + 0xFFF) is a
    assert regs.module_at(b.core_base + 8) is b
    assert regs.module_at(a.init_base + 4) is a
    a.init_freed = True
    world.ksyms.remove_init(a)          # as free_module_init does
    assert regs.module_at(a.init_base + 4) is None
    assert regs.module_at(0xFFFF888000000000) is None


def test_a_registration_pointing_into_a_module_is_its_leftover(world):
    """A kernel-owned entry whose callback lies in module b is b's to clean up."""
    chain = world.regs.registry("notifier")
    entry = chain.add((1, 2), "notifier", owner=None, address=0xFFFF888000001000,
                      points_to=(0, world.b.core_base + 0x20))
    assert world.regs.of_module(world.b) == [entry]
    assert world.regs.of_module(world.a) == []


def test_release_reports_and_makes_inert(world):
    seen = []
    reg = world.regs.registry("crypto")
    reg.add("x", 'crypto algorithm "x" (x-generic)', owner=world.a, on_leftover=seen.append)
    reg.add("y", 'crypto algorithm "y" (y-generic)', owner=world.b)
    left = world.regs.release_module(world.a)
    assert [e.key for e in left] == ["x"] and seen == left
    assert reg.find("x") is None and reg.find("y") is not None
    records = world.regs.log.records()
    assert [(r.level, r.module, r.text) for r in records] == [
        (KERN_ERR, "a", 'a: leaked registration: crypto algorithm "x" (x-generic)')]
    # the plugin and embed count it as a leak
    assert Problems.from_log(records).leaks == (records[0].text,)
    assert world.regs.release_module(world.a) == []       # reported once


@pytest.mark.trio
async def test_a_kernel_shows_registrations_in_module_info_and_reclaims_them():
    from pathlib import Path

    from kloaderd.kernel.kernel import Kernel

    kernel = Kernel()
    ko = (Path(__file__).parent.parent / "fixtures" / "hello.ko").read_bytes()
    await kernel.init_module(ko)
    mod = kernel.get_module("hello")
    assert kernel.module_info("hello")["registrations"] == []
    kernel.registrations.registry("test").add("k", "test entry", owner=None,
                                              points_to=(mod.core_base + 1,))
    assert kernel.module_info("hello")["registrations"] == [
        {"subsystem": "test", "what": "test entry", "address": 0}]
    await kernel.delete_module("hello")
    assert "hello: leaked registration: test entry" in [r.text for r in kernel.log.records()]
    assert not kernel.registrations.registry("test").entries()
