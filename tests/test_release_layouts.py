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
    problems = Problems.from_log(kernel.log.records(), kernel.taints, kernel.taint_string())
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
    problems = Problems.from_log(kernel.log.records(), kernel.taints, kernel.taint_string())
    assert not problems, problems
