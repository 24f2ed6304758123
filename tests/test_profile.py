"""Kernel profiles: a real kernel's identity from its build tree (DESIGN.md §9).

Two kinds of tree are used.  A synthetic one, written here, lists kloader's
own implementations with their kmodbuild CRCs plus exports kloader does not
implement, so the mechanism is tested wherever gcc is.  The real Debian build
trees of the corpus (6.1 and 6.12) are the outside oracle: their modules'
`.modinfo` vermagic, their Module.symvers CRCs; those tests skip with the
corpus's reason where it cannot be had.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest
import trio

from kloader_client import Client
from kloaderd import embed
from kloaderd.errors import KernelError
from realkernel import corpus, read_module
from kloaderd.kernel import api
from kloaderd.kernel.kernel import Kernel, KernelOptions
from kloaderd.kernel.profile import (KernelProfile, find_build_tree, load_profile, parse_config,
                                     parse_symvers, vermagic_string)
from lifecycle_helpers import footprint, texts

RELEASE = "6.1.99-kloadertest"
NOT_EMULATED = {"kloader_test_register": (0x11112222, "EXPORT_SYMBOL_GPL", ""),
                "ns_func": (0x33334444, "EXPORT_SYMBOL", "TESTNS"),
                "init_user_ns": (0x55556666, "EXPORT_SYMBOL", "")}
# Kernel data and per-CPU exports a profile backs with memory (kdata.py, percpu.py).
KERNEL_DATA = ("current_task", "__preempt_count", "cpu_number", "this_cpu_off", "fixed_percpu_data",
               "nr_cpu_ids", "__per_cpu_offset", "kmalloc_caches", "system_wq",
               "__cpu_online_mask")
CONFIG = ("# CONFIG_PREEMPT_NONE is not set\nCONFIG_SMP=y\nCONFIG_NR_CPUS=64\nCONFIG_ZONE_DMA=y\nCONFIG_PREEMPT_BUILD=y\n"
          "CONFIG_PREEMPT_DYNAMIC=y\nCONFIG_MODULE_UNLOAD=y\nCONFIG_MODVERSIONS=y\n"
          'CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14) 12.2.0"\n')


def write_tree(root: Path, release: str = RELEASE, *, config: str = CONFIG,
               utsrelease: bool = True) -> Path:
    """A build tree whose vmlinux exports kloader's implementations (with the
    CRCs kmodbuild records) and `NOT_EMULATED`, plus a module's export."""
    api.load_all()
    lines = []
    for name, entry in sorted({**api.FUNCTIONS, **api.OBJECTS}.items()):
        kind = "EXPORT_SYMBOL_GPL" if entry.gpl else "EXPORT_SYMBOL"
        lines.append(f"0x{api.symbol_crc(name):08x}\t{name}\tvmlinux\t{kind}\t")
    for name, (crc, kind, ns) in NOT_EMULATED.items():
        lines.append(f"0x{crc:08x}\t{name}\tvmlinux\t{kind}\t{ns}")
    for name in KERNEL_DATA:
        lines.append(f"0x0000cafe\t{name}\tvmlinux\tEXPORT_SYMBOL\t")
    lines.append("0x0badc0de\tcast_s1\tcrypto/cast_common\tEXPORT_SYMBOL_GPL\t")
    root.mkdir(parents=True, exist_ok=True)
    (root / "Module.symvers").write_text("\n".join(lines) + "\n")
    (root / ".config").write_text(config)
    if utsrelease:
        (root / "include/generated").mkdir(parents=True)
        (root / "include/generated/utsrelease.h").write_text(f'#define UTS_RELEASE "{release}"\n')
    else:
        (root / "include/config").mkdir(parents=True)
        (root / "include/config/kernel.release").write_text(release + "\n")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "build")


# -- reading a tree ------------------------------------------------------------------

def test_vermagic_is_built_from_the_config_as_vermagic_h_does():
    config = parse_config(CONFIG)
    assert vermagic_string("6.1.0", config) == "6.1.0 SMP preempt mod_unload modversions "
    assert vermagic_string("6.1.0", {}) == "6.1.0 "
    assert vermagic_string("6.1.0", {"CONFIG_PREEMPT_RT": "y", "CONFIG_MODULE_UNLOAD": "y"}) \
        == "6.1.0 preempt_rt mod_unload "
    assert vermagic_string("6.1.0", {"CONFIG_SMP": "y"}, "abcd") == "6.1.0 SMP RANDSTRUCT_abcd"
    assert config["CONFIG_CC_VERSION_TEXT"] == "gcc-12 (Debian 12.2.0-14) 12.2.0"
    assert "CONFIG_PREEMPT_NONE" not in config


def test_symvers_lines_and_their_errors():
    entries = parse_symvers("0x0000abcd\tfoo\tvmlinux\tEXPORT_SYMBOL_GPL\tNS\n"
                            "0x00000001\tbar\tdrivers/x\tEXPORT_SYMBOL\t\n")
    assert entries["foo"].crc == 0xabcd and entries["foo"].gpl and entries["foo"].namespace == "NS"
    assert not entries["bar"].gpl and entries["bar"].module == "drivers/x"
    assert list(parse_symvers("0x1\tfoo\tvmlinux\tEXPORT_SYMBOL\n0x2\tbar\tm\tEXPORT_SYMBOL\n",
                              module="vmlinux")) == ["foo"]
    with pytest.raises(ValueError, match=r"Module.symvers:2: expected"):
        parse_symvers("0x1\tfoo\tvmlinux\tEXPORT_SYMBOL\nbroken line\n")


def test_a_tree_by_directory_or_release(tmp_path: Path):
    write_tree(tmp_path / "lib/modules/9.9.9-x/build", "9.9.9-x")
    write_tree(tmp_path / "usr/src/linux-headers-9.9.8-y", "9.9.8-y", utsrelease=False)
    assert find_build_tree("9.9.9-x", roots=(tmp_path,)) == (tmp_path / "lib/modules/9.9.9-x/build").resolve()
    assert find_build_tree("9.9.8-y", roots=(tmp_path,)).name == "linux-headers-9.9.8-y"
    profile = KernelProfile(tmp_path / "usr/src/linux-headers-9.9.8-y")
    assert profile.release == "9.9.8-y"            # from include/config/kernel.release
    assert profile.version == (9, 9)
    with pytest.raises(KernelError) as missing:
        find_build_tree("0.0.0-none", roots=(tmp_path,))
    assert missing.value.errno == errno.ENOENT
    assert "install linux-headers-0.0.0-none, or give --kernel DIR" in missing.value.message
    (tmp_path / "empty").mkdir()
    with pytest.raises(KernelError, match=r"no Module.symvers and no .config"):
        find_build_tree(tmp_path / "empty")


def test_files_are_read_on_first_use(tree: Path):
    profile = KernelProfile(tree)
    assert "exports" not in vars(profile) and "config" not in vars(profile)
    assert profile.vermagic == f"{RELEASE} SMP preempt mod_unload modversions "
    assert "exports" not in vars(profile)
    assert "cast_s1" not in profile.exports and "cast_s1" in profile.symvers
    assert profile.system_map is None


def test_kernels_of_one_tree_share_its_profile_until_the_tree_changes(tree: Path):
    """A process building many kernels (kloader-survey's workers) parses a
    tree once; a tree edited in place is read again."""
    first = Kernel(KernelOptions(kernel=str(tree)))
    assert Kernel(KernelOptions(kernel=str(tree))).profile is first.profile is load_profile(tree)
    symvers = tree / "Module.symvers"
    symvers.write_text(symvers.read_text() + "0x00000001\tkloader_new_export\tvmlinux\tEXPORT_SYMBOL\t\n")
    again = Kernel(KernelOptions(kernel=str(tree)))
    assert again.profile is not first.profile
    assert again.symbols.get("kloader_new_export") is not None
    assert first.symbols.get("kloader_new_export") is None


# -- the kernel under a profile ------------------------------------------------------

def test_the_kernel_takes_the_profiles_identity_and_exports(tree: Path):
    kernel = Kernel(KernelOptions(kernel=str(tree)))
    status = kernel.status()
    assert (status["release"], status["vermagic"], status["kernel"]) == \
        (RELEASE, f"{RELEASE} SMP preempt mod_unload modversions ", str(tree.resolve()))
    sym = kernel.symbols.get("kloader_test_register")
    assert (sym.crc, sym.gpl_only, sym.namespace) == (0x11112222, True, "")
    assert kernel.symbols.get("ns_func").namespace == "TESTNS"
    assert kernel.symbols.get("cast_s1") is None     # a module's export, not the kernel's
    assert kernel.symbols.get("msleep").address == kernel.machine.kernel_symbols()["msleep"]
    assert len(kernel.symbols) == len({*api.FUNCTIONS, *api.OBJECTS, *NOT_EMULATED, *KERNEL_DATA})
    assert kernel.symbolize(sym.address) == "kloader_test_register+0x0/0x10"


def test_without_a_profile_kloaders_own_kernel_stays():
    status = Kernel().status()
    assert (status["release"], status["kernel"]) == ("6.6.0-kloader", "kloader")
    assert status["vermagic"] == "6.6.0-kloader SMP preempt mod_unload modversions "


NOT_EMULATED_SRC = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/printk.h>
MODULE_LICENSE("GPL");
#ifdef IMPORT
MODULE_IMPORT_NS(TESTNS);
#endif
extern int kloader_test_register(void *alg);
extern void ns_func(void);
static int __init ne_init(void)
{
	pr_info("ne: calling it\n");
#ifdef NS
	ns_func();
	return 0;
#else
	return kloader_test_register((void *)0) + 1;
#endif
}
static void __exit ne_exit(void) { }
module_init(ne_init);
module_exit(ne_exit);
"""


@pytest.fixture
def ne_source(tmp_path: Path) -> Path:
    path = tmp_path / "ne.c"
    path.write_text(NOT_EMULATED_SRC)
    return path


def _load(kernel: Kernel, image: bytes, **kw) -> None:
    trio.run(lambda: kernel.init_module(image, **kw))


def test_calling_a_not_emulated_function_oopses_naming_it_and_unwinds(tree, ne_source, kloader_build):
    ko = kloader_build(ne_source, name="ne", vermagic=f"{RELEASE} SMP preempt mod_unload modversions ")
    kernel = Kernel(KernelOptions(kernel=str(tree)))
    before = footprint(kernel)
    with pytest.raises(KernelError) as failed:
        _load(kernel, ko.read_bytes())
    assert failed.value.errno == errno.EFAULT
    assert "ne: init oopsed: kloader: kernel function kloader_test_register is not emulated" \
        in failed.value.message
    log = texts(kernel)
    assert "ne: calling it" in log
    oops = log.index("kloader: kernel function kloader_test_register is not emulated")
    assert log[oops + 1] == "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"
    assert re.search(rf"Comm: insmod Not tainted|Comm: insmod Tainted: .* {RELEASE} #1", log[oops + 2])
    assert "RIP: 0010:kloader_test_register+0x0/0x10" in log
    assert any(re.fullmatch(r" \? ne_init\+0x\w+/0x\w+ \[ne\]", line) for line in log)
    assert footprint(kernel) == before
    assert "D" in kernel.taints


def test_a_namespaced_export_needs_module_import_ns(tree, ne_source, kloader_build):
    magic = f"{RELEASE} SMP preempt mod_unload modversions "
    plain = kloader_build(ne_source, name="ns_user", vermagic=magic, defines=["NS"])
    kernel = Kernel(KernelOptions(kernel=str(tree)))
    with pytest.raises(KernelError) as refused:
        _load(kernel, plain.read_bytes())
    assert refused.value.errno == errno.EINVAL
    log = texts(kernel)
    assert "ns_user: module uses symbol (ns_func) from namespace TESTNS, but does not import it." in log
    assert "ns_user: Unknown symbol ns_func (err -22)" in log
    importing = kloader_build(ne_source, name="ns_importer", vermagic=magic, defines=["NS", "IMPORT"])
    with pytest.raises(KernelError, match="kernel function ns_func is not emulated"):
        _load(kernel, importing.read_bytes())


def test_kloaders_own_modules_are_refused_in_the_log(tree):
    kernel = Kernel(KernelOptions(kernel=str(tree)))
    hello = (Path(__file__).resolve().parent.parent / "fixtures/hello.ko").read_bytes()
    with pytest.raises(KernelError) as refused:
        _load(kernel, hello)
    expected = (f"hello: version magic '6.6.0-kloader SMP preempt mod_unload modversions ' "
                f"should be '{RELEASE} SMP preempt mod_unload modversions '")
    assert refused.value.errno == errno.ENOEXEC and refused.value.message == expected
    assert expected in texts(kernel)


def test_the_option_reaches_the_daemon_and_its_status(tree):
    with embed.run_in_thread(kernel=str(tree)) as daemon:
        with Client(daemon.socket_path) as client:
            status = client.status()
    assert (status["release"], status["kernel"]) == (RELEASE, str(tree.resolve()))


def test_a_bad_kernel_option_fails_the_daemon_start(tmp_path):
    with pytest.raises(KernelError, match="no build tree"):
        with embed.run_in_thread(kernel="0.0.0-nosuch-kloader"):
            pass


# -- the real kernels of the corpus ---------------------------------------------------


@pytest.fixture(params=["6.1", "6.12"])
def real(request) -> tuple[Path, Path]:
    return corpus(request.param)


def test_vermagic_matches_every_real_modules(real):
    """The outside oracle: what kbuild wrote into each module's .modinfo."""
    from kloaderd.elf.image import parse
    modules, build = real
    ours = KernelProfile(build).vermagic
    paths = sorted(modules.rglob("*.ko*"))[::40]
    assert paths
    for path in paths:
        assert parse(read_module(path)).vermagic == ours, path


def test_a_real_module_loads_unforced_and_the_next_one_stops_at_what_is_missing(real):
    modules, build = real
    kernel = Kernel(KernelOptions(kernel=str(build)))

    def find(name: str) -> bytes:
        return read_module(next(modules.rglob(f"{name}.ko*")))

    # nf_log_syslog stops at the logger registry, which kloader does not emulate
    stopper, missing = "nf_log_syslog", "nf_log_set"

    async def main() -> None:
        await kernel.init_module(find("cast_common"))
        before = footprint(kernel)
        with pytest.raises(KernelError) as failed:
            await kernel.init_module(find(stopper))
        assert failed.value.errno == errno.EFAULT
        assert f"kernel function {missing} is not emulated" in failed.value.message
        assert footprint(kernel) == before
        await kernel.delete_module("cast_common")

    trio.run(main)
    assert not kernel.taints - {"D"}               # unforced: no F, no O (intree)
    assert kernel.status()["release"] == build.name.removeprefix("linux-headers-")


def test_klsmod_long_names_the_emulated_kernel(tree):
    import subprocess

    from test_server import command
    with embed.run_in_thread(kernel=str(tree)) as daemon:
        done = subprocess.run([command("klsmod"), "--socket", daemon.socket_path, "--long"],
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"Kernel: {RELEASE} (profile {tree.resolve()})"


def test_debians_own_compressed_module_loads_through_finit_module():
    """Debian 6.12 ships .ko.xz: the kernel decompresses it (MODULE_INIT_COMPRESSED_FILE)."""
    modules, build = corpus("6.12")
    path = next(modules.rglob("cast_common.ko.xz"))
    with embed.run_in_thread(kernel=str(build)) as daemon, Client(daemon.socket_path) as client:
        assert client.finit_module(path, compressed=True) == "cast_common"
        assert client.module("cast_common")["taints"] == ""


PER_CPU_SRC = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/printk.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
MODULE_LICENSE("GPL");
extern unsigned int nr_cpu_ids;
extern unsigned long __per_cpu_offset[];
extern unsigned long page_offset_base;
extern void *kmalloc_caches[];
extern unsigned long __cpu_online_mask[];
extern char init_user_ns[];
static int counter __attribute__((section(".data..percpu"), used)) = 5;
static int touch_init_user_ns;
module_param(touch_init_user_ns, int, 0);

static int __init pc_init(void)
{
	unsigned long off; int cpu, preempt, mine;
	void *cur;
	asm volatile("movq %%gs:this_cpu_off, %0" : "=r"(off));
	asm volatile("movl %%gs:cpu_number, %0" : "=r"(cpu));
	asm volatile("movl %%gs:__preempt_count, %0" : "=r"(preempt));
	asm volatile("movq %%gs:current_task, %0" : "=r"(cur));
	asm volatile("movl %%gs:%c1, %0" : "=r"(mine) : "i"(&counter));
	asm volatile("incl %%gs:%c0" : : "i"(&counter));
	pr_info("pc: off=%lx cpu=%d preempt=%x current=%px\n", off, cpu, preempt, cur);
	pr_info("pc: counter=%d via gs, %d via this_cpu_ptr, %d via __per_cpu_offset\n", mine,
		*(int *)((unsigned long)&counter + off),
		*(int *)((unsigned long)&counter + __per_cpu_offset[0]));
	pr_info("pc: nr_cpu_ids=%u online=%lx pob=%lx caches=%d\n", nr_cpu_ids,
		__cpu_online_mask[0], page_offset_base, kmalloc_caches[0] == 0);
	if (touch_init_user_ns == 1)
		return init_user_ns[8];
	if (touch_init_user_ns == 2)		/* read by a kernel function */
		return strnlen(init_user_ns + 8, nr_cpu_ids + 15);
	if (touch_init_user_ns == 3)		/* and written */
		memset(init_user_ns + 8, 0, nr_cpu_ids + 15);
	return 0;
}
static void __exit pc_exit(void) { }
module_init(pc_init);
module_exit(pc_exit);
"""


@pytest.fixture
def pc_module(tmp_path, kloader_build) -> bytes:
    source = tmp_path / "pc.c"
    source.write_text(PER_CPU_SRC)
    return kloader_build(source, vermagic=f"{RELEASE} SMP preempt mod_unload modversions ").read_bytes()


def test_per_cpu_area_and_kernel_data_as_x86_64_linux(tree, pc_module):
    kernel = Kernel(KernelOptions(kernel=str(tree)))
    base = kernel.machine.per_cpu_base

    async def main() -> None:
        for _ in range(2):          # the chunk is initialised afresh for the second load
            await kernel.init_module(pc_module)
            await kernel.delete_module("pc")

    trio.run(main)
    log = texts(kernel)
    assert log.count(f"pc: off={base:x} cpu=0 preempt=80000000 current=0000000000000000") == 2
    assert log.count("pc: counter=5 via gs, 6 via this_cpu_ptr, 6 via __per_cpu_offset") == 2
    assert "pc: nr_cpu_ids=1 online=1 pob=ffff888000000000 caches=1" in log
    assert kernel.symbols.get("current_task").address < 0x10000          # per-CPU: an offset
    assert kernel.symbolize(kernel.symbols.get("kmalloc_caches").address) == \
        "kmalloc_caches+0x0/0x150"                # normal, reclaim, DMA (no MEMCG) x 14 sizes
    assert kernel.symbolize(kernel.symbols.get("__per_cpu_offset").address).endswith("/0x200")


def test_reading_a_not_emulated_object_oopses_naming_it(tree, pc_module):
    kernel = Kernel(KernelOptions(kernel=str(tree)))
    with pytest.raises(KernelError) as failed:
        trio.run(lambda: kernel.init_module(pc_module, "touch_init_user_ns=1"))
    assert failed.value.errno == errno.EFAULT
    log = texts(kernel)
    assert "kloader: kernel object init_user_ns is not emulated" in log
    address = kernel.symbols.get("init_user_ns").address + 8
    assert f"BUG: unable to handle page fault for address: {address:016x}" in log
    assert "#PF: supervisor read access in kernel mode" in log


@pytest.mark.parametrize("touch, function, access", [(2, "strnlen", "read"), (3, "memset", "write")])
def test_a_kernel_function_reading_a_not_emulated_object_oopses_naming_it(tree, pc_module, touch,
                                                                          function, access):
    """Not the stub's bytes handed to the function as the object's: the
    oops (and so a survey's verdict) names the object, at the call."""
    kernel = Kernel(KernelOptions(kernel=str(tree)))
    with pytest.raises(KernelError) as failed:
        trio.run(lambda: kernel.init_module(pc_module, f"touch_init_user_ns={touch}"))
    assert failed.value.errno == errno.EFAULT
    log = texts(kernel)
    start = log.index("kloader: kernel object init_user_ns is not emulated")
    address = kernel.symbols.get("init_user_ns").address + 8
    assert log[start + 1:start + 3] == [f"BUG: unable to handle page fault for address: {address:016x}",
                                        f"#PF: supervisor {access} access in kernel mode"]
    assert any(line.startswith("RIP: 0010:pc_init+") for line in log)     # at the call, in the module
    assert not any(f"kernel function {function}" in line for line in log)
    assert not any("Unable to access opcode bytes" in line for line in log)


def test_a_module_for_another_struct_module_is_refused_as_linux_does():
    """check_modstruct_version(): __versions' module_layout CRC must be the kernel's."""
    from kloaderd.elf.image import parse
    modules, build = corpus("6.1")
    data = bytearray(read_module(next(modules.rglob("cast_common.ko"))))
    image = parse(bytes(data))
    versions = image.section("__versions")
    for offset in range(versions.offset, versions.offset + versions.size, 64):
        if data[offset + 8:offset + 8 + 14] == b"module_layout\0":
            data[offset:offset + 4] = bytes(a ^ 0xFF for a in data[offset:offset + 4])
            break
    else:
        pytest.skip("this corpus' modules record no module_layout version")
    kernel = Kernel(KernelOptions(kernel=str(build)))
    with pytest.raises(KernelError) as refused:
        _load(kernel, bytes(data))
    assert refused.value.errno == errno.ENOEXEC
    assert "cast_common: disagrees about version of symbol module_layout" in texts(kernel)
    _load(kernel, read_module(next(modules.rglob("cast_common.ko"))))     # the real one loads
