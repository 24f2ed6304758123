"""The IP socket switch (`inet_register_protosw`, `inet6_register_protosw`,
kloaderd/net/ipv4/af_inet.py) and TCP upper layer protocols
(`tcp_register_ulp`, kloaderd/net/ipv4/tcp_ulp.py) under Debian's 6.1 and
6.12: a module built by each release's kbuild registers, is refused where
Linux refuses (with Linux's messages and errnos), and what it cannot take
back is reported when it goes; the real tls, bonding, l2tp_ip and l2tp_ip6
load and unload clean, and sctp and dccp_ipv4 get past the switch."""

from __future__ import annotations

import pytest

from realkernel import assert_gets_past, corpus, load_then_remove, run_kbuilt, with_dependencies

PSW = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <net/protocol.h>
#include <net/sock.h>
#include <net/tcp.h>
MODULE_LICENSE("GPL");

static struct proto psw_prot = { .name = "PSW", .owner = THIS_MODULE, .obj_size = sizeof(struct sock) };
static struct inet_protosw plain = { .type = SOCK_DGRAM, .protocol = 253, .prot = &psw_prot };
static struct inet_protosw perm = { .type = SOCK_DGRAM, .protocol = 254, .prot = &psw_prot,
				    .flags = INET_PROTOSW_PERMANENT };
static struct inet_protosw over_perm = { .type = SOCK_DGRAM, .protocol = 254, .prot = &psw_prot };
static struct inet_protosw over_udp = { .type = SOCK_DGRAM, .protocol = IPPROTO_UDP, .prot = &psw_prot };
static struct inet_protosw bad_type = { .type = SOCK_MAX, .protocol = 253, .prot = &psw_prot };
static struct inet_protosw plain6 = { .type = SOCK_STREAM, .protocol = 253, .prot = &psw_prot };
static struct inet_protosw tcp6 = { .type = SOCK_STREAM, .protocol = IPPROTO_TCP, .prot = &psw_prot };
static struct inet_protosw bad6 = { .type = 12, .protocol = 253, .prot = &psw_prot };
static struct tcp_ulp_ops ulp = { .name = "psw", .owner = THIS_MODULE };
static struct tcp_ulp_ops ulp_again = { .name = "psw", .owner = THIS_MODULE };
static struct tcp_ulp_ops ulp_mptcp = { .name = "mptcp", .owner = THIS_MODULE };

static int __init psw_init(void)
{
	int a, b, c;

	inet_register_protosw(&plain);
	inet_register_protosw(&perm);
	pr_info("psw: perm first %d, plain after it %d\n",
		plain.list.prev == &perm.list, perm.list.next == &plain.list);
	inet_register_protosw(&over_perm);
	inet_register_protosw(&over_udp);
	inet_register_protosw(&bad_type);
	pr_info("psw: refused linked %d %d %d\n", over_perm.list.next != NULL,
		over_udp.list.next != NULL, bad_type.list.next != NULL);
	a = inet6_register_protosw(&plain6);
	b = inet6_register_protosw(&tcp6);
	c = inet6_register_protosw(&bad6);
	pr_info("psw: inet6 %d %d %d\n", a, b, c);
	a = tcp_register_ulp(&ulp);
	b = tcp_register_ulp(&ulp_again);
	c = tcp_register_ulp(&ulp_mptcp);
	pr_info("psw: ulp %d %d %d\n", a, b, c);
	return 0;
}
static void __exit psw_exit(void)
{
	tcp_unregister_ulp(&ulp);
	inet6_unregister_protosw(&plain6);
	inet_unregister_protosw(&plain);
	inet_unregister_protosw(&perm);		/* refused: a permanent entry stays */
	pr_info("psw: gone\n");
}
module_init(psw_init);
module_exit(psw_exit);
"""


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_the_switch_and_ulps_refuse_what_linux_refuses(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "psw", PSW, flavour)
    assert lines == ["psw: perm first 1, plain after it 1",
                     "psw: refused linked 0 0 0",
                     "psw: inet6 0 -1 -22",                  # -EPERM, -EINVAL
                     "psw: ulp 0 -17 -17",                   # -EEXIST: a name taken, the kernel's mptcp
                     "psw: gone",
                     "psw: leaked registration: inet protosw SOCK_DGRAM protocol 254 (PSW)"]
    log = [r.text for r in kernel.log.records()]
    for message in ("IPv4: Attempt to override permanent protocol 254",
                    "IPv4: Attempt to override permanent protocol 17",
                    "IPv4: Ignoring attempt to register invalid socket type 11",
                    "IPv6: Attempt to override permanent protocol 6",
                    "IPv6: Ignoring attempt to register invalid socket type 12",
                    "IPv4: Attempt to unregister permanent protocol 254"):
        assert message in log, message
    assert not [e for e in kernel.registrations.all() if e.owner is not None]


def _clean(flavour: str, name: str) -> list[str]:
    """Load NAME after its dependencies, remove them all: what was left or went wrong."""
    modules, build = corpus(flavour)
    kernel, errors = load_then_remove(build, with_dependencies(modules, name))
    assert not errors, errors
    bad = [r.text for r in kernel.log.records()
           if any(w in r.text for w in ("leaked", "Oops", "not emulated", "WARNING", "BUG"))]
    assert not [e for e in kernel.registrations.all() if e.owner is not None]
    return bad


@pytest.mark.slow          # real modules, from the corpus
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
@pytest.mark.parametrize("name", ["tls", "l2tp_ip", "l2tp_ip6"])
def test_real_modules_register_and_unregister_clean(flavour, name):
    """tls stopped at tcp_register_ulp (then clean_acked_data_flush and the
    put_page of its exit); l2tp_ip and l2tp_ip6 at inet_register_protosw."""
    assert _clean(flavour, name) == []


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
@pytest.mark.parametrize("name", ["sctp", "dccp_ipv4"])
def test_sctp_and_dccp_get_past_the_switch(flavour, name):
    """What stops them now is the kernel control socket they make next
    (inet_ctl_sock_create: no sockets are emulated)."""
    assert_gets_past(flavour, name, {"inet_register_protosw", "inet6_register_protosw"})


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_bonding_makes_bond0_and_its_masters_file_and_unloads_clean(flavour):
    """bonding (after tls) stopped at sscanf, reciprocal_value,
    netdev_class_create_file_ns, skb_flow_dissector_init, then on removal
    xfrm_dev_state_flush, netdev_lower_get_next_private and netdev_info.
    Its default bond0 is listed in /sys/class/net/bonding_masters, which
    goes with the module."""
    import trio

    from kloaderd.fs.file import FileTable
    from kloaderd.fs.tree import file_tree
    from kloaderd.kernel.kernel import Kernel, KernelOptions
    modules, build = corpus(flavour)
    kernel = Kernel(KernelOptions(kernel=str(build)))
    seen: dict[str, object] = {}

    async def main() -> None:
        names = [await kernel.init_module(image) for image in with_dependencies(modules, "bonding")]
        files = FileTable(kernel, "test", "cat")
        seen["masters"] = await files.read_file("/sys/class/net/bonding_masters", 4096)
        for name in reversed(names):
            await kernel.delete_module(name)
        seen["after"] = sorted(file_tree(kernel).lookup("/sys/class/net").entries())
        await kernel.shutdown()
    trio.run(main)
    assert seen == {"masters": b"bond0\n", "after": []}
    log = [r.text for r in kernel.log.records()]
    assert "bond0 (unregistering): Released all slaves" in log
    assert not [t for t in log if any(w in t for w in ("leaked", "Oops", "not emulated", "WARNING"))], log
    assert not [e for e in kernel.registrations.all() if e.owner is not None]


NDP = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/netdevice.h>
#include <linux/etherdevice.h>
#include <net/flow_dissector.h>
MODULE_LICENSE("GPL");

struct keys {
	struct flow_dissector_key_control control;
	struct flow_dissector_key_basic basic;
	struct flow_dissector_key_ports ports;
};
static const struct flow_dissector_key wanted[] = {
	{ .key_id = FLOW_DISSECTOR_KEY_CONTROL, .offset = offsetof(struct keys, control) },
	{ .key_id = FLOW_DISSECTOR_KEY_BASIC, .offset = offsetof(struct keys, basic) },
	{ .key_id = FLOW_DISSECTOR_KEY_PORTS, .offset = offsetof(struct keys, ports) },
};
static struct flow_dissector dissector;

static int __init ndp_init(void)
{
	struct net_device *dev = alloc_netdev(0, "ndp%d", NET_NAME_UNKNOWN, ether_setup);

	if (!dev)
		return -ENOMEM;
	netdev_info(dev, "hello %d\n", 1);
	netdev_warn(NULL, "nobody\n");
	free_netdev(dev);
	dissector.offset[FLOW_DISSECTOR_KEY_IPV4_ADDRS] = 99;
	skb_flow_dissector_init(&dissector, wanted, ARRAY_SIZE(wanted));
	pr_info("ndp: keys %llx offsets %u %u %u %u\n", (unsigned long long)dissector.used_keys,
		dissector.offset[FLOW_DISSECTOR_KEY_CONTROL], dissector.offset[FLOW_DISSECTOR_KEY_BASIC],
		dissector.offset[FLOW_DISSECTOR_KEY_PORTS], dissector.offset[FLOW_DISSECTOR_KEY_IPV4_ADDRS]);
	return 0;
}
static void __exit ndp_exit(void)
{
}
module_init(ndp_init);
module_exit(ndp_exit);
"""


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_netdev_messages_and_a_flow_dissector(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "ndp", NDP, flavour)
    log = [r.text for r in kernel.log.records()]
    assert "(unnamed net_device) (uninitialized): hello 1" in log
    assert "(NULL net_device): nobody" in log
    # CONTROL 0, BASIC 1, PORTS 4 in both releases; the 99 was zeroed first
    assert lines == ["ndp: keys 13 offsets 0 8 12 0"]
