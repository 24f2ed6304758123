"""Debian's own modules, unforced under their release's profile, through
the long tail of single kernel functions and objects that stopped them
(`_ctype`, `fips_enabled`, `sys_tz`, ...): each loads, runs its init and
exit, and leaves nothing behind, on 6.1 and 6.12.  And a module that reads
an object kloader does not emulate is told which one, even when it reads
past the object's start.  They skip, saying why, where the corpus cannot
be fetched."""

from __future__ import annotations

import errno

import pytest
import trio

from kloaderd.embed import Problems
from kloaderd.errors import KernelError
from kloaderd.kernel.kernel import Kernel, KernelOptions
from kloaderd.lib.ctype import CTYPE
from kloaderd.workqueue.workqueue import workqueues
from realkernel import corpus, find_module

RELEASES = ["6.1", "6.12"]


def load_then_remove_clean(flavour: str, names: list[str]) -> Kernel:
    """Load `names` in order, remove them in reverse (waiting, as `krmmod
    --wait`, for a reference held a moment: DO_ONCE's deferred key disable
    keeps its module until its work runs): no problem reported."""
    modules, build = corpus(flavour)
    kernel = Kernel(KernelOptions(kernel=str(build)))

    async def main() -> None:
        loaded = [await kernel.init_module(find_module(modules, name)) for name in names]
        for name in reversed(loaded):
            await kernel.delete_module(name, wait=True, timeout=30)
        await kernel.shutdown()
    trio.run(main)
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
    return kernel


def init_failure(flavour: str, names: list[str]) -> KernelError:
    """Load `names` in order; the last one's init must fail: how."""
    modules, build = corpus(flavour)
    kernel = Kernel(KernelOptions(kernel=str(build)))
    failure: list[KernelError] = []

    async def main() -> None:
        for name in names[:-1]:
            await kernel.init_module(find_module(modules, name))
        try:
            await kernel.init_module(find_module(modules, names[-1]))
        except KernelError as exc:
            failure.append(exc)
        await kernel.shutdown()
    trio.run(main)
    assert failure, f"{names[-1]} loaded"
    return failure[0]


@pytest.mark.parametrize("flavour", RELEASES)
def test_team_modes_check_their_names_with_ctype(flavour):
    """team_mode_register() checks a mode's name with isalnum() on `_ctype`."""
    load_then_remove_clean(flavour, ["team", "team_mode_random", "team_mode_activebackup",
                                     "team_mode_broadcast", "team_mode_loadbalance",
                                     "team_mode_roundrobin"])


def test_drbg_reads_fips_enabled():
    """6.1's drbg (built in on 6.12) registers all its DRBGs: not in FIPS mode."""
    load_then_remove_clean("6.1", ["drbg"])


@pytest.mark.parametrize("flavour", RELEASES)
def test_xt_time_reads_sys_tz(flavour):
    load_then_remove_clean(flavour, ["x_tables", "xt_time"])


@pytest.mark.parametrize("flavour", RELEASES)
def test_a_read_past_a_not_emulated_objects_start_names_that_object(flavour):
    """pata_legacy's init calls through `pv_ops` (a struct of function
    pointers) at an offset that lands in a later name's 16-byte stub: the
    oops names pv_ops, the object the module reads, not that name."""
    failure = init_failure(flavour, ["scsi_common", "scsi_mod", "libata", "pata_legacy"])
    assert "kernel object pv_ops is not emulated" in failure.message, failure.message


def test_ctype_classes_characters_as_linux():
    """ASCII as C's locale, the upper half as Latin-1; the bits of
    include/linux/ctype.h (_U 1, _L 2, _D 4, _C 8, _P 16, _S 32, _X 64, _SP 128)."""
    def has(c: int, bits: int) -> bool:
        return bool(CTYPE[c] & bits)
    for c in range(128):
        ch = chr(c)
        assert has(c, 0x01) == ch.isupper() and has(c, 0x02) == ch.islower()
        assert has(c, 0x04) == ch.isdigit()
        assert has(c, 0x08) == (c < 32 or c == 127)
        assert has(c, 0x20) == (ch in " \t\n\v\f\r")
        assert has(c, 0x40) == (ch in "abcdefABCDEF")
        assert has(c, 0x10) == (ch.isprintable() and not ch.isalnum() and ch != " ")
    assert [c for c in range(256) if has(c, 0x80)] == [0x20, 0xA0]
    for c in range(0xC0, 0x100):
        assert has(c, 0x01) == chr(c).isupper() and has(c, 0x02) == chr(c).islower(), hex(c)
    assert CTYPE[0xD7] == CTYPE[0xF7] == 0x10 and not any(CTYPE[0x80:0xA0])


@pytest.mark.parametrize("flavour", RELEASES)
def test_nvme_transports_flush_the_built_in_cores_workqueues(flavour):
    """nvme-core is built in: nvme_wq, nvme_reset_wq and nvme_delete_wq are
    vmlinux's, and the transports' exits flush nvme_delete_wq."""
    kernel = load_then_remove_clean(flavour, ["nvme-fabrics", "nvme-tcp", "nvme-fc"])
    names = {wq.name for wq in workqueues(kernel).by_address.values()}
    assert {"nvme-wq", "nvme-reset-wq", "nvme-delete-wq"} <= names


@pytest.mark.parametrize("flavour", RELEASES)
def test_firmware_the_machine_lacks_and_what_fou_and_curve25519_read_first(flavour):
    """efi-pstore finds no efivars to write (efivar_supports_writes), iscsi_ibft
    no table (ibft_phys_addr 0), fou fills iptun_encaps, libcurve25519's
    self-test compares with __crypto_memneq."""
    load_then_remove_clean(flavour, ["efi-pstore", "iscsi_boot_sysfs", "iscsi_ibft",
                                     "ip_tunnel", "udp_tunnel", "ip6_udp_tunnel", "fou",
                                     "libcurve25519-generic", "curve25519-x86_64", "libcurve25519"])


def test_einj_probes_its_own_device_once_and_hwpoison_inject_clears_its_filter():
    """6.12's einj registers its platform device, then __platform_driver_probe
    binds or gives up (no EINJ table: -ENODEV, which einj's init ignores)."""
    load_then_remove_clean("6.12", ["einj", "hwpoison-inject"])


@pytest.mark.parametrize("flavour, names, errno_", [
    ("6.1", ["ptp_kvm"], errno.EOPNOTSUPP),    # kvm_para_available(): no KVM
    ("6.12", ["ptp_kvm"], errno.EOPNOTSUPP),
    ("6.1", ["efivarfs"], errno.ENODEV),                           # efivars_kobject(): no EFI
    ("6.1", ["pcc-cpufreq"], errno.ENODEV),                        # no current cpufreq driver
    ("6.12", ["pcc-cpufreq"], errno.ENODEV),                       # __platform_driver_probe: none bound
    ("6.12", ["acpi-cpufreq"], errno.ENODEV)])
def test_modules_for_hardware_the_machine_lacks_fail_as_on_it(flavour, names, errno_):
    assert init_failure(flavour, names).errno == errno_


@pytest.mark.parametrize("flavour", RELEASES)
def test_ipvlan_registers_its_address_validators(flavour):
    """ipvlan vets addresses on the IPv4 and IPv6 validator chains (blocking
    chains, as devinet.c's and addrconf_core.c's) and leaves neither behind."""
    load_then_remove_clean(flavour, ["ipvlan"])


def test_const_pcpu_hot_is_pcpu_hot():
    """6.12 exports `pcpu_hot` under a second, const name that modules read
    `current` through (smc, dm-vdo): the same per-CPU variable, so
    `current` reads NULL there as through `pcpu_hot` (no task_struct)."""
    _, build = corpus("6.12")
    kernel = Kernel(KernelOptions(kernel=str(build)))
    try:
        const, hot = kernel.symbols.get("const_pcpu_hot"), kernel.symbols.get("pcpu_hot")
        assert const is not None and hot is not None
        assert const.address == hot.address < 0x10000         # a per-CPU offset
        assert kernel.mem.read_u64(kernel.machine.per_cpu_base + const.address) == 0
        assert kernel.mem.read_u32(kernel.machine.per_cpu_base + const.address + 8) == 0x80000000
    finally:
        trio.run(kernel.shutdown)
