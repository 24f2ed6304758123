"""What works on 6.1 works on a newer build tree: Debian modules using the
subsystems whose structure layouts (and enum values, slab flags) are
measured per release load, initialise and unload clean under the Debian 6.1
and 6.12 profiles alike — the modules read and hand the kernel the same
structures at other offsets (6.12's `struct ratelimit_state`,
`struct cpuinfo_x86`, `struct shrinker`, ...)."""

from __future__ import annotations

import pytest
import trio

from kloaderd.embed import Problems
from kloaderd.kernel.kernel import Kernel, KernelOptions
from realkernel import corpus, find_module, load_then_remove

# (modules in load order, what they exercise)
MODULES = [
    (["cpufreq_userspace"], "a cpufreq governor registered and unregistered"),
    (["ts_kmp"], "a textsearch algorithm"),
    (["msr"], "a CPU hotplug state (cpuhp enum values) and ratelimited printks"),
    (["watchdog"], "a kthread worker created and destroyed"),
    (["iosf_mbi"], "a CPU latency QoS request"),
    (["qemu_fw_cfg"], "resource trees"),
    (["button"], "DMI quirk tables"),
]


@pytest.mark.parametrize("release", ["6.1", "6.12"])
@pytest.mark.parametrize("names", [m[0] for m in MODULES], ids=[m[0][-1] for m in MODULES])
def test_a_module_of_a_converted_subsystem_loads_and_unloads_clean(release, names):
    modules, build = corpus(release)
    kernel, errors = load_then_remove(build, [find_module(modules, name) for name in names])
    assert not errors
    log = [r.text for r in kernel.log.records()]
    assert not [line for line in log if "not emulated" in line]
    problems = Problems.of_kernel(kernel)
    assert not problems, problems


def test_a_virtio_driver_registers_on_the_built_in_bus_of_6_12():
    # 6.12 builds virtio in: its drivers register through vmlinux's
    # __register_virtio_driver, and bind to no device (the machine has none).
    modules, build = corpus("6.12")
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        name = await kernel.init_module(find_module(modules, "virtio-rng"))
        assert "virtio driver virtio_rng" in str(kernel.module_info(name)["registrations"])
        await kernel.delete_module(name)
        await kernel.shutdown()
    trio.run(main)
    problems = Problems.of_kernel(kernel)
    assert not problems, problems


NEW_NAMES = {   # 6.6+/6.10+ export: the 6.1 export whose code it runs
    "__kmalloc_noprof": "__kmalloc", "__kmalloc_cache_noprof": "kmalloc_trace",
    "__kmalloc_cache_node_noprof": "kmalloc_node_trace", "__kmalloc_large_noprof": "kmalloc_large",
    "__kmalloc_large_node_noprof": "kmalloc_large_node", "krealloc_noprof": "krealloc",
    "kmemdup_noprof": "kmemdup", "kmem_cache_alloc_noprof": "kmem_cache_alloc",
    "kmem_cache_alloc_lru_noprof": "kmem_cache_alloc_lru", "kmem_cache_alloc_node_noprof": "kmem_cache_alloc_node",
    "get_free_pages_noprof": "__get_free_pages", "get_zeroed_page_noprof": "get_zeroed_page",
    "mempool_init_noprof": "mempool_init", "mempool_create_node_noprof": "mempool_create_node",
    "mempool_alloc_noprof": "mempool_alloc", "rhashtable_init_noprof": "rhashtable_init",
    "rhltable_init_noprof": "rhltable_init", "vmalloc_noprof": "vmalloc", "vzalloc_noprof": "vzalloc",
    "__list_add_valid_or_report": "__list_add_valid",
    "__list_del_entry_valid_or_report": "__list_del_entry_valid",
}


def test_renamed_exports_run_the_code_of_their_6_1_names():
    from kloaderd.kernel import api
    api.load_all()
    for new, old in NEW_NAMES.items():
        assert (api.FUNCTIONS[new].impl, api.FUNCTIONS[new].nargs) == \
            (api.FUNCTIONS[old].impl, api.FUNCTIONS[old].nargs), new
