"""Connection tracking and what it stands on, under the Debian 6.1 profile,
with the real modules: nf_defrag_ipv6 (inet_frags, an fqdir and its
rhashtable per namespace, net sysctls), nf_conntrack (/proc/net files,
BTF kfunc sets, a kmemdup'ed sysctl table freed through its header, the
netfilter core's hook pointers), its helpers (net_ns_barrier at their
exit), nf_tables (rhltables, a netlink notifier) and udp_tunnel
(udp_tunnel_nic_ops).  Each loads and unloads with nothing left behind;
what a module leaves registered is reported.  They skip, saying why, where
the corpus is absent."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio

from kloader_client import Client
from kloaderd import embed
from kloaderd.kernel.kernel import Kernel, KernelOptions
from kloaderd.lib.rhashtable import Rhashtables
from kloaderd.net.ipv4.inet_fragment import FQDIR, FRAGS
from realkernel import corpus, find_module as module

CONNTRACK = ("libcrc32c", "nf_defrag_ipv6", "nf_defrag_ipv4", "nf_conntrack")


@pytest.fixture(scope="module")
def debian61() -> tuple[Path, Path]:
    return corpus("6.1")


def module_path(modules: Path, name: str) -> Path:
    return next(modules.rglob(f"{name}.ko*"))


def registrations(client: Client, name: str) -> list[str]:
    return [r["what"] for r in client.module(name)["registrations"]]


def problems(log: list[str]) -> list[str]:
    return [t for t in log if "leaked" in t or "Oops" in t or "BUG" in t or "not emulated" in t]


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_nf_defrag_ipv6_sets_up_inet_frags_and_an_fqdir_and_gives_them_back(flavour):
    """inet_frags_init makes the queue cache and holds one reference;
    the pernet init's fqdir_init adds one and a hash table accounted to the
    module; unloading runs fqdir_exit's deferred destruction, which
    inet_frags_fini waits for before destroying the cache.  6.12's module
    registers its sysctl table with register_net_sysctl_sz and publishes
    nf_defrag_v6_hook; each release's structures are read at its offsets."""
    modules, build = corpus(flavour)
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        await kernel.init_module(module(modules, "nf_defrag_ipv6"))
        whats = [r["what"] for r in kernel.module_info("nf_defrag_ipv6")["registrations"]]
        assert "kmem_cache nf-frags" in whats
        assert "pernet operations nf_ct_net_ops [nf_defrag_ipv6]" in whats
        assert any(w.startswith("sysctl table /proc/sys/net/netfilter/nf_conntrack_frag6_timeout")
                   for w in whats)
        tables = kernel.subsystem(Rhashtables).owner
        assert list(tables.values()) == ["nf_defrag_ipv6"]          # the fqdir's table
        (ht,) = tables
        owned = {a: o.size for a, o in kernel.slab._live.items() if o.owner == "nf_defrag_ipv6"}
        fq, f = kernel.layouts[FQDIR], kernel.layouts[FRAGS]
        fqdir = ht - fq.rhashtable
        assert owned[fqdir] == fq.size == 320                     # struct fqdir, both releases
        frags = kernel.mem.read_u64(fqdir + fq.f)
        assert kernel.symbolize(frags, False) == "nf_frags [nf_defrag_ipv6]"
        assert kernel.mem.read_u32(frags + f.refcnt) == 2         # inet_frags_init's + the fqdir's
        assert kernel.mem.read_u32(frags + f.completion) == 0      # not done
        cache = kernel.mem.read_u64(frags + f.frags_cachep)
        assert kernel.registrations.registry("slab_cache").find(cache) is not None
        tbl = kernel.mem.read_u64(ht)
        assert owned[tbl] == 64 + 8 * 64                          # 64 buckets by default
        await kernel.delete_module("nf_defrag_ipv6")
        assert not tables and tbl not in kernel.slab._live and fqdir not in kernel.slab._live
        assert kernel.registrations.registry("slab_cache").find(cache) is None
        await kernel.shutdown()
    trio.run(main)
    assert not problems([r.text for r in kernel.log.records()])


def test_an_inet_frags_left_initialised_is_reported(debian61):
    """A module freed without inet_frags_fini (its exit "forgets") leaves
    the cache, its pernet ops and sysctl table: each is reported."""
    modules, build = debian61
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        await kernel.init_module(module(modules, "nf_defrag_ipv6"))
        mod = kernel.get_module("nf_defrag_ipv6")
        mod.linked = dataclasses.replace(mod.linked, exit_addr=None)
        await kernel.delete_module("nf_defrag_ipv6")
        await kernel.shutdown()
    trio.run(main)
    texts = [r.text for r in kernel.log.records()]
    assert "nf_defrag_ipv6: leaked registration: kmem_cache nf-frags" in texts
    assert "nf_defrag_ipv6: leaked registration: pernet operations nf_ct_net_ops [nf_defrag_ipv6]" \
        in texts
    assert any(t.startswith("nf_defrag_ipv6: leaked") and "bytes" in t for t in texts)


def test_conntrack_loads_shows_its_proc_net_files_and_unloads_clean(debian61):
    modules, build = debian61
    with embed.run_in_thread(kernel=str(build)) as daemon, Client(daemon.socket_path) as client:
        for name in CONNTRACK:
            client.finit_module(module_path(modules, name))
        whats = registrations(client, "nf_conntrack")
        assert {"proc entry /proc/net/nf_conntrack", "proc entry /proc/net/stat/nf_conntrack",
                "BTF kfunc set of 10 functions for BPF_PROG_TYPE_XDP",
                "BTF kfunc set of 10 functions for BPF_PROG_TYPE_SCHED_CLS"} <= set(whats)
        assert "nf_conntrack" in client.listdir("/proc/net")
        # ct_cpu_seq_show reads the namespace from seq_file_net(): the
        # entries column is nf_conntrack_count(net), 0
        stat = client.read_file("/proc/net/stat/nf_conntrack").decode().splitlines()
        assert stat[0].split()[:3] == ["entries", "clashres", "found"]
        assert stat[1].split()[0] == "00000000"
        for name in reversed(CONNTRACK):
            client.delete_module(name)
        assert "nf_conntrack" not in client.listdir("/proc/net")
        log = [r["text"] for r in client.dmesg()]
    assert not problems(log), problems(log)


def test_conntrack_helpers_and_nf_tables_come_and_go(debian61):
    """The helpers' exits wait in net_ns_barrier; nf_tables makes its
    rhltables and listens on netlink_chain; all of it undone."""
    modules, build = debian61
    names = (*CONNTRACK, "nf_conntrack_broadcast", "nf_conntrack_netbios_ns", "nf_conntrack_ftp",
             "nfnetlink", "nf_tables")
    with embed.run_in_thread(kernel=str(build)) as daemon, Client(daemon.socket_path) as client:
        for name in names:
            client.finit_module(module_path(modules, name))
        assert "notifier nft_rcv_nl_event [nf_tables] on netlink_chain" in \
            registrations(client, "nf_tables")
        for name in reversed(names):
            client.delete_module(name)
        log = [r["text"] for r in client.dmesg()]
    assert not problems(log), problems(log)


def test_udp_tunnel_publishes_its_offload_ops_and_takes_them_back(debian61):
    modules, build = debian61
    kernel = Kernel(KernelOptions(kernel=str(build)))
    ops = kernel.symbols.get("udp_tunnel_nic_ops").address

    async def main() -> None:
        assert kernel.mem.read_u64(ops) == 0
        await kernel.init_module(module(modules, "udp_tunnel"))
        assert kernel.symbolize(kernel.mem.read_u64(ops), False) == \
            "__udp_tunnel_nic_ops [udp_tunnel]"
        await kernel.delete_module("udp_tunnel")
        assert kernel.mem.read_u64(ops) == 0
    trio.run(main)
    assert not problems([r.text for r in kernel.log.records()])
