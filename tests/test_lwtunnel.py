"""Light-weight tunnel encapsulation types under the Debian profiles:
`lwtt`, built with each kernel's own kbuild, takes the MPLS slot, is
refused a slot already served (its own, and IP's, which the kernel holds)
and a type out of range, deletes only its own ops; ops its exit forgets are
reported at unload.  The real modules that register one (mpls_iptunnel,
ila) load and go leaving nothing.  They skip, saying why, where the corpus
or the kernel's compiler is absent."""

from __future__ import annotations

import errno

import pytest

from kloaderd.embed import Problems
from realkernel import corpus, load_then_remove, run_kbuilt, with_dependencies

LWTT = r"""
#include <linux/module.h>
#include <net/lwtunnel.h>
MODULE_LICENSE("GPL");

static const struct lwtunnel_encap_ops ops = { .owner = THIS_MODULE };
static const struct lwtunnel_encap_ops other = { .owner = THIS_MODULE };

static int __init lwtt_init(void)
{
	pr_info("lwtt: mpls %d\n", lwtunnel_encap_add_ops(&ops, LWTUNNEL_ENCAP_MPLS));
	pr_info("lwtt: mpls again %d\n", lwtunnel_encap_add_ops(&other, LWTUNNEL_ENCAP_MPLS));
	pr_info("lwtt: ip %d\n", lwtunnel_encap_add_ops(&other, LWTUNNEL_ENCAP_IP));
	pr_info("lwtt: past max %d\n", lwtunnel_encap_add_ops(&other, LWTUNNEL_ENCAP_MAX + 1));
	pr_info("lwtt: del none %d\n", lwtunnel_encap_del_ops(&ops, LWTUNNEL_ENCAP_NONE));
	pr_info("lwtt: del other %d\n", lwtunnel_encap_del_ops(&other, LWTUNNEL_ENCAP_MPLS));
	return 0;
}

static void __exit lwtt_exit(void)
{
#ifndef LEAK
	pr_info("lwtt: del %d\n", lwtunnel_encap_del_ops(&ops, LWTUNNEL_ENCAP_MPLS));
#endif
}
module_init(lwtt_init);
module_exit(lwtt_exit);
"""


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_a_type_is_taken_once_and_given_back_by_its_owner(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "lwtt", LWTT, flavour)
    assert lines == ["lwtt: mpls 0", "lwtt: mpls again -1", "lwtt: ip -1",
                     f"lwtt: past max {-errno.ERANGE}", f"lwtt: del none {-errno.ERANGE}",
                     "lwtt: del other -1", "lwtt: del 0"]
    assert not Problems.of_kernel(kernel), Problems.of_kernel(kernel)


def test_ops_left_registered_are_reported(tmp_path):
    kernel, _ = run_kbuilt(tmp_path, "lwtt", "#define LEAK\n" + LWTT, "6.1")
    log = [r.text for r in kernel.log.records()]
    assert "lwtt: leaked registration: lwtunnel encap type MPLS" in log
    assert not kernel.registrations.registry("lwtunnel_encap").entries()


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
@pytest.mark.parametrize("name,encap", [("mpls_iptunnel", "MPLS"), ("ila", "ILA")])
def test_real_modules_register_their_encap_type_and_remove_it(flavour, name, encap):
    modules, tree = corpus(flavour)
    seen: list[str] = []

    def look(kernel) -> None:
        seen.extend(e.what for e in kernel.registrations.registry("lwtunnel_encap").entries())
    kernel, errors = load_then_remove(tree, with_dependencies(modules, name), after_load=look)
    assert not errors, errors
    assert seen == [f"lwtunnel encap type {encap}"]
    assert not Problems.of_kernel(kernel), Problems.of_kernel(kernel)
