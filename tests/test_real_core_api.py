"""Debian's own 6.1 modules, unforced under its profile, through the core
kernel services kloader emulates (sysfs mount points, the system
workqueues, ...): what they register is recorded, undone by their exits,
and nothing leaks.  They skip, saying why, where the corpus cannot be
fetched."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import trio

from kloaderd.embed import Problems
from kloaderd.fs.tree import file_tree
from kloaderd.kernel.kernel import Kernel, KernelOptions
from kloaderd.kernel.layouts import profile_layouts
from kloaderd.kernel.profile import KernelProfile
from test_real_kernel_api import load_and_remove
from realkernel import corpus, find_module


@pytest.fixture(scope="module")
def debian61() -> tuple[Path, Path]:
    return corpus("6.1")


def load_then_remove_clean(debian61, names: list[str]) -> tuple[Kernel, dict[str, list[str]]]:
    """Load `names` in order, remove them in reverse: nothing left, no
    problem reported.  The kernel and each module's registrations."""
    modules, build = debian61
    kernel = Kernel(KernelOptions(kernel=str(build)))
    seen: dict[str, list[str]] = {}

    async def main() -> None:
        for name in names:
            await kernel.init_module(find_module(modules, name))
            seen[name] = [r["what"] for r in kernel.module_info(name)["registrations"]]
        for name in reversed(names):
            await kernel.delete_module(name)
        assert not [e for e in kernel.registrations.all() if e.owner is not None]
    trio.run(main)
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
    return kernel, seen


def test_configfs_makes_its_mount_point_and_registers_its_filesystem(debian61):
    load_and_remove(debian61, ["configfs"], {
        "configfs": [{"subsystem": "sysfs", "what": "sysfs mount point /sys/kernel/config"},
                     {"subsystem": "slab_cache", "what": "kmem_cache configfs_dir_cache"},
                     {"subsystem": "filesystem", "what": 'filesystem type "configfs"'}]})


def test_id_allocators_system_workqueues_and_clocks_in_real_modules(debian61):
    """scsi_mod numbers hosts with an IDA and destroys it at exit, uio keeps
    its devices in an IDR, sunrpc cleans its caches from
    system_power_efficient_wq with the boot time and frees an IDA: loaded
    and removed, every registration undone, no leak, no oops."""
    kernel, seen = load_then_remove_clean(debian61, ["scsi_common", "scsi_mod", "uio", "sunrpc"])
    assert "kobject /sys/kernel/sunrpc" in seen["sunrpc"]
    lines = [r.text for r in kernel.log.records()]
    assert "RPC: Registered tcp transport module." in lines
    assert "RPC: Unregistered tcp transport module." in lines


def test_cpu_hotplug_callbacks_make_per_cpu_devices_one_module_after_another(debian61):
    """cpuid and msr each install a dynamic hotplug state whose startup makes
    /dev/cpu/0/{cpuid,msr} for the one CPU and whose teardown removes it;
    one after the other, each class's /sys/devices/virtual directory comes
    and goes without taking /sys/devices/virtual with it."""
    modules, build = debian61
    kernel = Kernel(KernelOptions(kernel=str(build)))
    seen: dict[str, list[str]] = {}

    async def main() -> None:
        for name in ["cpuid", "msr", "cpuid"]:
            await kernel.init_module(find_module(modules, name))
            seen.setdefault(name, [r["what"] for r in kernel.module_info(name)["registrations"]])
            assert name in file_tree(kernel).listdir("/sys/devices/virtual")
            await kernel.delete_module(name)
            assert name not in file_tree(kernel).listdir("/sys/devices/virtual")
    trio.run(main)
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
    assert "cpuhp state 201 x86/cpuid:online" in seen["cpuid"]      # the first dynamic state
    assert "cpuhp state 201 x86/msr:online" in seen["msr"]          # given back by cpuid's exit
    assert "device /sys/devices/virtual/msr/msr0" in seen["msr"]


def test_fpu_users_a_kthread_worker_and_guid_parsing_in_real_modules(debian61):
    """raid6_pq and xor time their SSE routines inside kernel_fpu_begin/end,
    zsmalloc installs a hotplug state, the watchdog core runs "watchdogd"
    as a real-time kthread worker, libnvdimm parses its GUIDs: each loads
    and goes clean."""
    kernel, seen = load_then_remove_clean(debian61, ["raid6_pq", "xor", "zsmalloc", "watchdog", "libnvdimm"])
    assert "kthread_worker watchdogd" in seen["watchdog"]
    assert "cpuhp state 63 mm/zsmalloc:prepare" in seen["zsmalloc"]           # its own fixed state
    lines = [r.text for r in kernel.log.records()]
    assert any(line.startswith("raid6: using algorithm sse2") for line in lines)   # timed in the section


def test_transport_classes_and_attribute_containers_of_scsi_and_ata(debian61):
    """The SCSI transports and libata register their transport classes and
    attribute containers at init (no host or port is ever added: no
    hardware) and take them back at exit."""
    _, seen = load_then_remove_clean(debian61, ["scsi_common", "scsi_mod", "scsi_transport_spi",
                                                "scsi_transport_sas", "libata"])
    assert {'class "spi_transport"', 'class "spi_host"',
            "attribute container matching with spi_device_match"} <= set(seen["scsi_transport_spi"])
    assert {'class "sas_host"', 'class "sas_phy"'} <= set(seen["scsi_transport_sas"])
    assert {'class "ata_port"', "attribute container for class \"ata_port\"",
            "attribute container for class \"ata_device\""} <= set(seen["libata"])


def test_iptables_count_hook_bits_ipvs_vmallocs_and_serdev_drivers_register(debian61):
    """iptable_filter weighs its valid hooks with __sw_hweight32 (no POPCNT
    patched in), ip_vs vmallocs its connection table and sizes itself by
    nr_free_buffer_pages, surface_aggregator registers a serdev driver."""
    _, seen = load_then_remove_clean(debian61, ["x_tables", "ip_tables", "iptable_filter", "libcrc32c",
                                                "nf_defrag_ipv6", "nf_defrag_ipv4", "nf_conntrack", "ip_vs",
                                                "ip_vs_rr", "surface_aggregator"])
    assert "serial driver surface_serial_hub" in seen["surface_aggregator"]


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_xarray_and_idr_constants_are_the_kernels(flavour):
    """The offsets and flag bits lib/xarray.py and lib/idr.py read and
    write, measured with each release's own kbuild."""
    from kloaderd.lib import idr, xarray
    from tools.struct_probe import Unavailable, probe
    _, build = corpus(flavour)
    kernel = SimpleNamespace(layouts=profile_layouts(KernelProfile(build), print))
    xa, ids = kernel.layouts[xarray.XARRAY], kernel.layouts[idr.IDR]
    expected = {"xa_flags": xa.xa_flags, "xa_head": xa.xa_head,
                "idr_base": ids.idr_base, "idr_next": ids.idr_next,
                "track_free": xarray.XA_FLAGS_TRACK_FREE, "wrapped": xarray.XA_FLAGS_ALLOC_WRAPPED,
                **{f"mark{m}": xarray.mark_flag(kernel, m) for m in range(xarray.XA_MAX_MARKS)}}
    values = {"xa_flags": "offsetof(struct xarray, xa_flags)", "xa_head": "offsetof(struct xarray, xa_head)",
              "idr_base": "offsetof(struct idr, idr_base)", "idr_next": "offsetof(struct idr, idr_next)",
              "track_free": "(unsigned long)XA_FLAGS_TRACK_FREE",
              "wrapped": "(unsigned long)XA_FLAGS_ALLOC_WRAPPED",
              **{f"mark{m}": f"(unsigned long)XA_FLAGS_MARK(XA_MARK_{m})" for m in range(xarray.XA_MAX_MARKS)}}
    try:
        measured = probe(build, ["linux/xarray.h", "linux/idr.h"], values)
    except Unavailable as exc:
        pytest.skip(f"cannot build against the {flavour} tree: {exc}")
    assert measured == expected


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_cpu_hotplug_state_numbers_are_the_kernels(flavour):
    from kloaderd.kernel.cpuhp import STATES
    from tools.struct_probe import Unavailable, probe
    _, build = corpus(flavour)
    states = profile_layouts(KernelProfile(build), print)[STATES]
    names = ["CPUHP_BP_PREPARE_DYN", "CPUHP_BP_PREPARE_DYN_END", "CPUHP_AP_ONLINE_DYN",
             "CPUHP_AP_ONLINE_DYN_END", "CPUHP_ONLINE"]
    try:
        measured = probe(build, ["linux/cpuhotplug.h"], {name: name for name in names})
    except Unavailable as exc:
        pytest.skip(f"cannot build against the {flavour} tree: {exc}")
    assert measured == {name: getattr(states, name) for name in names}
