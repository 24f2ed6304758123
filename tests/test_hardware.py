"""Hardware a module asks for that kloader's machine does not have answers
as Linux answers on such a machine: I/O port and memory regions from the
resource trees (/proc/ioports, /proc/iomem), ioremap'd memory and ports
that read all ones, GPIOs that are not there; leftovers reported — under
kloader's own kernel and, built by the real kbuild, under 6.1's profile."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import trio

from kloaderd.errors import KernelError
from kloaderd.fs.file import FileTable
from kloaderd.kernel.kernel import Kernel, KernelOptions
from realkernel import corpus, find_module

SRC = Path(__file__).parent / "src"


def log(client) -> list[str]:
    return [record["text"] for record in client.dmesg()]


def said(client) -> dict[str, str]:
    """hwmod's "hwmod: WHAT = RESULT" lines."""
    out = {}
    for line in log(client):
        if line.startswith("hwmod: ") and " = " in line:
            what, _, result = line[len("hwmod: "):].partition(" = ")
            out[what] = result
    return out


def lines(client, path: str) -> list[str]:
    return client.read_file(path).decode().splitlines()


@pytest.mark.kloader(on_problems="ignore")          # ioremap of RAM is Linux's WARN_ONCE
def test_hardware_that_is_not_there_answers_as_linux(kloader, kloader_build):
    kloader.finit_module(kloader_build(SRC / "hwmod.c"))
    answers = said(kloader)
    assert answers["request_region"] == "ok"
    assert answers["request_region again"] == "NULL"          # overlaps hwmod's own: busy
    assert answers["request_region keyboard"] == "NULL"       # x86 reserves 0x60 at boot
    assert answers["inb"] == "0xff inw = 0xffff inl = 0xffffffff"
    assert answers["request_mem_region"] == "ok"
    assert answers["ioremap"] == "ok"
    assert answers["readl"] == "0xffffffff readb = 0xff readq = 0xffffffffffffffff"   # the write went nowhere
    assert answers["ioread32"] == "0xffffffff"
    assert answers["memcpy_fromio"] == "0xffffffff 0xffffffff"        # memset_io went nowhere too
    assert answers["ioremap ram"] == "NULL"
    assert "ioremap on RAM at 0x0000000001000000 - 0x0000000001000fff" in log(kloader)
    assert answers["gpio_request"] == "-517"                  # -EPROBE_DEFER: no chip has GPIO 17
    assert answers["gpiod_get"] == f"-{errno.ENOENT}"
    assert answers["gpiod_get_optional"] == "NULL"
    assert answers["probe readl"] == "0xffffffff"             # devm_platform_ioremap_resource
    assert answers["probe devm_request_region"] == "ok"
    assert answers["probe devm_gpiod_get"] == f"-{errno.ENOENT}"
    assert answers["probe devm_gpiod_get_optional"] == "NULL"

    ioports = lines(kloader, "/proc/ioports")
    assert ioports[:3] == ["0000-001f : dma1", "0020-0021 : pic1", "0040-0043 : timer0"]
    assert "0300-031f : hwmod" in ioports and "0340-0347 : hwmod-dev" in ioports
    iomem = lines(kloader, "/proc/iomem")
    assert iomem == ["00100000-7fffffff : System RAM", "fed40000-fed40fff : hwmod-mmio",
                     "fed41000-fed410ff : hwmod.0", "100000000-8ffffffff : System RAM"]

    kloader.delete_module("hwmod")
    assert log(kloader)[-2:] == ["hwmod: remove", "hwmod: exit"]
    assert not any("hwmod" in line for line in lines(kloader, "/proc/ioports") + lines(kloader, "/proc/iomem"))
    assert not any("leaked" in line for line in log(kloader))


@pytest.mark.kloader(on_problems="ignore")
def test_regions_and_mappings_left_behind_are_reported_and_freed(kloader, kloader_build):
    ko = kloader_build(SRC / "hwmod.c", defines=["BUG_LEAVE_REGION"])
    kloader.finit_module(ko)
    kloader.delete_module("hwmod")
    leaked = [line for line in log(kloader) if "leaked registration" in line]
    assert sorted(leaked) == sorted([
        'hwmod: leaked registration: region [io  0x0300-0x031f] "hwmod"',
        'hwmod: leaked registration: region [mem 0xfed40000-0xfed40fff] "hwmod-mmio"',
        "hwmod: leaked registration: ioremap of [mem 0xfed40000-0xfed40fff]",
    ])
    assert "0300-031f : hwmod" not in lines(kloader, "/proc/ioports")      # taken out of the tree
    kloader.finit_module(ko)                                               # so the ports are free again
    assert said(kloader)["request_region"] == "ok"


@pytest.mark.kloader(on_problems="ignore")
def test_busy_ports_fail_init_with_ebusy_and_a_bad_release_warns(kloader, kloader_build):
    ko = kloader_build(SRC / "hwmod.c")
    with pytest.raises(OSError) as busy:
        kloader.finit_module(ko, "io_base=0x40")                           # timer0's ports
    assert busy.value.errno == errno.EBUSY
    kloader.finit_module(ko, "bad_release=1")
    kloader.delete_module("hwmod")
    assert "Trying to free nonexistent resource <00000000000003f0-00000000000003f7>" in log(kloader)


def test_addresses_in_proc_iomem_are_zeros_for_the_unprivileged():
    """r_show: a reader without CAP_SYS_ADMIN sees 0-0 ranges."""
    async def main() -> None:
        kernel = Kernel(KernelOptions())
        owner = FileTable(kernel, "test", "cat", privileged=True)
        other = FileTable(kernel, "test", "cat", privileged=False)
        mine = (await owner.read_file("/proc/ioports", 1 << 20)).decode().splitlines()
        theirs = (await other.read_file("/proc/ioports", 1 << 20)).decode().splitlines()
        assert mine[0] == "0000-001f : dma1" and theirs[1] == "0000-0000 : pic1"
        assert (await other.read_file("/proc/iomem", 1 << 20)).decode().splitlines()[0] == \
            "00000000-00000000 : System RAM"
        await kernel.shutdown()
    trio.run(main)


def test_the_kernel_s_own_reads_of_device_memory_are_all_ones():
    """A kernel function reading an ioremap'd address (a string for
    printk's %s, an integer) reads what the CPU would: all ones."""
    from kloaderd.arch.x86.ioremap import ioremaps
    kernel = Kernel(KernelOptions())
    addr = ioremaps(kernel).map(0xFED40000, 0x100, None)
    assert kernel.mem.read_cstr(addr + 8, 6) == b"\xff" * 6
    assert kernel.mem.read_u32(addr) == 0xFFFFFFFF
    kernel.mem.write_u32(addr, 0)                       # goes nowhere
    assert kernel.mem.read(addr, 4) == b"\xff" * 4
    assert ioremaps(kernel).unmap(addr) and not kernel.mem.is_mapped(addr)
    trio.run(kernel.shutdown)


def test_debian_nvram_reads_a_cmos_that_is_not_there():
    """6.1's nvram.ko reads the CMOS through rtc_cmos_read (ports 0x70/0x71):
    all ones, so its checksum is invalid — /proc/driver/nvram says so and
    /dev/nvram answers EIO, as x86's pc_nvram_read does."""
    modules, build = corpus("6.1")

    async def main() -> None:
        kernel = Kernel(KernelOptions(kernel=str(build)))
        name = await kernel.init_module(find_module(modules, "nvram"))
        files = FileTable(kernel, "test", "cat", privileged=True)
        shown = (await files.read_file("/proc/driver/nvram", 1 << 16)).decode().splitlines()
        assert shown[0] == "Checksum status: not valid"
        assert "HD 0 type      : ff" in shown and "DOS base memory: 65535 kB" in shown
        with pytest.raises(KernelError) as failed:
            await files.read_file("/dev/nvram", 128)
        assert failed.value.errno == errno.EIO
        await kernel.delete_module(name)
        assert not [line for line in (r.text for r in kernel.log.records()) if "leaked" in line or "Oops" in line]
        await kernel.shutdown()
    trio.run(main)


@pytest.fixture
def under_profile(request) -> Path:
    """6.1's profile: kloader's platform bus reads 6.1's layouts."""
    build = corpus("6.1")[1]
    request.node.add_marker(pytest.mark.kloader(kernel=str(build), on_problems="ignore"))
    return build


@pytest.mark.slow          # builds with the real kernel's kbuild
def test_under_a_profile_regions_and_mappings_are_the_same_and_gpio_is_compiled_out(
        under_profile, kloader_build, kloader):
    try:
        ko = kloader_build(SRC / "hwmod.c")
    except Exception as exc:
        if "not on PATH" in str(exc):
            pytest.skip(str(exc))
        raise
    kloader.finit_module(ko)
    answers = said(kloader)
    assert answers["request_region"] == "ok" and answers["request_region keyboard"] == "NULL"
    assert answers["readl"] == "0xffffffff readb = 0xff readq = 0xffffffffffffffff"
    assert answers["probe readl"] == "0xffffffff"
    # Debian's cloud kernels have no GPIOLIB: <linux/gpio.h> is inline stubs
    assert answers["gpio_request"] == f"-{errno.ENOSYS}"
    assert answers["gpiod_get"] == f"-{errno.ENOSYS}" and answers["gpiod_get_optional"] == "NULL"
    assert "0300-031f : hwmod" in lines(kloader, "/proc/ioports")
    kloader.delete_module("hwmod")
    assert not any("leaked" in line for line in log(kloader))


@pytest.mark.kloader(on_problems="ignore")          # hwmod's ioremap of RAM
def test_sys_bus_lists_devices_drivers_and_the_module_s_drivers(kloader, kloader_build):
    assert {"platform", "pci", "acpi"} <= set(kloader.listdir("/sys/bus"))
    assert kloader.listdir("/sys/bus/platform") == ["devices", "drivers"]
    kloader.finit_module(kloader_build(SRC / "hwmod.c"))
    assert kloader.listdir("/sys/bus/platform/devices") == ["hwmod.0"]
    link = kloader.stat("/sys/bus/platform/devices/hwmod.0", follow=False)
    assert link["type"] == "link" and link["target"] == "../../../devices/platform/hwmod.0"
    assert kloader.stat("/sys/bus/platform/devices/hwmod.0")["type"] == "dir"
    assert kloader.listdir("/sys/bus/platform/drivers") == ["hwmod"]
    assert kloader.listdir("/sys/bus/platform/drivers/hwmod") == ["hwmod.0", "module"]
    assert kloader.stat("/sys/bus/platform/drivers/hwmod/module", follow=False)["target"] == \
        "../../../../module/hwmod"
    assert "refcnt" in kloader.listdir("/sys/bus/platform/drivers/hwmod/module")
    assert kloader.listdir("/sys/module/hwmod/drivers") == ["platform:hwmod"]
    assert kloader.stat("/sys/module/hwmod/drivers/platform:hwmod", follow=False)["target"] == \
        "../../../bus/platform/drivers/hwmod"
    assert kloader.listdir("/sys/module/hwmod/drivers/platform:hwmod") == ["hwmod.0", "module"]
    device = "/sys/devices/platform/hwmod.0"
    assert kloader.stat(device + "/driver", follow=False)["target"] == "../../../bus/platform/drivers/hwmod"
    assert kloader.stat(device + "/subsystem", follow=False)["target"] == "../../../bus/platform"
    kloader.delete_module("hwmod")
    assert kloader.listdir("/sys/bus/platform/devices") == []
    assert kloader.listdir("/sys/bus/platform/drivers") == []


@pytest.mark.kloader(on_problems="ignore")
def test_a_gpio_number_gpio_is_valid_rejects_is_6_1_s_quiet_success(kloader, kloader_build):
    """6.1's gpio_request of an invalid number: gpio_to_desc warns, then
    gpiod_request(NULL) is 0; the value calls on it do nothing and read 0."""
    kloader.finit_module(kloader_build(SRC / "hwmod.c"), "gpio=2000")
    answers = said(kloader)
    assert answers["gpio_request"] == "0" and answers["gpio_get_value"] == "0"
    assert "invalid GPIO 2000" in log(kloader)
    kloader.delete_module("hwmod")
