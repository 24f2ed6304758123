"""rtnetlink's handler table and address-family ops under the Debian
profiles: `rtnlt`, built with each kernel's own kbuild, registers message
handlers one at a time and as an array, merges a dumpit into a doit,
unregisters (a protocol with no table is -ENOENT), and registers
rtnl_af_ops; a handler its exit forgets is reported at unload.  Then the
real modules these APIs held back: the bridge (with br_netfilter and the
bridge netfilter modules) and mpls_router load and go leaving nothing.
They skip, saying why, where the corpus or the kernel's compiler is absent."""

from __future__ import annotations

import errno

import pytest

from kloaderd.embed import Problems
from realkernel import corpus, find_module, load_then_remove, run_kbuilt, with_dependencies

RTNLT = r"""
#include <linux/module.h>
#include <net/rtnetlink.h>
MODULE_LICENSE("GPL");

static int t_doit(struct sk_buff *skb, struct nlmsghdr *nlh, struct netlink_ext_ack *extack) { return 0; }
static int t_doit2(struct sk_buff *skb, struct nlmsghdr *nlh, struct netlink_ext_ack *extack) { return 1; }
static int t_dumpit(struct sk_buff *skb, struct netlink_callback *cb) { return 0; }

static const struct rtnl_msg_handler many[] = {
	{.owner = THIS_MODULE, .protocol = PF_MPLS, .msgtype = RTM_NEWROUTE, .doit = t_doit},
	{.owner = THIS_MODULE, .protocol = PF_MPLS, .msgtype = RTM_GETROUTE, .doit = t_doit, .dumpit = t_dumpit},
};
static struct rtnl_af_ops af = { .family = AF_MPLS };

static int __init rtnlt_init(void)
{
	pr_info("rtnlt: dumpit %d\n", rtnl_register_module(THIS_MODULE, PF_BRIDGE, RTM_GETMDB, NULL, t_dumpit, 0));
	pr_info("rtnlt: doit %d\n", rtnl_register_module(THIS_MODULE, PF_BRIDGE, RTM_GETMDB, t_doit, NULL, 0));
	pr_info("rtnlt: unregister unknown protocol %d\n", rtnl_unregister(PF_PHONET, RTM_NEWLINK));
	pr_info("rtnlt: unregister empty slot %d\n", rtnl_unregister(PF_BRIDGE, RTM_NEWLINK));
	pr_info("rtnlt: many %d\n", rtnl_register_many(many));
	rtnl_af_register(&af);
#ifdef LEAK
	pr_info("rtnlt: other doit %d\n", rtnl_register_module(THIS_MODULE, PF_BRIDGE, RTM_GETMDB, t_doit2, NULL, 0));
#endif
	return 0;
}

static void __exit rtnlt_exit(void)
{
#ifndef LEAK
	pr_info("rtnlt: unregister %d\n", rtnl_unregister(PF_BRIDGE, RTM_GETMDB));
#endif
	rtnl_unregister_many(many);
	rtnl_unregister_all(PF_MPLS);
	rtnl_af_unregister(&af);
}
module_init(rtnlt_init);
module_exit(rtnlt_exit);
"""


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_handlers_are_registered_merged_and_unregistered(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "rtnlt", RTNLT, flavour)
    assert lines == ["rtnlt: dumpit 0", "rtnlt: doit 0",
                     f"rtnlt: unregister unknown protocol {-errno.ENOENT}",
                     "rtnlt: unregister empty slot 0", "rtnlt: many 0", "rtnlt: unregister 0"]
    assert not Problems.of_kernel(kernel), Problems.of_kernel(kernel)
    assert not kernel.registrations.registry("rtnl_handler").entries()
    assert not kernel.registrations.registry("rtnl_af").entries()


def test_a_handler_left_registered_is_reported_and_a_second_doit_warns(tmp_path):
    kernel, lines = run_kbuilt(tmp_path, "rtnlt", "#define LEAK\n" + RTNLT, "6.12")
    assert "rtnlt: other doit 0" in lines                        # taken, with a WARN
    log = [r.text for r in kernel.log.records()]
    assert "WARN_ON(doit && link->doit && link->doit != doit)" in log
    assert any(line.startswith("WARNING: CPU: 0 PID:") and "net/core/rtnetlink.c" in line for line in log)
    assert ("rtnlt: leaked registration: rtnetlink handler protocol 7 msgtype 86 "
            "(doit t_doit2 [rtnlt], dumpit t_dumpit [rtnlt])") in log
    assert not kernel.registrations.registry("rtnl_handler").entries()   # made inert


BRIDGE = ["br_netfilter", "nf_conntrack_bridge", "nft_meta_bridge", "nft_reject_bridge"]


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
@pytest.mark.parametrize("names", [["bridge", *BRIDGE], ["mpls_router"]], ids=["bridge", "mpls_router"])
def test_real_modules_register_their_handlers_and_remove_them(flavour, names):
    modules, tree = corpus(flavour)
    images: list[bytes] = []
    for name in names:
        images += [image for image in with_dependencies(modules, name) if image not in images]
    owners: dict[str, set[str]] = {}

    def look(kernel) -> None:
        for subsystem in ("rtnl_handler", "rtnl_af"):
            for entry in kernel.registrations.registry(subsystem).entries():
                owners.setdefault(subsystem, set()).add(entry.owner.name if entry.owner else "")
    kernel, errors = load_then_remove(tree, images, after_load=look)
    assert not errors, errors
    owner = names[0] if names[0] == "mpls_router" else "bridge"
    assert owners == {"rtnl_handler": {owner}, "rtnl_af": {owner}}
    assert not kernel.registrations.registry("rtnl_handler").entries()
    assert not Problems.of_kernel(kernel), Problems.of_kernel(kernel)
    assert find_module(modules, names[-1])


def test_a_protocol_out_of_range_is_linux_s_bug(tmp_path):
    from test_kbuild import kmodbuild
    _, build = corpus("6.1")
    src = tmp_path / "rtnlbug.c"
    src.write_text("""
#include <linux/module.h>
#include <net/rtnetlink.h>
MODULE_LICENSE("GPL");
static int t_dumpit(struct sk_buff *skb, struct netlink_callback *cb) { return 0; }
static int __init rtnlbug_init(void)
{
	return rtnl_register_module(THIS_MODULE, RTNL_FAMILY_MAX + 1, RTM_GETLINK, NULL, t_dumpit, 0);
}
module_init(rtnlbug_init);
""")
    ko = tmp_path / "rtnlbug.ko"
    done = kmodbuild("--kernel", str(build), str(src), "-o", str(ko))
    assert done.returncode == 0, done.stderr
    kernel, errors = load_then_remove(build, [ko.read_bytes()])
    assert errors
    log = [r.text for r in kernel.log.records()]
    assert "kernel BUG at net/core/rtnetlink.c!" in log
    assert not kernel.registrations.registry("rtnl_handler").entries()
