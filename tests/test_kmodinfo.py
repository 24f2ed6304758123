"""kmodinfo against kmod's own modinfo: same options, same bytes out, same errors and status.

kmod's modinfo comes from the machine (`apt-get install kmod`) or from the
kernel corpus (`python tools/kernel_corpus.py --with-kmod`); without either
the comparisons skip and the pinned cases below still run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kloader_client import Client
from test_server import FIXTURES, command, daemon_socket, shared_daemon  # noqa: F401 (fixtures)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import kernel_corpus  # noqa: E402


@pytest.fixture(scope="module")
def modinfo() -> list[str]:
    return kmod_modinfo()


def kmod_modinfo() -> list[str]:
    """argv[0..] that runs kmod's modinfo, or skip saying why there is none."""
    for path in (shutil.which("modinfo"), "/sbin/modinfo", "/usr/sbin/modinfo"):
        if path and Path(path).exists():
            return [path]
    try:
        root = kernel_corpus.fetch(with_kmod=True)
    except kernel_corpus.Unavailable as exc:
        pytest.skip(f"kmod's modinfo is unavailable: {exc}")
    # The corpus's sbin/modinfo is an absolute link to /bin/kmod: run kmod under modinfo's name.
    return ["bash", "-c", 'exec -a modinfo "$0" "$@"', str(root / "bin" / "kmod")]


def run(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A directory with fixture modules under relative names, a file that is no ELF, and an empty one."""
    where = tmp_path_factory.mktemp("modinfo")
    for ko in FIXTURES.glob("*.ko"):
        shutil.copy(ko, where / ko.name)
    (where / "not-elf.ko").write_text("this is not an ELF file\n")
    (where / "empty.ko").write_bytes(b"")
    return where


FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.ko"))
OPTIONS = [[], ["-p"], ["-a"], ["-d"], ["-l"], ["-n"], ["-0"], ["-0", "-p"], ["-F", "depends"],
           ["-F", "vermagic"], ["-F", "nosuchfield"], ["-F", "parm"], ["-F", "filename"], ["-p", "-l"]]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: " ".join(o) or "all")
def test_every_fixture_as_modinfo_prints_it(modinfo, files, options):
    args = [*options, *(f"{name}.ko" for name in FIXTURE_NAMES)]
    ours = run([command("kmodinfo"), *args], files)
    theirs = run([*modinfo, *args], files)
    assert ours == (theirs[0], theirs[1], theirs[2].replace("modinfo:", "kmodinfo:"))


@pytest.mark.parametrize("args", [["not-elf.ko"], ["-l", "not-elf.ko", "hello.ko"], ["-n", "not-elf.ko"],
                                  ["empty.ko"], ["/no/such/dir/x.ko"], ["./hello.ko", "/no/such.ko", "params.ko"]],
                         ids=" ".join)
def test_errors_as_modinfo_words_them(modinfo, files, args):
    ours = run([command("kmodinfo"), *args], files)
    theirs = run([*modinfo, *args], files)
    assert ours == (theirs[0], theirs[1], theirs[2].replace("modinfo:", "kmodinfo:"))


def test_the_cases_pinned_without_kmod(files):
    """What the comparisons check, written out, for machines without kmod."""
    code, out, err = run([command("kmodinfo"), "-p", "params.ko"], files)
    assert (code, err) == (0, "")
    assert out.splitlines()[:2] == ["pbyte:An unsigned char (byte)", "pshort:A short (short)"]
    assert out.splitlines()[-1] == "answer:An int whose variable has another name (int)"
    assert run([command("kmodinfo"), "-F", "nosuchfield", "hello.ko"], files) == (0, "", "")
    assert run([command("kmodinfo"), "-0", "-l", "hello.ko", "params.ko"], files) == (0, "GPL\0GPL\0", "")
    assert run([command("kmodinfo"), "not-elf.ko"], files) == (
        1, f"filename:       {files}/not-elf.ko\n",
        "kmodinfo: ERROR: could not get modinfo from 'not_elf': Exec format error\n")
    assert run([command("kmodinfo"), "/no/such.ko"], files) == (1, "", "kmodinfo: ERROR: Module /no/such.ko not found.\n")


def test_loaded_modules_come_from_the_daemon(daemon_socket, files):
    with Client(daemon_socket) as client:
        client.finit_module(FIXTURES / "params.ko")
        client.finit_module(FIXTURES / "hello.ko")
    kmodinfo = [command("kmodinfo"), "--socket", daemon_socket]
    from_file = run([*kmodinfo, "params.ko"], files)[1].splitlines()[1:]
    code, out, err = run([*kmodinfo, "params"], files)
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"filename:       (loaded in kloaderd: {daemon_socket})", *from_file]
    assert run([*kmodinfo, "-l", "hello", "nosuch", "params"], files) == (
        1, "GPL\nGPL\n", "kmodinfo: ERROR: Module nosuch not found.\n")


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_real_signed_modules_as_modinfo_prints_them(modinfo, flavour, tmp_path):
    """Debian's modules, .ko and .ko.xz, signed with PKCS#7: every key, parameter and signature field."""
    try:
        tree = kernel_corpus.modules_dir(kernel_corpus.fetch(flavour))
    except kernel_corpus.Unavailable as exc:
        pytest.skip(f"Debian {flavour} kernel corpus unavailable: {exc}")
    every = sorted(tree.rglob("*.ko*"))
    sample = [str(p) for p in every[::max(1, len(every) // 40)]]
    for options in ([], ["-p"], ["-0", "-F", "sig_key"]):
        ours = run([command("kmodinfo"), *options, *sample], tmp_path)
        theirs = run([*modinfo, *options, *sample], tmp_path)
        assert ours == (theirs[0], theirs[1], theirs[2].replace("modinfo:", "kmodinfo:"))
        if not options:
            assert "sig_hashalgo:   sha256\n" in ours[1]             # signed, and the signature read
