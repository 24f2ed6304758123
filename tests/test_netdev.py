"""Network devices under the Debian profiles: two modules built with each
kernel's own kbuild — `netdev_probe`, a dummy-like driver whose devices
come from the name template "kprobe%d", and `netdev_watch`, a netdevice
notifier — and the real modules that create devices (dummy, eql, ifb,
sch_teql, the IPv4 and IPv6 tunnels, geneve).  A device is allocated with
its private area where netdev_priv() finds it, registered (ndo_init, an
ifindex, the lowest free number for its template, the notifiers told),
listed in /sys/class/net and /proc/net/dev while it is, and unregistered
(the notifiers, ndo_uninit, then priv_destructor and the free at
rtnl_unlock); a device its module forgets is reported.  They skip, saying
why, where the corpus or the kernel's compiler is absent."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from kloader_client import Client
from kloaderd import embed
from kloaderd.net.core.net_device import alloc_name
from kloaderd.net.ipv6.addrconf_core import addr_type
from realkernel import corpus, find_module, load_then_remove

NETDEV_PROBE = r"""
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/etherdevice.h>
#include <linux/rtnetlink.h>
MODULE_LICENSE("GPL");
static int count = 1;
module_param(count, int, 0444);
static int leak;
module_param(leak, int, 0444);
static struct net_device *devs[4];
static int registered;
struct probe_priv { u32 magic; int inited; };

static int probe_dev_init(struct net_device *dev)
{
	struct probe_priv *p = netdev_priv(dev);

	p->inited = 1;
	pr_info("netdev_probe: ndo_init %s, magic %x\n", dev->name, p->magic);
	return 0;
}

static void probe_dev_uninit(struct net_device *dev)
{
	pr_info("netdev_probe: ndo_uninit %s\n", dev->name);
}

static void probe_destructor(struct net_device *dev)
{
	pr_info("netdev_probe: destructor %s\n", dev->name);
}

static netdev_tx_t probe_xmit(struct sk_buff *skb, struct net_device *dev)
{
	return NETDEV_TX_BUSY;
}

static const struct net_device_ops probe_ops = {
	.ndo_init = probe_dev_init,
	.ndo_uninit = probe_dev_uninit,
	.ndo_start_xmit = probe_xmit,
};

static void probe_setup(struct net_device *dev)
{
	ether_setup(dev);
	dev->netdev_ops = &probe_ops;
	dev->needs_free_netdev = true;
	dev->priv_destructor = probe_destructor;
	eth_hw_addr_random(dev);
}

static void probe_unwind(void)
{
	while (registered > (leak ? 1 : 0))
		unregister_netdev(devs[--registered]);
}

static int __init netdev_probe_init(void)
{
	struct net_device *dev, *d;
	int i, err, n = 0;

	for (i = 0; i < count && i < 4; i++) {
		dev = alloc_netdev(sizeof(struct probe_priv), "kprobe%d", NET_NAME_ENUM, probe_setup);
		if (!dev) {
			probe_unwind();
			return -ENOMEM;
		}
		((struct probe_priv *)netdev_priv(dev))->magic = 0x4e455444;
		err = register_netdev(dev);
		if (err) {
			pr_info("netdev_probe: register %s: %d\n", dev->name, err);
			free_netdev(dev);
			leak = 0;
			probe_unwind();
			return err;
		}
		devs[registered++] = dev;
		pr_info("netdev_probe: %s ifindex %d, priv at +%ld, inited %d, mtu %u, %s\n", dev->name,
			dev->ifindex, (long)((char *)netdev_priv(dev) - (char *)dev),
			((struct probe_priv *)netdev_priv(dev))->inited, dev->mtu,
			is_valid_ether_addr(dev->dev_addr) && (dev->dev_addr[0] & 2) ? "random" : "bad address");
	}
	dev = alloc_netdev(0, "kprobe0", NET_NAME_USER, probe_setup);
	if (dev) {
		pr_info("netdev_probe: a second kprobe0: %d\n", register_netdev(dev));
		free_netdev(dev);
	}
	rtnl_lock();
	for_each_netdev(&init_net, d)
		n++;
	pr_info("netdev_probe: %d device(s), kprobe0 %s\n", n,
		__dev_get_by_name(&init_net, "kprobe0") == devs[0] ? "found" : "missing");
	rtnl_unlock();
	netif_carrier_off(devs[0]);
	pr_info("netdev_probe: carrier %d\n", netif_carrier_ok(devs[0]));
	netif_carrier_on(devs[0]);
	return 0;
}

static void __exit netdev_probe_exit(void)
{
	probe_unwind();
}
module_init(netdev_probe_init);
module_exit(netdev_probe_exit);
"""

NETDEV_WATCH = r"""
#include <linux/module.h>
#include <linux/netdevice.h>
MODULE_LICENSE("GPL");
static char *refuse = "";
module_param(refuse, charp, 0444);

static int watch_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);

	if (strncmp(dev->name, "kprobe", 6))
		return NOTIFY_DONE;
	if (event == NETDEV_REGISTER || event == NETDEV_UNREGISTER)
		pr_info("netdev_watch: %s %s\n", event == NETDEV_REGISTER ? "REGISTER" : "UNREGISTER",
			dev->name);
	if (event == NETDEV_REGISTER && !strcmp(dev->name, refuse))
		return notifier_from_errno(-EPERM);
	return NOTIFY_DONE;
}

static struct notifier_block watch_nb = { .notifier_call = watch_event };

static int __init netdev_watch_init(void)
{
	return register_netdevice_notifier(&watch_nb);
}

static void __exit netdev_watch_exit(void)
{
	unregister_netdevice_notifier(&watch_nb);
}
module_init(netdev_watch_init);
module_exit(netdev_watch_exit);
"""


def build(tmp: Path, flavour: str, name: str, source: str) -> Path:
    from test_kbuild import kmodbuild
    _, tree = corpus(flavour)
    src = tmp / f"{name}.c"
    src.write_text(source)
    ko = tmp / f"{name}.ko"
    done = kmodbuild("--kernel", str(tree), str(src), "-o", str(ko))
    if done.returncode and "not on PATH" in done.stderr:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    return ko


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def built(request, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(build tree, netdev_probe.ko, netdev_watch.ko) for one release."""
    flavour = request.param
    tmp = tmp_path_factory.mktemp(f"netdev-{flavour}")
    return (corpus(flavour)[1], build(tmp, flavour, "netdev_probe", NETDEV_PROBE),
            build(tmp, flavour, "netdev_watch", NETDEV_WATCH))


def ours(client: Client, prefix: str) -> list[str]:
    return [r["text"] for r in client.dmesg()
            if r["text"].startswith(prefix) and "taints kernel" not in r["text"]]


def test_devices_are_registered_watched_listed_and_unregistered(built):
    tree, probe, watch = built
    with embed.run_in_thread(kernel=str(tree), on_problems="raise") as daemon, Client(daemon.socket_path) as client:
        assert client.finit_module(watch) == "netdev_watch"
        assert client.finit_module(probe, "count=2") == "netdev_probe"
        assert [n for n in client.listdir("/sys/class/net") if n.startswith("kprobe")] == [
            "kprobe0", "kprobe1"]
        sysfs = {attr: client.read_file(f"/sys/class/net/kprobe1/{attr}").decode()
                 for attr in ("ifindex", "mtu", "type", "addr_len", "flags", "operstate",
                              "broadcast", "address", "name_assign_type")}
        assert sysfs["ifindex"] == "2\n" and sysfs["mtu"] == "1500\n" and sysfs["type"] == "1\n"
        assert sysfs["addr_len"] == "6\n" and sysfs["flags"] == "0x1002\n"
        assert sysfs["operstate"] == "down\n" and sysfs["broadcast"] == "ff:ff:ff:ff:ff:ff\n"
        assert int(sysfs["address"][:2], 16) & 3 == 2            # random, locally administered
        assert sysfs["name_assign_type"] == "1\n"                 # NET_NAME_ENUM
        with pytest.raises(OSError) as not_up:
            client.read_file("/sys/class/net/kprobe0/carrier")
        assert not_up.value.errno == errno.EINVAL
        assert client.read_file("/sys/class/net/kprobe0/carrier_changes") == b"2\n"
        proc = client.read_file("/proc/net/dev").decode().splitlines()
        assert proc[0].startswith("Inter-|   Receive")
        assert [line.split(":")[0] for line in proc[2:]] == ["kprobe0", "kprobe1"]
        assert proc[2].split(":")[1].split() == ["0"] * 16
        client.delete_module("netdev_probe")
        assert not [n for n in client.listdir("/sys/class/net") if n.startswith("kprobe")]
        assert client.read_file("/proc/net/dev").decode().count("\n") == 2
        client.delete_module("netdev_watch")
        log = ours(client, "netdev_")
        problems = [r["text"] for r in client.dmesg() if "leaked" in r["text"] or "BUG" in r["text"]]
    priv = [line for line in log if " priv at +" in line]
    assert len(priv) == 2 and all("inited 1, mtu 1500, random" in line for line in priv), priv
    assert log == [
        "netdev_probe: ndo_init kprobe0, magic 4e455444",
        "netdev_watch: REGISTER kprobe0",
        priv[0],
        "netdev_probe: ndo_init kprobe1, magic 4e455444",
        "netdev_watch: REGISTER kprobe1",
        priv[1],
        f"netdev_probe: a second kprobe0: {-errno.EEXIST}",
        "netdev_probe: 2 device(s), kprobe0 found",
        "netdev_probe: carrier 0",
        "netdev_watch: UNREGISTER kprobe1",
        "netdev_probe: ndo_uninit kprobe1",
        "netdev_probe: destructor kprobe1",
        "netdev_watch: UNREGISTER kprobe0",
        "netdev_probe: ndo_uninit kprobe0",
        "netdev_probe: destructor kprobe0",
    ], log
    assert not problems, problems


def test_a_notifier_registered_later_is_told_of_existing_devices(built):
    tree, probe, watch = built
    with embed.run_in_thread(kernel=str(tree), on_problems="raise") as daemon, Client(daemon.socket_path) as client:
        client.finit_module(probe, "count=3")
        client.finit_module(watch)                   # replayed: NETDEV_REGISTER for each
        client.delete_module("netdev_watch")         # replayed: NETDEV_UNREGISTER for each
        client.delete_module("netdev_probe")
        log = ours(client, "netdev_watch")
    assert log == [f"netdev_watch: {event} kprobe{i}" for event in ("REGISTER", "UNREGISTER")
                   for i in range(3)]


def test_a_notifier_refusing_a_device_fails_its_registration(built):
    tree, probe, watch = built
    with embed.run_in_thread(kernel=str(tree), on_problems="raise") as daemon, Client(daemon.socket_path) as client:
        client.finit_module(watch, "refuse=kprobe1")
        with pytest.raises(OSError) as refused:
            client.finit_module(probe, "count=2")
        assert refused.value.errno == errno.EPERM
        assert not [n for n in client.listdir("/sys/class/net") if n.startswith("kprobe")]
        client.delete_module("netdev_watch")
        log = ours(client, "netdev_")
        problems = [r["text"] for r in client.dmesg() if "leaked" in r["text"]]
    assert "netdev_watch: UNREGISTER kprobe1" in log            # taken back at once
    assert f"netdev_probe: register kprobe1: {-errno.EPERM}" in log
    assert "netdev_probe: destructor kprobe0" in log and not problems, (log, problems)


def test_a_device_left_registered_is_reported(built):
    tree, probe, _ = built
    with embed.run_in_thread(kernel=str(tree), on_problems="ignore") as daemon, Client(daemon.socket_path) as client:
        client.finit_module(probe, "count=2 leak=1")
        info = client.module("netdev_probe")
        assert [r["what"] for r in info["registrations"] if r["subsystem"] == "netdev"] == [
            "network device kprobe0", "network device kprobe1"]
        client.delete_module("netdev_probe")
        assert "kprobe0" not in client.listdir("/sys/class/net")
        log = [r["text"] for r in client.dmesg()]
    assert "netdev_probe: leaked registration: network device kprobe0" in log
    assert any(line.startswith("netdev_probe: leaked ") and "bytes" in line for line in log)
    assert "netdev_probe: destructor kprobe1" in log


# -- the real modules -------------------------------------------------------------------------

REAL = [  # (modules loaded in order, the devices they make)
    (["dummy"], ["dummy0"]),
    (["eql"], ["eql"]),
    (["ifb"], ["ifb0", "ifb1"]),
    (["sch_teql"], ["teql0"]),
    (["tunnel4", "ip_tunnel", "ipip"], ["tunl0"]),
    (["gre", "ip_tunnel", "ip_gre"], ["gre0", "gretap0", "erspan0"]),
    (["tunnel4", "ip_tunnel", "ip_vti"], ["ip_vti0"]),
    (["tunnel4", "ip_tunnel", "sit"], ["sit0"]),
    (["tunnel6", "ip6_tunnel", "xfrm6_tunnel", "ip6_vti"], ["ip6tnl0", "ip6_vti0"]),
    (["tunnel6", "ip6_tunnel", "gre", "ip6_gre"], ["ip6tnl0", "ip6gre0"]),
    (["udp_tunnel", "ip6_udp_tunnel", "geneve"], []),
]


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
@pytest.mark.parametrize("names,made", REAL, ids=[names[-1] for names, _ in REAL])
def test_real_modules_make_their_devices_and_remove_them(flavour, names, made):
    from kloaderd.embed import Problems
    from kloaderd.net.core.net_device import net_devices
    modules, tree = corpus(flavour)
    seen: list[str] = []

    def look(kernel) -> None:
        devs = net_devices(kernel)
        seen.extend(devs.name(dev) for dev in devs.devices())
    kernel, errors = load_then_remove(tree, [find_module(modules, n) for n in names], after_load=look)
    assert not errors, errors
    assert seen == made
    assert not net_devices(kernel).devices()
    assert not Problems.of_kernel(kernel), Problems.of_kernel(kernel)


# -- the pieces ------------------------------------------------------------------------------

class _Devices:
    def __init__(self, *names: str) -> None:
        self.by_name = dict.fromkeys(names, 1)


def test_a_template_gets_the_lowest_free_number():
    assert alloc_name(_Devices("dummy0", "dummy2", "dummyx", "dummy01"), b"dummy%d") == (1, b"dummy1")
    assert alloc_name(_Devices(), b"eth%d") == (0, b"eth0")
    assert alloc_name(_Devices("eql"), b"eql") == (-errno.EEXIST, b"")
    assert alloc_name(_Devices(), b"a%d%d") == (-errno.EINVAL, b"")
    assert alloc_name(_Devices(), b"a%s") == (-errno.EINVAL, b"")
    assert alloc_name(_Devices(), b"bad/name") == (-errno.EINVAL, b"")
    assert alloc_name(_Devices(), b"") == (-errno.EINVAL, b"")
    full = _Devices(*(f"n{i}" for i in range(10)))
    assert alloc_name(full, b"n%d")[0] == 10
    long = _Devices(*(f"abcdefghijklm{i}" for i in range(100)))
    assert alloc_name(long, b"abcdefghijklm%d") == (-errno.ENFILE, b"")    # 100 needs 16 bytes


@pytest.mark.parametrize("address,expected", [
    ("::", 0x0000), ("::1", 0x0020011), ("fe80::1", 0x0020021), ("fec0::1", 0x0050041),
    ("2001:db8::1", 0x00E0001), ("fd00::1", 0x00E0001), ("ff02::1", 0x0020022),
    ("ff01::1", 0x0010012), ("ff0e::1", 0x00E0002), ("::ffff:10.0.0.1", 0x00E1000),
    ("::10.0.0.1", 0x00E0081),
])
def test_ipv6_address_types_are_linux_s(address, expected):
    import ipaddress
    assert addr_type(ipaddress.IPv6Address(address).packed) == expected
