"""kmodbuild builds objects with Linux's module conventions, and fails clearly.

Each test compiles a small module into tmp_path and reads the object back
with pyelftools, decoding the binary structures (kernel_symbol,
kernel_param, struct module, modversion_info) through their relocations,
as a loader would.
"""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection

from kloaderd import config
from kloaderd.build import BuildError, build_module, main
from kloaderd.kernel import api

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("ld") is None,
                                reason="kmodbuild needs gcc and ld")

MODULE_C = r"""
#include <linux/module.h>
#include <linux/slab.h>

static int count = 3;
module_param(count, int, 0644);
MODULE_PARM_DESC(count, "How many");

static int values[4];
static unsigned int nvalues;
module_param_array(values, int, &nvalues, 0444);

static char label[8] = "x";
module_param_string(label, label, sizeof(label), 0);

int demo_plain(int x) { return x + count; }
EXPORT_SYMBOL(demo_plain);

int demo_gpl(int x) { return x * 2; }
EXPORT_SYMBOL_GPL(demo_gpl);

static int __init demo_init(void)
{
	void *p = kmalloc(16, GFP_KERNEL);

	pr_info("demo: %d %s\n", count, label);
	kfree(p);
	return 0;
}

static void __exit demo_exit(void)
{
	pr_info("demo: bye\n");
}

module_init(demo_init);
module_exit(demo_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("kloader tests");
"""


# Uses (nearly) every macro and inline of the headers; must compile warning-free.
KITCHEN_SINK_C = r"""
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/atomic.h>
#include <linux/bug.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/errno.h>
#include <linux/export.h>
#include <linux/gfp.h>
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/kstrtox.h>
#include <linux/ktime.h>
#include <linux/limits.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/printk.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/types.h>
#include <linux/version.h>

struct item { int v; struct list_head node; };
static LIST_HEAD(items);
static DEFINE_MUTEX(m);
static DEFINE_SPINLOCK(sl);
static DECLARE_COMPLETION(c);
static atomic_t counter = ATOMIC_INIT(0);
static int __read_mostly rm = 1;
static int __ro_after_init ro;
static unsigned long delay_us = 3;
module_param(delay_us, ulong, S_IRUGO | S_IWUSR);
static int hw[3];
module_param_array_named(hwv, hw, int, NULL, 0444);

int sink_fn(int x) { return x; }
EXPORT_SYMBOL_GPL(sink_fn);

static int __init sink_init(void)
{
	struct item *it, *tmp;
	unsigned long flags, j = jiffies, ul;
	char buf[32], *dup;
	void *p = kcalloc(4, sizeof(int), GFP_KERNEL);
	int (*fn)(int) = symbol_get(sink_fn);
	ktime_t t0 = ktime_get();
	bool b;
	int i;

	p = krealloc_array(p, 8, sizeof(int), GFP_ATOMIC);
	it = kzalloc(sizeof(*it), GFP_KERNEL);
	if (!it)
		return -ENOMEM;
	list_add_tail(&it->node, &items);
	list_for_each_entry_safe(it, tmp, &items, node) {
		list_del(&it->node);
		kfree(it);
	}
	mutex_lock(&m); mutex_unlock(&m);
	spin_lock_irqsave(&sl, flags); spin_unlock_irqrestore(&sl, flags);
	complete(&c); wait_for_completion(&c);
	atomic_inc(&counter);
	WARN_ON(atomic_read(&counter) != 1);
	WARN_ON_ONCE(rm == 0);
	WARN(ro, "ro=%d\n", ro);
	BUG_ON(!p);
	snprintf(buf, sizeof(buf), "%d", min(3, 4) + max(1, 2) + clamp(5, 0, 3) + min_t(u8, 300, 2));
	if (kstrtoul(buf, 10, &ul) || kstrtobool("y", &b) || kstrtoint("-1", 0, &i))
		return -EINVAL;
	dup = kstrdup(buf, GFP_KERNEL);
	kfree(kmemdup(dup, strlen(dup) + 1, GFP_KERNEL));
	kfree(dup);
	udelay(delay_us); udelay(10); ndelay(100); mdelay(1);
	usleep_range(10, 20); msleep(1); ssleep(0);
	schedule_timeout(msecs_to_jiffies(1));
	if (time_after(jiffies, j + HZ)) pr_warn("slow\n");
	pr_info("elapsed %lld ns, ARRAY_SIZE %zu, ver %d, %s\n", ktime_to_ns(ktime_sub(ktime_get(), t0)),
		ARRAY_SIZE(hw), LINUX_VERSION_CODE, module_name(THIS_MODULE));
	pr_info_once("once\n");
	if (IS_ERR(ERR_PTR(-ENOMEM)) && PTR_ERR(ERR_PTR(-EIO)) == -EIO)
		pr_debug("err ptr ok\n");
	if (try_module_get(THIS_MODULE)) module_put(THIS_MODULE);
	__module_get(THIS_MODULE); module_put(THIS_MODULE);
	pr_cont("refs %d\n", module_refcount(THIS_MODULE));
	if (fn) { fn(1); symbol_put(sink_fn); }
	kfree(p);
	return 0;
}
static void __exit sink_exit(void) { }
module_init(sink_init);
module_exit(sink_exit);
MODULE_LICENSE("GPL");
"""

REPO = Path(__file__).resolve().parent.parent


def documented_exports() -> set[str]:
    """The kernel's exports as docs/kernel-api.md lists them (its table column)."""
    names: set[str] = set()
    for line in (REPO / "docs" / "kernel-api.md").read_text().splitlines():
        if line.startswith("|") and line.count("|") >= 3:
            column = line.split("|")[2]
            for quoted in re.findall(r"`([^`]+)`", column):
                words = quoted.split()
                names.update(words)
                if words[0].startswith("param_ops_"):
                    names.update(f"param_ops_{w}" for w in words[1:])
    return names


class Object:
    """A relocatable object, with what a loader needs to resolve its tables."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "rb")
        self.elf = ELFFile(self.file)
        self.symtab = self.elf.get_section_by_name(".symtab")

    def close(self) -> None:
        self.file.close()

    def section(self, name: str):
        sec = self.elf.get_section_by_name(name)
        assert sec is not None, f"no section {name}"
        return sec

    def section_names(self) -> set[str]:
        return {s.name for s in self.elf.iter_sections()}

    def relocs(self, name: str) -> dict[int, tuple[str, object, int]]:
        """offset -> (relocation type, symbol, addend) for section `name`."""
        out: dict[int, tuple[str, object, int]] = {}
        for sec in self.elf.iter_sections():
            if isinstance(sec, RelocationSection) and \
                    self.elf.get_section(sec["sh_info"]).name == name:
                for r in sec.iter_relocations():
                    sym = self.symtab.get_symbol(r["r_info_sym"])
                    rtype = {1: "R_X86_64_64", 2: "R_X86_64_PC32"}.get(r["r_info_type"],
                                                                        str(r["r_info_type"]))
                    out[r["r_offset"]] = (rtype, sym, r["r_addend"])
        return out

    def target_name(self, sym) -> str:
        """The symbol a relocation refers to, by name, or its section's name."""
        if sym["st_info"]["type"] == "STT_SECTION":
            return self.elf.get_section(sym["st_shndx"]).name
        return sym.name

    def string_at(self, sym, addend: int) -> str:
        """The C string a relocation (symbol + addend) points to."""
        data = self.elf.get_section(sym["st_shndx"]).data()
        start = sym["st_value"] + addend
        return data[start:data.index(b"\0", start)].decode()

    def modinfo(self) -> list[tuple[str, str]]:
        raw = self.section(".modinfo").data()
        return [tuple(e.decode().split("=", 1)) for e in raw.split(b"\0") if e]

    def symbols(self) -> dict[str, object]:
        return {s.name: s for s in self.symtab.iter_symbols() if s.name}


@pytest.fixture
def build(tmp_path):
    opened: list[Object] = []

    def build_(source: str, name: str = "demo", **kwargs) -> Object:
        src = tmp_path / f"{name}.c"
        src.write_text(source)
        ko = build_module([src], tmp_path / f"{name}.ko", **kwargs)
        obj = Object(ko)
        opened.append(obj)
        return obj

    yield build_
    for obj in opened:
        obj.close()


def test_object_is_a_relocatable_x86_64_module_with_linux_sections(build):
    obj = build(MODULE_C)
    assert obj.elf["e_type"] == "ET_REL" and obj.elf["e_machine"] == "EM_X86_64"
    assert {".modinfo", "__ksymtab", "__ksymtab_gpl", "__ksymtab_strings", "__param",
            ".gnu.linkonce.this_module", "__versions", ".init.text",
            ".exit.text"} <= obj.section_names()
    syms = obj.symbols()
    assert syms["init_module"]["st_value"] == syms["demo_init"]["st_value"]
    assert obj.elf.get_section(syms["init_module"]["st_shndx"]).name == ".init.text"
    assert obj.elf.get_section(syms["cleanup_module"]["st_shndx"]).name == ".exit.text"


def test_ksymtab_entries_are_12_byte_prel32_kernel_symbols(build):
    obj = build(MODULE_C)
    for section, expected in (("__ksymtab", "demo_plain"), ("__ksymtab_gpl", "demo_gpl")):
        sec = obj.section(section)
        assert sec["sh_size"] == 12
        relocs = obj.relocs(section)
        assert sorted(relocs) == [0, 4, 8]
        assert all(rtype == "R_X86_64_PC32" for rtype, _, _ in relocs.values())
        _, value_sym, _ = relocs[0]
        assert value_sym.name == expected
        _, name_sym, addend = relocs[4]
        assert obj.string_at(name_sym, addend) == expected
        _, ns_sym, addend = relocs[8]
        assert obj.string_at(ns_sym, addend) == ""   # no namespace
        assert obj.elf.get_section(name_sym["st_shndx"]).name == "__ksymtab_strings"


def test_param_entries_are_40_byte_kernel_params(build):
    obj = build(MODULE_C)
    sec = obj.section("__param")
    data = sec.data()
    assert sec["sh_size"] == 3 * 40
    relocs = obj.relocs("__param")
    params = {}
    for base in range(0, len(data), 40):
        _, name_sym, addend = relocs[base]
        _, mod_sym, _ = relocs[base + 8]
        _, ops_sym, _ = relocs[base + 16]
        perm, level, flags = struct.unpack_from("<HbB", data, base + 24)
        assert mod_sym.name == "__this_module"
        assert base + 32 in relocs   # arg points into the module
        params[obj.string_at(name_sym, addend)] = (ops_sym.name, perm, level, flags)
    assert params == {
        "count": ("param_ops_int", 0o644, -1, 0),
        "values": ("param_array_ops", 0o444, -1, 0),
        "label": ("param_ops_string", 0, -1, 0),
    }


def test_modinfo_has_modpost_keys_and_parameter_types(build):
    modinfo = build(MODULE_C).modinfo()
    assert ("name", "demo") in modinfo
    assert ("vermagic", config.VERMAGIC) in modinfo
    assert ("depends", "") in modinfo
    assert ("license", "GPL") in modinfo
    assert ("author", "kloader tests") in modinfo
    assert ("parm", "count:How many") in modinfo
    assert {("parmtype", "count:int"), ("parmtype", "values:array of int"),
            ("parmtype", "label:string")} <= set(modinfo)


def test_this_module_names_the_module_and_points_at_init_and_exit(build):
    obj = build(MODULE_C)
    sec = obj.section(".gnu.linkonce.this_module")
    assert sec["sh_size"] == 128
    assert sec.data()[24:24 + 56].rstrip(b"\0") == b"demo"
    relocs = obj.relocs(".gnu.linkonce.this_module")
    assert relocs[80][0] == "R_X86_64_64" and relocs[80][1].name == "init_module"
    assert relocs[88][0] == "R_X86_64_64" and relocs[88][1].name == "cleanup_module"


def test_a_module_without_exit_gets_no_exit_pointer(build):
    obj = build("#include <linux/module.h>\n"
                "static int __init f(void) { return 0; }\nmodule_init(f);\n"
                'MODULE_LICENSE("GPL");\n', name="noexit")
    relocs = obj.relocs(".gnu.linkonce.this_module")
    assert 80 in relocs and 88 not in relocs
    assert "cleanup_module" not in obj.symbols()


def _versions(obj: Object) -> dict[str, int]:
    data = obj.section("__versions").data()
    assert len(data) % 64 == 0
    return {data[i + 8:i + 64].split(b"\0")[0].decode(): struct.unpack_from("<Q", data, i)[0]
            for i in range(0, len(data), 64)}


def test_versions_record_the_registry_crc_of_each_core_symbol_used(build, monkeypatch, capsys):
    api.load_all()
    # A core export of our own, so the test does not depend on what the
    # registry holds today; and a symbol nobody exports, which gets no entry.
    monkeypatch.setitem(api.FUNCTIONS, "kl_test_export", api.KernelFunction(
        "kl_test_export", lambda ctx, x: x, 1, False, "int kl_test_export(int x)"))
    obj = build("#include <linux/module.h>\n"
                "int kl_test_export(int x);\nint kl_test_nobody(void);\n"
                "int kl_test_maybe(void) __weak;\n"
                "static int __init f(void)\n"
                "{ return kl_test_export(1) + kl_test_nobody() + (kl_test_maybe ? 1 : 0); }\n"
                'module_init(f);\nMODULE_LICENSE("GPL");\n', name="vers")
    versions = _versions(obj)
    assert versions["kl_test_export"] == api.symbol_crc("kl_test_export")
    assert "kl_test_nobody" not in versions
    assert set(versions) <= set(api.FUNCTIONS) | set(api.OBJECTS)
    err = capsys.readouterr().err
    assert '"kl_test_nobody" [vers.ko] undefined!' in err
    assert "kl_test_maybe" not in err   # weak: allowed to stay unresolved


def test_depends_names_the_extra_modules_whose_exports_are_used(build, tmp_path, capsys):
    provider = build("#include <linux/module.h>\n"
                     "int prov_fn(void) { return 1; }\nEXPORT_SYMBOL_GPL(prov_fn);\n"
                     'MODULE_LICENSE("GPL");\n', name="prov")
    provider.close()
    user = build("#include <linux/module.h>\nint prov_fn(void);\n"
                 "static int __init f(void) { return prov_fn(); }\nmodule_init(f);\n"
                 'MODULE_LICENSE("Proprietary");\n', name="cons",
                 extra_symbols=[tmp_path / "prov.ko"])
    assert ("depends", "prov") in user.modinfo()
    if "__versions" in user.section_names():   # module exports carry no CRC here
        assert "prov_fn" not in _versions(user)
    # modpost's complaint, kept as a warning so such fixtures can be built.
    assert "GPL-incompatible module cons.ko uses GPL-only symbol 'prov_fn'" in \
        capsys.readouterr().err


def test_extra_symbols_on_the_command_line_leaves_the_sources_alone(build, tmp_path):
    """`--extra-symbols A.ko SRC.c`: the flag takes one module (repeat it), not the source after it."""
    build("#include <linux/module.h>\nint prov_fn(void) { return 1; }\nEXPORT_SYMBOL_GPL(prov_fn);\n"
          'MODULE_LICENSE("GPL");\n', name="prov").close()
    build("#include <linux/module.h>\nint prov2_fn(void) { return 2; }\nEXPORT_SYMBOL_GPL(prov2_fn);\n"
          'MODULE_LICENSE("GPL");\n', name="prov2").close()
    src = tmp_path / "cons.c"
    src.write_text("#include <linux/module.h>\nint prov_fn(void);\nint prov2_fn(void);\n"
                   "static int __init f(void) { return prov_fn() + prov2_fn(); }\nmodule_init(f);\n"
                   'MODULE_LICENSE("GPL");\n')
    assert main(["--extra-symbols", str(tmp_path / "prov.ko"), "--extra-symbols", str(tmp_path / "prov2.ko"),
                 str(src), "-o", str(tmp_path / "cons.ko")]) == 0
    cons = Object(tmp_path / "cons.ko")
    try:
        assert ("depends", "prov,prov2") in cons.modinfo()
    finally:
        cons.close()


def test_vermagic_option_and_dashes_in_the_module_name(build):
    obj = build("#include <linux/module.h>\nMODULE_LICENSE(\"GPL\");\n", name="my-mod",
                vermagic="5.10.0 SMP mod_unload ")
    modinfo = obj.modinfo()
    assert ("vermagic", "5.10.0 SMP mod_unload ") in modinfo
    assert ("name", "my_mod") in modinfo


def test_several_sources_make_one_module(tmp_path):
    (tmp_path / "a.c").write_text("#include <linux/module.h>\nint helper(int);\n"
                                  "static int __init f(void) { return helper(0); }\n"
                                  'module_init(f);\nMODULE_LICENSE("GPL");\n')
    (tmp_path / "b.c").write_text("int helper(int x) { return x; }\n")
    ko = build_module([tmp_path / "a.c", tmp_path / "b.c"], tmp_path / "two.ko")
    obj = Object(ko)
    try:
        syms = obj.symbols()
        assert syms["helper"]["st_shndx"] != "SHN_UNDEF"
        assert ("name", "two") in obj.modinfo()
    finally:
        obj.close()


def test_f_options_pass_through_to_the_compiler(tmp_path):
    src = tmp_path / "com.c"
    src.write_text("#include <linux/module.h>\nint tentative;\n"
                   "static int __init f(void) { return tentative; }\nmodule_init(f);\n"
                   'MODULE_LICENSE("GPL");\n')
    assert main([str(src), "-o", str(tmp_path / "com.ko"), "-fcommon"]) == 0
    obj = Object(tmp_path / "com.ko")
    try:
        assert obj.symbols()["tentative"]["st_shndx"] == "SHN_COMMON"
    finally:
        obj.close()


def test_verbose_prints_each_command_with_kbuild_flags(tmp_path, capsys):
    src = tmp_path / "v.c"
    src.write_text('#include <linux/module.h>\nMODULE_LICENSE("GPL");\n')
    assert main([str(src), "-o", str(tmp_path / "v.ko"), "-v", "-D", "EXTRA=1"]) == 0
    out = capsys.readouterr().out.splitlines()
    compiles = [line for line in out if " -c " in line]
    assert len(compiles) == 2   # the module and its .mod.c
    for flag in ("-mcmodel=kernel", "-mno-red-zone", "-fno-pic", "-ffreestanding", "-nostdinc",
                 "-fno-common", "-fno-stack-protector", "-fno-asynchronous-unwind-tables",
                 "-O2", "-DMODULE", "-std=gnu11",
                 # CONFIG_RETPOLINE and CONFIG_RETHUNK, as arch/x86/Makefile adds them
                 "-mindirect-branch=thunk-extern", "-mindirect-branch-register",
                 "-mfunction-return=thunk-extern", "-fno-jump-tables"):
        assert all(flag in line.split() for line in compiles), flag
    assert "-DKBUILD_MODNAME=\"v\"" in compiles[0] or "'-DKBUILD_MODNAME=\"v\"'" in compiles[0]
    assert "-DEXTRA=1" in compiles[0]
    assert any(line.startswith("ld -r") and "--build-id=none" in line for line in out)


def test_a_compile_error_exits_1_with_the_compilers_message(tmp_path, capsys):
    src = tmp_path / "broken.c"
    src.write_text('#include <linux/module.h>\nstatic int f(void) { return undeclared_thing; }\n')
    assert main([str(src), "-o", str(tmp_path / "broken.ko")]) == 1
    err = capsys.readouterr().err
    assert "compiling" in err and "broken.c" in err
    assert "undeclared_thing" in err and "error" in err
    assert not (tmp_path / "broken.ko").exists()


def test_a_missing_compiler_is_reported_clearly(tmp_path, monkeypatch, capsys):
    src = tmp_path / "m.c"
    src.write_text('#include <linux/module.h>\nMODULE_LICENSE("GPL");\n')
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("CC", raising=False)
    assert main([str(src), "-o", str(tmp_path / "m.ko")]) == 1
    assert "cannot run 'gcc': not found in PATH" in capsys.readouterr().err
    with pytest.raises(BuildError, match="gcc"):
        build_module([src], tmp_path / "m.ko")


def test_the_headers_compile_cleanly_and_import_only_documented_exports(build):
    obj = build(KITCHEN_SINK_C, name="sink", cflags=["-Werror"])
    undefined = {name for name, sym in obj.symbols().items()
                 if sym["st_shndx"] == "SHN_UNDEF"}
    assert len(undefined) > 25
    assert undefined <= documented_exports()


def test_extra_symbols_refuses_a_module_with_a_bad_section_name_index(build, tmp_path, capsys):
    """Issue 13, item 11: a provider whose e_shstrndx points past its section
    headers was read as a module without exports, and the build went on."""
    build("#include <linux/module.h>\nint prov_fn(void) { return 1; }\nEXPORT_SYMBOL_GPL(prov_fn);\n"
          'MODULE_LICENSE("GPL");\n', name="prov").close()
    bent = bytearray((tmp_path / "prov.ko").read_bytes())
    struct.pack_into("<H", bent, 62, 0xFFF0)          # e_shstrndx
    (tmp_path / "bent.ko").write_bytes(bent)
    src = tmp_path / "cons.c"
    src.write_text("#include <linux/module.h>\nint prov_fn(void);\n"
                   "static int __init f(void) { return prov_fn(); }\nmodule_init(f);\n"
                   'MODULE_LICENSE("GPL");\n')
    assert main(["--extra-symbols", str(tmp_path / "bent.ko"), str(src),
                 "-o", str(tmp_path / "cons.ko")]) != 0
    err = capsys.readouterr().err
    assert f"kmodbuild: {tmp_path / 'bent.ko'}: not a usable module (Exec format error): " \
           "Invalid ELF section name index: 65520" in err
    assert not (tmp_path / "cons.ko").exists()
