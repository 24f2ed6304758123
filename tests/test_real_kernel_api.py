"""Real modules of the Debian 6.1 cloud kernel, unforced under its profile,
through the kernel API kloader emulates: their registrations are recorded,
shown in module_info, undone by their exits, and nothing leaks.  These
are the outside oracle for the registration code (the modules were built by
Debian's kbuild against Linux 6.1's headers, so a wrong structure offset
shows here).  They skip, saying why, where the corpus cannot be fetched."""

from __future__ import annotations

import dataclasses
import errno
from pathlib import Path

import pytest
import trio

from kloaderd.errors import KernelError
from kloaderd.kernel.kernel import Kernel, KernelOptions
from kloaderd.embed import Problems
from realkernel import corpus, find_module as module


@pytest.fixture(scope="module")
def debian61() -> tuple[Path, Path]:
    return corpus("6.1")


def load_and_remove(debian61, names: list[str], registrations: dict[str, list[dict]]) -> Kernel:
    """Load `names` in order, check each one's registrations, remove in reverse."""
    modules, build = debian61
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        loaded_names = []
        for name in names:
            loaded = await kernel.init_module(module(modules, name))
            loaded_names.append(loaded)
            seen = [{k: r[k] for k in ("subsystem", "what")}
                    for r in kernel.module_info(loaded)["registrations"]]
            key = lambda r: (r["subsystem"], r["what"])          # noqa: E731
            assert sorted(seen, key=key) == sorted(registrations.get(loaded, []), key=key), loaded
        for name in reversed(loaded_names):
            await kernel.delete_module(name)
        assert not [e for e in kernel.registrations.all() if e.owner is not None]
    trio.run(main)
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
    return kernel


def test_nls_tables(debian61):
    load_and_remove(debian61, ["nls_cp437", "nls_iso8859-1"], {
        "nls_cp437": [{"subsystem": "nls", "what": "nls table cp437"}],
        "nls_iso8859_1": [{"subsystem": "nls", "what": "nls table iso8859-1"}]})


def test_crypto_algorithms_and_templates(debian61):
    load_and_remove(debian61, ["cast_common", "cast5_generic", "sha3_generic"], {
        "cast5_generic": [{"subsystem": "crypto",
                           "what": 'crypto algorithm "cast5" (cast5-generic)'}],
        "sha3_generic": [{"subsystem": "crypto", "what": f'crypto algorithm "sha3-{n}" '
                          f'(sha3-{n}-generic)'} for n in (224, 256, 384, 512)]})


def test_tcp_congestion_control(debian61):
    kernel = load_and_remove(debian61, ["tcp_vegas"], {
        "tcp_vegas": [{"subsystem": "tcp_congestion",
                       "what": "tcp congestion control vegas"}]})
    assert kernel.status()["release"].startswith("6.1.")


def test_qdiscs_and_classifiers(debian61):
    load_and_remove(debian61, ["sch_prio", "sch_ingress", "cls_basic"], {
        "sch_prio": [{"subsystem": "qdisc", "what": "qdisc prio"}],
        "sch_ingress": [{"subsystem": "qdisc", "what": "qdisc ingress"},
                        {"subsystem": "qdisc", "what": "qdisc clsact"}],
        "cls_basic": [{"subsystem": "tc_classifier", "what": "tc classifier basic"}]})


def test_pci_driver_with_no_device_present(debian61):
    load_and_remove(debian61, ["pci-pf-stub"], {
        "pci_pf_stub": [{"subsystem": "driver", "what": "pci driver pci-pf-stub"}]})


def test_a_registration_left_behind_is_reported_when_the_module_goes(debian61):
    """cast5_generic's exit is what unregisters its algorithm: removed
    without it, the registration is reported and taken off the list."""
    modules, build = debian61
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        await kernel.init_module(module(modules, "cast_common"))
        await kernel.init_module(module(modules, "cast5_generic"))
        mod = kernel.get_module("cast5_generic")
        mod.linked = dataclasses.replace(mod.linked, exit_addr=None)   # exit "forgets"
        await kernel.delete_module("cast5_generic")
        await kernel.delete_module("cast_common")
    trio.run(main)
    texts = [r.text for r in kernel.log.records()]
    assert 'cast5_generic: leaked registration: crypto algorithm "cast5" (cast5-generic)' in texts
    assert not [e for e in kernel.registrations.all() if e.owner is not None]


def test_crypto_under_6_12_reads_its_own_layouts():
    """Linux 6.12 moved struct shash_alg's base (96 -> 104), renumbered
    CRYPTO_ALG_TYPE_AKCIPHER and raised MAX_ALGAPI_ALIGNMASK: its algorithms,
    templates and libcrc32c's transform of the built-in crc32c work there as
    under 6.1 (this was "not emulated" while crypto read 6.1's offsets)."""
    modules, build = corpus("6.12")
    load_and_remove((modules, build), ["cast_common", "cast5_generic", "md4", "ccm", "libcrc32c"], {
        "cast5_generic": [{"subsystem": "crypto", "what": 'crypto algorithm "cast5" (cast5-generic)'}],
        "md4": [{"subsystem": "crypto", "what": 'crypto algorithm "md4" (md4-generic)'}],
        "ccm": [{"subsystem": "crypto", "what": f'crypto template "{n}"'}
                for n in ("cbcmac", "ccm_base", "rfc4309", "ccm")]})


def test_leds_cpufreq_textsearch_and_ematches(debian61):
    load_and_remove(debian61, ["ledtrig-timer", "cpufreq_userspace", "ts_kmp", "em_cmp"], {
        "ledtrig_timer": [{"subsystem": "led_trigger", "what": "led trigger timer"}],
        "cpufreq_userspace": [{"subsystem": "cpufreq_governor",
                               "what": "cpufreq governor userspace"}],
        "ts_kmp": [{"subsystem": "textsearch", "what": "textsearch algorithm kmp"}],
        "em_cmp": [{"subsystem": "ematch", "what": "tc ematch kind 1"}]})


def test_network_protocols_handlers_and_link_kinds(debian61):
    load_and_remove(debian61, ["gre", "llc", "unix_diag", "veth"], {
        "gre": [{"subsystem": "inet_protocol", "what": "inet protocol 47 handler"}],
        "llc": [{"subsystem": "packet_type", "what": "packet handler for ethertype 0x0004"}],
        "unix_diag": [{"subsystem": "sock_diag", "what": "sock_diag handler for family 1"}],
        "veth": [{"subsystem": "rtnl_link", "what": "rtnetlink link kind veth"}]})


def test_quota_formats(debian61):
    load_and_remove(debian61, ["quota_tree", "quota_v2"], {
        "quota_v2": [{"subsystem": "quota_format", "what": "quota format 2"},
                     {"subsystem": "quota_format", "what": "quota format 4"}]})


def test_socket_families_and_protocols(debian61):
    kernel = load_and_remove(debian61, ["af_alg", "vsock"], {
        "af_alg": [{"subsystem": "proto", "what": "socket protocol ALG"},
                   {"subsystem": "net_family", "what": "socket family PF_ALG"}],
        "vsock": [{"subsystem": "misc", "what": "misc device vsock (minor 127, /dev/vsock)"},
                  {"subsystem": "slab_cache", "what": "kmem_cache AF_VSOCK"},
                  {"subsystem": "proto", "what": "socket protocol AF_VSOCK"},
                  {"subsystem": "net_family", "what": "socket family PF_VSOCK"}]})
    texts = [r.text for r in kernel.log.records()]
    assert texts.count("NET: Registered PF_ALG protocol family") == 1
    assert "NET: Unregistered PF_VSOCK protocol family" in texts


def test_hid_and_a_hid_driver(debian61):
    """hid's hidraw class, char devices and debugfs directory; hid-generic's
    driver registration walks the bus's drivers (bus_for_each_drv) and
    rescans its devices: there are none, so nothing binds."""
    load_and_remove(debian61, ["hid", "hid-generic"], {
        "hid": [{"subsystem": "bus", "what": "bus hid"},
                {"subsystem": "chrdev", "what": 'char device region 254:0-63 "hidraw"'},
                {"subsystem": "cdev", "what": "cdev 254:0-63"},
                {"subsystem": "class", "what": 'class "hidraw"'},
                {"subsystem": "debugfs", "what": "debugfs directory /sys/kernel/debug/hid"}],
        "hid_generic": [{"subsystem": "driver", "what": "hid driver hid-generic"}]})
