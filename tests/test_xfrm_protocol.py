"""IPsec protocol handlers (xfrm4/xfrm6_protocol_register) under the Debian
6.1 profile, with the real ESP, AH and IPComp modules: each handler is
recorded, the kernel puts its own IP protocol handler in place for the
protocol while it has handlers and takes it away after the last, and a
handler its module leaves behind is reported and unlinked.  They skip,
saying why, where the corpus is absent."""

from __future__ import annotations

import dataclasses

import pytest
import trio

from kloaderd.kernel.kernel import Kernel, KernelOptions
from kloaderd.net.ipv4.xfrm4_protocol import XFRM4, XfrmProtocols
from kloaderd.net.xfrm.xfrm_state import XFRM_MGR, KeyManagers
from realkernel import corpus, find_module as module

IPSEC = ("xfrm_algo", "esp4", "ah4", "xfrm_ipcomp", "ipcomp", "esp6", "ah6")


def test_esp_ah_and_ipcomp_take_their_protocols_and_give_them_back():
    modules, build = corpus("6.1")
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        for name in IPSEC:
            await kernel.init_module(module(modules, name))
        assert [r["what"] for r in kernel.module_info("esp4")["registrations"]] == [
            "xfrm type esp for family 2", "xfrm4 esp handler esp4_protocol [esp4], priority 0"]
        assert "xfrm6 ah handler ah6_protocol [ah6], priority 0" in [
            r["what"] for r in kernel.module_info("ah6")["registrations"]]
        inet = kernel.registrations.registry("inet_protocol")
        assert {50, 51, 108} <= {e.key for e in inet.entries()}       # the kernel's handlers
        assert {e.key for e in kernel.registrations.registry("inet6_protocol").entries()} >= {50, 51}
        esp4 = kernel.subsystem(XfrmProtocols).handlers["xfrm4", 50][0]
        assert kernel.mem.read_u64(esp4 + kernel.layouts[XFRM4].next) == 0                  # the only one: next is NULL
        for name in reversed(IPSEC):
            await kernel.delete_module(name)
        assert not {50, 51, 108} & {e.key for e in inet.entries()}
        assert not {50, 51} & {e.key for e in kernel.registrations.registry("inet6_protocol").entries()}
        await kernel.shutdown()
    trio.run(main)
    assert not [r.text for r in kernel.log.records() if "leaked" in r.text or "Oops" in r.text]


def test_a_handler_left_registered_is_reported_and_its_protocol_freed():
    modules, build = corpus("6.1")
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        await kernel.init_module(module(modules, "xfrm_algo"))
        await kernel.init_module(module(modules, "esp4"))
        mod = kernel.get_module("esp4")
        mod.linked = dataclasses.replace(mod.linked, exit_addr=None)      # exit "forgets"
        await kernel.delete_module("esp4")
        assert 50 not in {e.key for e in kernel.registrations.registry("inet_protocol").entries()}
        await kernel.init_module(module(modules, "esp4"))                 # registers afresh
        await kernel.delete_module("esp4")
        await kernel.delete_module("xfrm_algo")
        await kernel.shutdown()
    trio.run(main)
    texts = [r.text for r in kernel.log.records()]
    assert texts.count("esp4: leaked registration: xfrm4 esp handler esp4_protocol [esp4], "
                       "priority 0") == 1


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_pf_key_and_xfrm_user_register_their_key_managers_and_take_them_back(flavour):
    """af_key and xfrm_user append their xfrm_mgr to xfrm_km_list (af_key's
    before xfrm_user's, linked through `list` at the release's offset) and
    their exits unlink them; nothing is left behind."""
    modules, build = corpus(flavour)
    kernel = Kernel(KernelOptions(kernel=str(build)))
    names = ("xfrm_algo", "af_key", "xfrm_user")

    async def main() -> None:
        for name in names:
            await kernel.init_module(module(modules, name))
        managers = kernel.subsystem(KeyManagers).list
        entry = kernel.layouts[XFRM_MGR].list
        assert [kernel.symbolize(node - entry, False) for node in managers] == [
            "pfkeyv2_mgr [af_key]", "netlink_mgr [xfrm_user]"]
        for name in reversed(names):
            await kernel.delete_module(name)
        assert not list(managers)
        await kernel.shutdown()
    trio.run(main)
    texts = [r.text for r in kernel.log.records()]
    assert not any("leaked" in t or "not emulated" in t or "BUG" in t for t in texts), texts
