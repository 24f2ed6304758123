"""Man pages and bash completion, generated from each command's argparse definition."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from kloader_client import Client
from test_server import FIXTURES, daemon_socket, shared_daemon  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tools import command_docs  # noqa: E402

COMMANDS = list(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """The script run as a user runs it, into a fresh DIR."""
    root = tmp_path_factory.mktemp("share")
    done = subprocess.run([sys.executable, str(REPO / "tools" / "command_docs.py"), str(root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return root


def test_every_metavar_says_how_it_completes():
    for name, p in command_docs.commands().items():
        for action in p._actions:
            value = command_docs.metavar(action)
            assert value is None or value in command_docs.COMPLETES, f"{name}: {value} is not in COMPLETES"


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_has_a_man_page_that_renders_every_option(generated, name):
    page = generated / "man" / "man1" / f"{name}.1"
    assert page.exists()
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed (apt-get install groff-base)")
    checked = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True)
    assert (checked.returncode, checked.stderr) == (0, "")
    shown = subprocess.run(["groff", "-man", "-Tascii", "-rLL=200n", "-P-cbou", str(page)],
                           capture_output=True, text=True, check=True).stdout
    for action in command_docs.commands()[name]._actions:
        for flag in action.option_strings:
            assert flag in shown, f"{flag} is missing from {page.name}"
    assert f"{name} - " in shown


def complete(generated: Path, words: list[str], cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """What bash offers for the last word, through the command's generated completion file."""
    fn = "_kloader_" + words[0]
    script = (f"source {generated / 'bash-completion' / 'completions' / words[0]}\n"
              f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
              f'{fn}; printf "%s\\n" "${{COMPREPLY[@]}}"\n')
    done = subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                               **(env or {})})
    assert done.returncode == 0, done.stderr
    return sorted(filter(None, done.stdout.split("\n")))


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_options_files_and_loaded_modules(generated, tmp_path, daemon_socket):
    for name in ("a.ko", "b.ko", "drv.c", "notes.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    assert complete(generated, ["kinsmod", ""], tmp_path) == ["a.ko", "b.ko", "sub"]
    assert complete(generated, ["kmodbuild", ""], tmp_path) == ["drv.c", "sub"]
    assert complete(generated, ["kmodbuild", "--extra-symbols", "a"], tmp_path) == ["a.ko"]
    assert complete(generated, ["krmmod", "--w"], tmp_path) == ["--wait"]
    assert complete(generated, ["kmodinfo", "-"], tmp_path)[:3] == ["--author", "--description", "--field"]
    assert complete(generated, ["kloaderd", "--socket", "no"], tmp_path) == ["notes.txt"]
    assert complete(generated, ["kloaderd", "--watchdog", ""], tmp_path) == []
    with Client(daemon_socket) as client:
        client.finit_module(FIXTURES / "hello.ko")
    env = {"KLOADERD_SOCKET": daemon_socket}
    assert complete(generated, ["krmmod", "he"], tmp_path, env) == ["hello"]
    assert complete(generated, ["kmodinfo", ""], tmp_path, env) == ["a.ko", "b.ko", "hello", "sub"]
