"""What a module learns about the machine under the Debian 6.1 profile:
the CPU (`boot_cpu_data`, `x86_match_cpu`), the platform (DMI quirk tables,
no hypervisor, no Xen, no ACPI, no PCI devices), its RAM (`_totalram_pages`,
`si_meminfo`)
and CPU latency QoS requests, through a
kbuild-built module and corpus modules that ask."""

from __future__ import annotations

import errno

import pytest
import trio

from kloaderd.arch.x86.cpuinfo import CPUINFO, boot_cpu_data, cpu, cpu_has, cpuid
from kloaderd.embed import Problems
from kloaderd.kernel.kernel import Kernel, KernelOptions
from realkernel import corpus, find_module, load_then_remove, run_kbuilt

X86_FEATURE_XMM4_2 = 4 * 32 + 20

IDENTITY = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/dmi.h>
#include <linux/mm.h>
#include <asm/cpu_device_id.h>
#include <asm/processor.h>
#include <asm/hypervisor.h>
#include <xen/xen.h>
#include <linux/acpi.h>
#include <linux/pci.h>
#include <linux/pm_qos.h>
MODULE_LICENSE("GPL");
static struct pm_qos_request qos;
static struct sysinfo si;
static int called;
static int quirk(const struct dmi_system_id *id) { called++; return 0; }
static const struct dmi_system_id ours[] = {
	{ .callback = quirk, .ident = "kloader", .matches = { DMI_MATCH(DMI_SYS_VENDOR, "kload") } },
	{ .ident = "exact", .matches = { DMI_EXACT_MATCH(DMI_PRODUCT_NAME, "emulated x86-64 machine"),
					 DMI_MATCH(DMI_BIOS_DATE, "2024") } },
	{ .ident = "board", .matches = { DMI_MATCH(DMI_BOARD_NAME, "") } },
	{ }
};
static const struct dmi_system_id theirs[] = {
	{ .ident = "Dell", .matches = { DMI_MATCH(DMI_SYS_VENDOR, "Dell Inc.") } },
	{ }
};
static const struct x86_cpu_id sse42[] = { X86_MATCH_FEATURE(X86_FEATURE_XMM4_2, NULL), {} };
static const struct x86_cpu_id p4[] = { X86_MATCH_VENDOR_FAM(INTEL, 15, NULL), {} };
static const struct x86_cpu_id avx512[] = { X86_MATCH_FEATURE(X86_FEATURE_AVX512F, NULL), {} };
static int __init identity_init(void)
{
	const struct dmi_system_id *first = dmi_first_match(ours);
	int count = dmi_check_system(ours);

	pr_info("identity: dmi %d called %d first %s theirs %d %p\n", count, called,
		first ? first->ident : "-", dmi_check_system(theirs), dmi_first_match(theirs));
	pr_info("identity: vendor %s match %d\n", dmi_get_system_info(DMI_SYS_VENDOR),
		dmi_match(DMI_PRODUCT_NAME, "emulated x86-64 machine"));
	pr_info("identity: cpu %s family %d model %d sse4.2 %d\n", boot_cpu_data.x86_vendor_id,
		boot_cpu_data.x86, boot_cpu_data.x86_model, boot_cpu_has(X86_FEATURE_XMM4_2));
	pr_info("identity: match %d %d %d\n", x86_match_cpu(sse42) == sse42,
		x86_match_cpu(p4) != NULL, x86_match_cpu(avx512) != NULL);
	pr_info("identity: hyper %d xen %d acpi_disabled %d ram %lu\n", x86_hyper_type,
		xen_domain(), acpi_disabled, totalram_pages());
	si.uptime = 7;
	si_meminfo(&si);
	pr_info("identity: meminfo %lu %d %lu %lu %lu %u %ld\n", si.totalram, si.freeram > 0,
		si.sharedram, si.bufferram, si.totalhigh, si.mem_unit, si.uptime);
	pr_info("identity: pci %p %d\n", pci_get_device(PCI_ANY_ID, PCI_ANY_ID, NULL),
		pci_dev_present((const struct pci_device_id[]){ { PCI_DEVICE(0x8086, 0x1234) }, {} }));
	cpu_latency_qos_add_request(&qos, PM_QOS_DEFAULT_VALUE);
	cpu_latency_qos_add_request(&qos, 20);
	cpu_latency_qos_update_request(&qos, 10);
	pr_info("identity: qos %d %d\n", cpu_latency_qos_request_active(&qos), qos.node.prio);
	pci_dev_put(NULL);
	return 0;
}
static void __exit identity_exit(void)
{
	cpu_latency_qos_remove_request(&qos);
	pr_info("identity: qos %d\n", cpu_latency_qos_request_active(&qos));
}
module_init(identity_init);
module_exit(identity_exit);
"""


@pytest.mark.parametrize("release", ["6.1", "6.12"])
def test_boot_cpu_data_is_what_cpuid_answers_at_each_releases_offsets(release):
    # 6.10 moved family, model and vendor (x86_vfm) and dropped x86_max_cores:
    # the bytes follow the kernel's measured layout, not 6.1's offsets.
    _, build = corpus(release)
    kernel = Kernel(KernelOptions(kernel=str(build)))
    at = kernel.layouts[CPUINFO]
    data = boot_cpu_data(kernel.layouts)
    assert len(data) == at.size
    _, ebx, ecx, edx = cpuid(0)
    assert data[at.x86_vendor_id:at.x86_vendor_id + 12] == ebx.to_bytes(4, "little") + \
        edx.to_bytes(4, "little") + ecx.to_bytes(4, "little")
    assert (data[at.x86], data[at.x86_model]) == (cpu().family, cpu().model)
    caps = at.x86_capability
    assert int.from_bytes(data[caps + 16:caps + 20], "little") == cpuid(1)[2]
    assert cpu_has(X86_FEATURE_XMM4_2) == bool(cpuid(1)[2] >> 20 & 1)
    assert (at.x86_max_cores is None) == (release == "6.12")


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("release", ["6.1", "6.12"])
def test_a_module_reads_the_machine_it_runs_on(tmp_path, release):
    kernel, lines = run_kbuilt(tmp_path, "identity", IDENTITY, release)
    family = cpu().family
    ram = kernel.options.heap_limit // 4096
    assert lines == [
        "identity: dmi 2 called 1 first kloader theirs 0 0000000000000000",
        "identity: vendor kloader match 1",
        f"identity: cpu GenuineIntel family {family} model {cpu().model} sse4.2 1",
        f"identity: match 1 {int(family == 15)} 0",
        f"identity: hyper 0 xen 0 acpi_disabled 1 ram {ram}",
        f"identity: meminfo {ram} 1 0 0 0 4096 7",
        "identity: pci 0000000000000000 0",
        "identity: qos 1 10",
        "identity: qos 0"]
    log = [r.text for r in kernel.log.records()]
    assert "cpu_latency_qos_add_request called for already added request" in log
    assert sum(line.startswith("WARNING: ") for line in log) == 1


@pytest.mark.parametrize("names", [["xen-blkfront"], ["speedstep-lib", "p4-clockmod"],
                                   ["leds-ss4200"], ["hv_vmbus"]])
def test_drivers_for_another_machine_find_no_device(names):
    modules, build = corpus("6.1")
    kernel, errors = load_then_remove(build, [find_module(modules, name) for name in names])
    assert errors == {len(names) - 1: errno.ENODEV}
    assert not any("not emulated" in r.text for r in kernel.log.records())


def test_crc32c_intel_outranks_the_generic_crc32c_for_libcrc32c():
    modules, build = corpus("6.1")
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        intel = await kernel.init_module(find_module(modules, "crc32c-intel"))
        lib = await kernel.init_module(find_module(modules, "libcrc32c"))
        assert kernel.module_info(intel)["refcnt"] == 1     # libcrc32c's transform pins it
        await kernel.delete_module(lib)
        assert kernel.module_info(intel)["refcnt"] == 0
        await kernel.delete_module(intel)
        await kernel.shutdown()
    trio.run(main)
    problems = Problems.of_kernel(kernel)
    assert not problems, problems


@pytest.mark.parametrize("names", [["iosf_mbi"], ["cryptd"], ["cdrom"], ["pvpanic"],
                                   ["ledtrig-heartbeat"]])
def test_base_modules_others_depend_on_load_and_unload_cleanly(names):
    # iosf_mbi: a latency QoS request and a PCI driver with no device;
    # cryptd: alloc_percpu and a request queue; cdrom: register_sysctl;
    # pvpanic, ledtrig-heartbeat: a block on panic_notifier_list.
    modules, build = corpus("6.1")
    kernel, errors = load_then_remove(build, [find_module(modules, name) for name in names])
    assert not errors
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
