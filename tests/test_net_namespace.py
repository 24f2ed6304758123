"""The initial network namespace, pernet operations, tc actions and
netdevice notifiers under the Debian 6.1 profile: real modules (x_tables,
nf_defrag_ipv4, grace, act_gact, act_mirred, tun) and one built with the
kernel's own kbuild register pernet ops; their per-namespace data is
allocated, zeroed and reachable through net_generic(&init_net, id), init
and exit run for init_net, a failing init is undone, a registration left
behind is reported.  The structures are read at each kernel's offsets, so
the 6.12 modules of the same subsystems load, work and unload as 6.1's.
They skip, saying why, where the corpus or the kernel's compiler is
absent."""

from __future__ import annotations

import dataclasses
import errno
import subprocess
from pathlib import Path

import pytest
import trio

from kloader_client import Client
from kloaderd import embed
from kloaderd.embed import Problems
from kloaderd.errors import KernelError
from kloaderd.kernel.kernel import Kernel, KernelOptions
from kloaderd.kernel.profile import KernelProfile
from kloaderd.net.core.net_namespace import NET, NetNamespaces
from kloaderd.net.netlink.af_netlink import SOCK
from realkernel import corpus, find_module as module
from test_server import command

PERNET_PROBE = r"""
#include <linux/module.h>
#include <linux/rtnetlink.h>
#include <linux/uidgid.h>
#include <linux/user_namespace.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
MODULE_LICENSE("GPL");
static int fail;
module_param(fail, int, 0444);
static unsigned int probe_id;
struct probe_net { unsigned int magic; };

static int __net_init probe_init(struct net *net)
{
	struct probe_net *pn = net_generic(net, probe_id);

	pr_info("pernet_probe: init %s init_net, id %u, zeroed %d, count %d\n",
		net == &init_net ? "on" : "off", probe_id, pn->magic == 0,
		refcount_read(&net->ns.count));
	pn->magic = 0x4b4e4554;
	return fail ? -EADDRINUSE : 0;
}

static void __net_exit probe_exit(struct net *net)
{
	struct probe_net *pn = net_generic(net, probe_id);

	pr_info("pernet_probe: exit, magic %x\n", pn->magic);
}

static void __net_exit probe_exit_batch(struct list_head *net_exit_list)
{
	struct net *net;
	int n = 0;

	list_for_each_entry(net, net_exit_list, exit_list)
		n++;
	pr_info("pernet_probe: exit_batch over %d\n", n);
}

static struct pernet_operations probe_ops = {
	.init = probe_init,
	.exit = probe_exit,
	.exit_batch = probe_exit_batch,
	.id = &probe_id,
	.size = sizeof(struct probe_net),
};

static int __init pernet_probe_init(void)
{
	struct net *net;
	int n = 0, err = register_pernet_subsys(&probe_ops);

	if (err)
		return err;
	down_read(&net_rwsem);
	for_each_net(net)
		n++;
	up_read(&net_rwsem);
	pr_info("pernet_probe: %d namespace(s)\n", n);
	pr_info("pernet_probe: uid %u gid %u, invalid munged %u\n",
		from_kuid(&init_user_ns, make_kuid(init_net.user_ns, 1000)),
		from_kgid(&init_user_ns, make_kgid(&init_user_ns, 100)),
		from_kuid_munged(&init_user_ns, INVALID_UID));
	return 0;
}

static void __exit pernet_probe_exit(void)
{
	unregister_pernet_subsys(&probe_ops);
}
module_init(pernet_probe_init);
module_exit(pernet_probe_exit);
"""


@pytest.fixture(scope="module")
def debian61() -> tuple[Path, Path]:
    return corpus("6.1")


def run(kernel: Kernel, body) -> list[str]:
    trio.run(body)
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
    return [r.text for r in kernel.log.records()]


def test_x_tables_and_defrag_register_pernet_data_and_give_it_back(debian61):
    modules, build = debian61
    kernel = Kernel(KernelOptions(kernel=str(build)))
    ns = kernel.subsystem(NetNamespaces)
    init_net = kernel.symbols.get("init_net").address
    mem = kernel.mem

    async def main() -> None:
        assert ns.net == init_net
        namespaces = kernel.symbols.get("net_namespace_list").address
        assert mem.read_u64(namespaces) == init_net + ns.layout.list      # for_each_net finds init_net
        for name in ("x_tables", "nf_defrag_ipv4", "grace"):
            await kernel.init_module(module(modules, name))
        seen = {r["what"] for name in ("x_tables", "nf_defrag_ipv4", "grace")
                for r in kernel.module_info(name)["registrations"] if r["subsystem"] == "pernet"}
        assert seen == {"pernet operations xt_net_ops [x_tables]",
                        "pernet operations defrag4_net_ops [nf_defrag_ipv4]",
                        "pernet operations grace_net_ops [grace]"}
        gen = mem.read_u64(init_net + kernel.layouts[NET].gen)
        # defrag4_net_ops has neither id nor size in 6.1 (its state is in struct net)
        assert ns.min_id == 3 and mem.read_u32(gen) == 3 + 2                 # s.len: ids 3 and 4
        data = [mem.read_u64(gen + 8 * i) for i in range(3, 3 + 2)]
        assert [kernel.slab._live[d].owner for d in data] == ["x_tables", "grace"]
        assert [kernel.slab._live[d].size for d in data] == [176, 16]   # ops->size, zeroed
        for name in ("grace", "nf_defrag_ipv4", "x_tables"):
            await kernel.delete_module(name)
        assert not list(ns.pernet_list) and not ns.ids
        assert all(d not in kernel.slab._live for d in data)
    run(kernel, main)


def test_pernet_ops_left_registered_are_reported_and_their_data_freed(debian61):
    modules, build = debian61
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        await kernel.init_module(module(modules, "x_tables"))
        mod = kernel.get_module("x_tables")
        mod.linked = dataclasses.replace(mod.linked, exit_addr=None)   # exit "forgets"
        await kernel.delete_module("x_tables")
        ns = kernel.subsystem(NetNamespaces)
        assert not list(ns.pernet_list) and not ns.ids
        await kernel.init_module(module(modules, "nf_defrag_ipv4"))    # the list is intact
        await kernel.delete_module("nf_defrag_ipv4")
    trio.run(main)
    texts = [r.text for r in kernel.log.records()]
    assert "x_tables: leaked registration: pernet operations xt_net_ops [x_tables]" in texts
    # what is left is the module's own kcalloc that xt_fini frees, not init_net's 176 bytes
    assert [t for t in texts if "bytes" in t] == ["x_tables: leaked 1232 bytes in 1 allocations"]


@pytest.fixture(scope="module")
def pernet_probe(tmp_path_factory, debian61) -> Path:
    build = debian61[1]
    work = tmp_path_factory.mktemp("pernet")
    (work / "pernet_probe.c").write_text(PERNET_PROBE)
    ko = work / "pernet_probe.ko"
    done = subprocess.run([command("kmodbuild"), "--kernel", str(build), str(work / "pernet_probe.c"),
                           "-o", str(ko)], capture_output=True, text=True, timeout=600)
    if done.returncode and "not on PATH" in done.stderr:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    return ko


def test_a_kbuild_module_sees_init_net_its_data_and_its_exit(debian61, pernet_probe):
    with embed.run_in_thread(kernel=str(debian61[1])) as daemon, \
            Client(daemon.socket_path) as client:
        assert client.finit_module(pernet_probe) == "pernet_probe"
        info = client.module("pernet_probe")
        assert {"subsystem": "pernet", "what": "pernet operations probe_ops [pernet_probe]"} in [
            {k: r[k] for k in ("subsystem", "what")} for r in info["registrations"]]
        client.delete_module("pernet_probe")
        log = [r["text"] for r in client.dmesg()]
    start = log.index("pernet_probe: init on init_net, id 3, zeroed 1, count 1")
    assert log[start:start + 5] == ["pernet_probe: init on init_net, id 3, zeroed 1, count 1",
                                    "pernet_probe: 1 namespace(s)",
                                    # init_net's user_ns is init_user_ns: ids map to themselves
                                    "pernet_probe: uid 1000 gid 100, invalid munged 65534",
                                    "pernet_probe: exit, magic 4b4e4554",
                                    "pernet_probe: exit_batch over 1"]


def test_a_failing_pernet_init_is_undone_and_its_error_returned(debian61, pernet_probe):
    with embed.run_in_thread(kernel=str(debian61[1])) as daemon, \
            Client(daemon.socket_path) as client:
        with pytest.raises(OSError) as failed:
            client.finit_module(pernet_probe, "fail=1")
        assert failed.value.errno == errno.EADDRINUSE
        assert client.finit_module(pernet_probe) == "pernet_probe"     # the id was given back
        client.delete_module("pernet_probe")
        log = [r["text"] for r in client.dmesg()]
    assert log.count("pernet_probe: init on init_net, id 3, zeroed 1, count 1") == 2
    assert "pernet_probe: exit_batch over 0" in log                  # Linux's out_undo
    assert not any("leaked" in line for line in log), log


def registrations_of(kernel: Kernel, name: str) -> list[str]:
    return [r["what"] for r in kernel.module_info(name)["registrations"]]


def test_tc_actions_and_netdevice_notifiers(debian61):
    """act_mirred registers its pernet ops, its action and a netdevice
    notifier (no device is registered yet: nothing is replayed); its exit
    undoes all three, the action's exit_batch destroying the empty table."""
    modules, build = debian61
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        for name in ("act_gact", "act_mirred", "tun"):
            await kernel.init_module(module(modules, name))
        assert registrations_of(kernel, "act_gact") == [
            "pernet operations gact_net_ops [act_gact]", "tc action gact"]
        assert registrations_of(kernel, "act_mirred") == [
            "pernet operations mirred_net_ops [act_mirred]", "tc action mirred",
            "notifier mirred_device_event [act_mirred] on netdev_chain"]
        assert "notifier tun_device_event [tun] on netdev_chain" in registrations_of(kernel, "tun")
        ns = kernel.subsystem(NetNamespaces)
        assert len(list(ns.pernet_list)) == 2
        for name in ("tun", "act_mirred", "act_gact"):
            await kernel.delete_module(name)
        assert not list(ns.pernet_list)
        assert not [e for e in kernel.registrations.all() if e.owner is not None]
    texts = run(kernel, main)
    assert not any("leaked" in t for t in texts)


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_nfnetlink_opens_its_kernel_netlink_socket_and_releases_it(flavour):
    modules, build = corpus(flavour)
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        for name in ("nfnetlink", "nfnetlink_acct"):
            await kernel.init_module(module(modules, name))
        assert registrations_of(kernel, "nfnetlink") == [
            "netlink kernel socket NETLINK_NETFILTER",
            "pernet operations nfnetlink_net_ops [nfnetlink]"]
        for name in ("nfnetlink_acct", "nfnetlink"):
            await kernel.delete_module(name)
        assert not kernel.registrations.registry("netlink_kernel").entries()
    run(kernel, main)


def test_ip_in_ip_tunnels_take_their_xfrm_input_slots_and_give_them_back(debian61):
    """tunnel4 and tunnel6 own the IP-in-IP afinfo of their family (the
    kernel's xfrm4/xfrm6 hold the IPsec ones); xfrm6_tunnel's exit flushes
    no xfrm state (there are none: -ESRCH) and waits on synchronize_net."""
    modules, build = debian61
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        for name in ("tunnel4", "tunnel6", "xfrm6_tunnel"):
            await kernel.init_module(module(modules, name))
        assert "xfrm input afinfo AF_INET (IP-in-IP tunnel)" in registrations_of(kernel, "tunnel4")
        assert "xfrm input afinfo AF_INET6 (IP-in-IP tunnel)" in registrations_of(kernel, "tunnel6")
        for name in ("xfrm6_tunnel", "tunnel6", "tunnel4"):
            await kernel.delete_module(name)
        assert not kernel.registrations.registry("xfrm_input_afinfo").entries()
    run(kernel, main)


def test_a_generic_netlink_family_gets_an_id_and_its_multicast_groups(debian61):
    """psample's family (one multicast group) is registered with an id and a
    group offset written into the module's struct; act_sample builds on it."""
    modules, build = debian61
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        for name in ("psample", "act_sample"):
            await kernel.init_module(module(modules, name))
        (entry,) = kernel.registrations.registry("genl_family").entries()
        assert entry.what == "generic netlink family psample"
        assert kernel.mem.read_u32(entry.address) == 0x13               # GENL_START_ALLOC
        assert kernel.mem.read_u32(entry.address + 32) not in (0, 1)    # a free group id
        for name in ("act_sample", "psample"):
            await kernel.delete_module(name)
        assert not kernel.registrations.registry("genl_family").entries()
    run(kernel, main)


def test_ebtables_serves_its_socket_options_and_x_tables_stays_whole(debian61):
    """ebtables registers its target on x_tables' list and then its socket
    options: both undone by its exit, so matches loaded after it find
    x_tables' lists intact."""
    modules, build = debian61
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        for name in ("x_tables", "ebtables", "ebt_ip", "xt_AUDIT"):
            await kernel.init_module(module(modules, name))
        assert [w for w in registrations_of(kernel, "ebtables") if "sockopts" in w] == [
            "netfilter sockopts pf 2 set 128-131 get 128-133"]   # PF_INET, EBT_BASE_CTL
        for name in ("xt_AUDIT", "ebt_ip", "ebtables", "x_tables"):
            await kernel.delete_module(name)
    run(kernel, main)


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_qdiscs_classifiers_congestion_control_and_ipsec_come_and_go(flavour):
    """Under each release's own struct layouts (struct net 4,224 bytes on
    6.1.0-50 and 4,480 on 6.12, the ops structures' members moved): a
    qdisc, a classifier, an ematch, a TCP congestion control, ESP and a
    socket-diag handler register, are seen where Linux lists them, and
    their exits undo it all."""
    modules, build = corpus(flavour)
    kernel = Kernel(KernelOptions(kernel=str(build)))
    names = ("sch_htb", "cls_basic", "em_cmp", "tcp_htcp", "xfrm_algo", "esp4", "af_packet_diag")

    async def main() -> None:
        for name in names:
            await kernel.init_module(module(modules, name))
        assert registrations_of(kernel, "sch_htb") == ["qdisc htb"]
        assert registrations_of(kernel, "cls_basic") == ["tc classifier basic"]
        assert registrations_of(kernel, "em_cmp") == ["tc ematch kind 1"]        # TCF_EM_CMP
        assert registrations_of(kernel, "tcp_htcp") == ["tcp congestion control htcp"]
        assert registrations_of(kernel, "esp4") == [
            "xfrm type esp for family 2", "xfrm4 esp handler esp4_protocol [esp4], priority 0"]
        assert registrations_of(kernel, "af_packet_diag") == ["sock_diag handler for family 17"]
        for name in reversed(names):
            await kernel.delete_module(name)
        assert not [e for e in kernel.registrations.all() if e.owner is not None]
    texts = run(kernel, main)
    assert not any("leaked" in t or "not emulated" in t for t in texts)


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_ib_cores_netlink_socket_is_a_struct_sock_it_can_set_its_timeout_on(flavour):
    """rdma_nl_net_init writes `nls->sk_sndtimeo = 10 * HZ` into the socket
    netlink_kernel_create returned: it is kernel memory of the release's
    struct sock, with what sock_init_data gives it, freed on release."""
    modules, build = corpus(flavour)
    kernel = Kernel(KernelOptions(kernel=str(build)))
    hz = int(KernelProfile(build).config["CONFIG_HZ"])

    async def main() -> None:
        await kernel.init_module(module(modules, "ib_core"))
        (entry,) = kernel.registrations.registry("netlink_kernel").entries()
        assert entry.what == "netlink kernel socket NETLINK_RDMA"
        sk, mem = kernel.layouts[SOCK], kernel.mem
        assert kernel.slab._live[entry.key].size == sk.size
        assert mem.read_u64(entry.key + sk.sk_sndtimeo) == 10 * hz
        assert mem.read_u64(entry.key + sk.sk_rcvtimeo) == (1 << 63) - 1    # MAX_SCHEDULE_TIMEOUT
        assert mem.read(entry.key + sk.__sk_common_skc_family, 2) == (16).to_bytes(2, "little")
        assert mem.read_u64(entry.key + sk.__sk_common_skc_net) == kernel.symbols.get("init_net").address
        await kernel.delete_module("ib_core")
        assert entry.key not in kernel.slab._live
    texts = run(kernel, main)
    assert not any("leaked" in t or "not emulated" in t for t in texts)


def test_inet_diag_takes_the_compat_slot_and_its_protocols_load(debian61):
    """inet_diag registers AF_INET and AF_INET6 handlers and the
    TCPDIAG_GETSOCK compat handler; tcp_diag, udp_diag and raw_diag
    register with it; their exits and its own give everything back."""
    modules, build = debian61
    kernel = Kernel(KernelOptions(kernel=str(build)))
    names = ("inet_diag", "tcp_diag", "udp_diag", "raw_diag")

    async def main() -> None:
        for name in names:
            await kernel.init_module(module(modules, name))
        assert registrations_of(kernel, "inet_diag") == [
            "sock_diag handler for family 2", "sock_diag handler for family 10",
            "sock_diag inet compat handler"]
        for name in reversed(names):
            await kernel.delete_module(name)
        assert not kernel.registrations.registry("sock_diag_inet_compat").entries()
    texts = run(kernel, main)
    assert not any("leaked" in t or "WARNING" in t for t in texts)


def test_dev_valid_name_is_linuxs_check_of_an_interface_name():
    from types import SimpleNamespace
    from kloaderd.net.core.dev import dev_valid_name
    kernel = Kernel(KernelOptions())
    buf = kernel.slab.alloc(32, None, zero=True)
    ctx = SimpleNamespace(mem=kernel.mem)

    def valid(name: bytes) -> int:
        kernel.mem.write(buf, name + b"\0")
        return dev_valid_name(ctx, buf)
    assert valid(b"gre0") == 1 and valid(b"ip_vti0") == 1 and valid(b"a" * 15) == 1
    for bad in (b"", b".", b"..", b"a" * 16, b"eth/0", b"eth:0", b"eth 0", b"eth\t0", b"eth\xa00"):
        assert valid(bad) == 0, bad
