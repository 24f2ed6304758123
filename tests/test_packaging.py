"""What a user gets from the distribution: one version everywhere, the licence it declares, types."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

import kloader_client
import kloaderd
from test_server import command

REPO = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_one_version_everywhere():
    """kloaderd.__version__ is the one home; pyproject.toml reads it from there."""
    assert PROJECT["dynamic"] == ["version"]
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"] == {
        "version": {"attr": "kloaderd.__version__"}}
    assert kloaderd.__version__ == kloader_client.__version__ == importlib.metadata.version("kloader")


@pytest.mark.parametrize("name", sorted(PROJECT["scripts"]))
def test_every_command_says_its_version(name):
    done = subprocess.run([command(name), "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{name} (kloader) {kloaderd.__version__}\n", "")


def test_the_changelog_has_unreleased_changes_and_a_section_for_this_version():
    sections = [line for line in (REPO / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")]
    assert sections[0] == "## Unreleased"
    assert any(line.startswith(f"## {kloaderd.__version__} ") for line in sections), sections


def test_licence_is_the_gpl2_text_pyproject_declares():
    assert PROJECT["license"] == {"text": "GPL-2.0-only"}
    text = (REPO / "LICENSE").read_text()
    assert text.split("\n", 2)[:2] == [" " * 20 + "GNU GENERAL PUBLIC LICENSE", " " * 23 + "Version 2, June 1991"]
    assert "END OF TERMS AND CONDITIONS" in text


@pytest.mark.slow          # installs the client and runs mypy
def test_client_types_reach_mypy(tmp_path):
    """An installed kloader_client is type-checked, not skipped as untyped (PEP 561's py.typed)."""
    pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy)")
    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    site = subprocess.run([env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The client directory as a site-packages entry, as a non-editable install puts it.
    Path(site, "kloader.pth").write_text(str(REPO / "client") + "\n")
    (tmp_path / "user.py").write_text("from kloader_client import Client\nClient(socket_path=42)\n")
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--python-executable",
                           str(env / "bin" / "python"), "user.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "py.typed" not in done.stdout
    assert 'Argument "socket_path" to "Client" has incompatible type "int"' in done.stdout, done.stdout


@pytest.mark.slow          # runs mypy
def test_the_client_type_checks():
    """What py.typed promises: the client's own annotations hold (mypy on the package)."""
    pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy)")
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent",
                           "--ignore-missing-imports", str(REPO / "client" / "kloader_client")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout
