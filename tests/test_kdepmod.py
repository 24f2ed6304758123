"""kdepmod against kmod's depmod: the same tree, the same arguments, the same bytes.

kmod's depmod is the oracle (installed, or the corpus's copy; the tests skip
saying how to get it otherwise).  Every file depmod writes is compared byte
for byte, its warnings line for line, and kmod's modprobe must answer
--show-depends the same from the files kdepmod wrote.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from kloaderd.kmod import depmod
from kloaderd.kmod.hash import superfast, walk_order
from kloaderd.kmod.index import Index
from tests.kmod_trees import RELEASE, fixture_tree, kmod, normalised, outputs, run, symvers

KDEPMOD = [sys.executable, "-m", "kloaderd.kmod.depmod"]


def both(tmp_path: Path, variant: str, *args: str) -> tuple[Path, Path, object, object]:
    """The fixture tree twice; kmod's depmod on one, kdepmod on the other."""
    a, b = tmp_path / "kmod", tmp_path / "kloader"
    ta, tb = fixture_tree(a, variant), fixture_tree(b, variant)
    ra = run([*kmod("depmod"), "-b", str(a), *args, RELEASE])
    rb = run([*KDEPMOD, "-b", str(b), *args, RELEASE])
    assert ra.returncode == rb.returncode, (ra.stderr, rb.stderr)
    assert normalised(rb.stderr, b) == normalised(ra.stderr, a)
    return ta, tb, ra, rb


@pytest.mark.parametrize("variant", ["plain", "full"])
def test_every_file_is_depmods_byte_for_byte(tmp_path: Path, variant: str) -> None:
    ta, tb, _, _ = both(tmp_path, variant)
    theirs, ours = outputs(ta), outputs(tb)
    assert sorted(ours) == sorted(theirs)
    for name in theirs:
        assert ours[name] == theirs[name], name
    dep = ours["modules.dep"].decode()
    assert "kernel/misc/user.ko: kernel/misc/exporter.ko\n" in dep
    if variant == "full":
        assert dep.startswith("kernel/misc/user.ko:")            # modules.order first
        assert "updates/hello.ko:" in dep and "kernel/misc/hello.ko" not in dep
        assert "kernel/extra/hello-xz.ko.xz:" in dep
    assert "alias fs-kloaderfs fsalias" in ours["modules.alias"].decode()
    assert ours["modules.devname"].decode().endswith("fsalias kloaderfs c10:250\n")
    assert "softdep fsalias pre: hello" in ours["modules.softdep"].decode()


def test_unknown_symbols_and_crc_mismatches_are_reported_in_depmods_words(tmp_path: Path) -> None:
    versions = symvers(tmp_path / "Module.symvers")
    _, _, ra, rb = both(tmp_path, "full", "-E", str(versions), "-e")
    lines = normalised(rb.stderr, tmp_path / "kloader")
    assert "WARNING: BASE/lib/modules/6.6.0-kloader/kernel/misc/unknownsym.ko needs unknown symbol " \
           "kloader_no_such_function" in lines
    assert "WARNING: BASE/lib/modules/6.6.0-kloader/kernel/misc/hello.ko disagrees about version of " \
           "symbol _printk" not in lines            # shadowed by updates/hello.ko
    assert "WARNING: BASE/lib/modules/6.6.0-kloader/updates/hello.ko disagrees about version of symbol " \
           "_printk" in lines
    assert not any("badcrc.ko disagrees" in line for line in lines)   # its CRC is the complemented one
    assert rb.stderr.startswith("kdepmod: WARNING: ")


def test_system_map_and_its_invalid_lines(tmp_path: Path) -> None:
    system_map = tmp_path / "System.map"
    system_map.write_text("ffffffff81000000 T _printk\nffffffff82000000 R __ksymtab__printk\nbroken\n"
                          "ffffffff82000010 r __ksymtab_msleep\n")
    both(tmp_path, "full", "-F", str(system_map), "-e")


def test_dry_run_writes_to_stdout_only(tmp_path: Path) -> None:
    ta, tb, ra, rb = both(tmp_path, "full", "-n")
    assert rb.stdout == ra.stdout and "alias fs-kloaderfs fsalias" in rb.stdout
    assert outputs(tb) == {} == outputs(ta)


def test_a_dependency_cycle_is_reported_and_nothing_written(tmp_path: Path, kloader_build) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for me, other in (("cyc_a", "cyc_b"), ("cyc_b", "cyc_c"), ("cyc_c", "cyc_a")):
        (src / f"{me}.c").write_text(
            "#include <linux/module.h>\n"
            f"int {other}_fn(void);\nint {me}_fn(void) {{ return {other}_fn(); }}\nEXPORT_SYMBOL({me}_fn);\n"
            'MODULE_LICENSE("GPL");\n')
    kos = [kloader_build(src / f"{n}.c") for n in ("cyc_a", "cyc_b", "cyc_c")]
    for side in ("kmod", "kloader"):
        tree = tmp_path / side / "lib/modules" / RELEASE / "kernel"
        tree.mkdir(parents=True)
        for ko in kos:
            (tree / ko.name).write_bytes(ko.read_bytes())
    ra = run([*kmod("depmod"), "-b", str(tmp_path / "kmod"), RELEASE])
    rb = run([*KDEPMOD, "-b", str(tmp_path / "kloader"), RELEASE])
    assert ra.returncode == rb.returncode == 1
    assert normalised(rb.stderr, tmp_path / "kloader") == normalised(ra.stderr, tmp_path / "kmod")
    assert any(line.startswith("kdepmod: ERROR: Cycle detected: cyc_") for line in rb.stderr.splitlines())
    assert "kdepmod: ERROR: Found 3 modules in dependency cycles!" in rb.stderr
    assert outputs(tmp_path / "kloader/lib/modules" / RELEASE) == {}


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full tree written by each depmod, once for the modprobe checks."""
    tmp = tmp_path_factory.mktemp("trees")
    both(tmp, "full")
    (tmp / "modprobe.d").mkdir()
    return tmp


@pytest.mark.parametrize("name", ["user", "sleepy_user", "fs-kloaderfs", "kloader:dev-anything",
                                  "symbol:exp_add", "char-major-10-250", "hello", "ext4", "fs-ext4"])
def test_kmods_modprobe_reads_kdepmods_tree_as_depmods(trees: Path, name: str) -> None:
    """modprobe --show-depends answers the same on both trees (paths aside)."""
    answers = []
    for side in ("kmod", "kloader"):
        done = run([*kmod("modprobe"), "-C", str(trees / "modprobe.d"), "-d", str(trees / side), "-S", RELEASE,
                    "--show-depends", name])
        answers.append((done.returncode, done.stdout.replace(str(trees / side), "BASE"), done.stderr))
    assert answers[0] == answers[1]
    assert answers[1][0] == 0 and answers[1][1]


def test_bad_arguments_as_depmod(tmp_path: Path) -> None:
    out, err = io.BytesIO(), io.StringIO()
    assert depmod.run(["-b", str(tmp_path), "notaversion"], stdout=out, stderr=err) == 1
    assert err.getvalue() == "kdepmod: ERROR: Bad version passed notaversion\n"
    err = io.StringIO()
    assert depmod.run(["-b", str(tmp_path), RELEASE], stderr=err) == 1
    assert f"kdepmod: FATAL: could not search modules: No such file or directory\n" in err.getvalue()


def test_hash_walk_is_kmods() -> None:
    """SuperFastHash values computed by hand from kmod's hash_superfast()."""
    assert superfast(b"") == 0
    assert superfast(b"a") == superfast(b"a")
    # Every tail length and a high-bit byte (a signed char in C).
    values = {superfast(k) for k in (b"a", b"ab", b"abc", b"abcd", b"abcde", b"\xe9t\xe9")}
    assert len(values) == 6 and all(0 <= v < 1 << 32 for v in values)
    keys = [f"sym{i}" for i in range(100)]
    walked = walk_order(keys, 2048)
    assert sorted(walked) == sorted(keys)
    assert [superfast(k.encode()) & 2047 for k in walked] == sorted(superfast(k.encode()) & 2047 for k in walked)


def test_index_values_keep_depmods_order() -> None:
    """Values by priority, the latest first among equals; a repeat is reported."""
    idx = Index()
    assert idx.insert("fs_x", "b", 2) is False
    assert idx.insert("fs_x", "a", 1) is False
    assert idx.insert("fs_x", "c", 2) is False
    assert idx.insert("fs_x", "a", 5) is True
    data = idx.write()
    assert data[:8] == bytes.fromhex("b007f45700020001")
    body = data[12:]
    assert body.index(b"a\0") < body.index(b"c\0") < body.index(b"b\0")
    with pytest.raises(ValueError, match="7-bit ASCII"):
        idx.insert("caf\u00e9", "x", 0)


def test_kdepmod_command_is_installed(tmp_path: Path) -> None:
    tree = fixture_tree(tmp_path, "plain")
    done = run(["kdepmod", "-b", str(tmp_path), RELEASE], env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert (tree / "modules.dep.bin").read_bytes()[:4] == bytes.fromhex("b007f457")
