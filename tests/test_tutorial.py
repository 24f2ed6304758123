"""The docs cannot rot: every command in docs/tutorial.md and README.md is run
here, and the output they show is compared with what the commands print now.

Markdown conventions the docs follow (GitHub shows them as ordinary code):

* a ```` ```sh ```` block is run, all blocks of a page in order in one bash
  session (variables, background jobs and the working directory carry over);
* a ```` ```text ```` block right after it is the output that block prints
  (stdout and stderr together);
* a block whose info string has `file=NAME` is written to NAME first;
* in expected output, `...` inside a line matches any text, a line that is
  only `...` matches any number of lines, and dmesg timestamps match any time.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "docs" / "tutorial.md"
README = REPO / "README.md"

TEST_COMMAND = ("python3 -m venv .venv && . .venv/bin/activate && "
                "pip install -q -e '.[test]' && python -m pytest -q -n 2")

_FENCE = re.compile(r"^```([\w-]*)([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d{6}\]", re.M)
_MARK = "@@kloader-docs-block {}@@"


@dataclass
class Block:
    lang: str
    attrs: dict[str, str]
    text: str
    line: int                       # where it starts in the page, for messages
    expected: str | None = None     # for sh blocks: the text block after it


def blocks(page: Path) -> list[Block]:
    source = page.read_text()
    found: list[Block] = []
    for match in _FENCE.finditer(source):
        attrs = dict(word.split("=", 1) for word in match.group(2).split() if "=" in word)
        block = Block(match.group(1), attrs, match.group(3), source.count("\n", 0, match.start()) + 1)
        if block.lang == "text" and found and found[-1].lang == "sh" and not block.attrs \
                and found[-1].expected is None:
            found[-1].expected = block.text
            continue
        found.append(block)
    return found


def matches(expected: str, actual: str) -> bool:
    """Expected output, with `...` wildcards, against what was printed."""
    want = _TIMESTAMP.sub("[TIME]", expected.rstrip("\n")).split("\n")
    got = _TIMESTAMP.sub("[TIME]", actual.rstrip("\n")).split("\n")
    pattern = "".join(r"(?:.*\n)*?" if line == "..." else
                        ".*".join(re.escape(part) for part in line.rstrip().split("...")) + r"[ \t]*\n"
                        for line in want)
    return re.fullmatch(pattern, "\n".join(got) + "\n") is not None


def environment(private: str) -> dict[str, str]:
    """The commands installed beside this interpreter come first on PATH, so
    the docs run against this checkout whether or not a venv is activated."""
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return dict(os.environ, PATH=path, KLOADERD_SOCKET=os.path.join(private, "kloaderd.sock"),
                PYTHONDONTWRITEBYTECODE="1")


def run_page(page: Path, workdir: Path) -> list[tuple[Block, str]]:
    """Run a page's shell blocks in one bash session; each block's output."""
    shell = [b for b in blocks(page) if b.lang == "sh"]
    for block in blocks(page):
        if "file" in block.attrs:
            (workdir / block.attrs["file"]).write_text(block.text)
    script = ["exec 2>&1"]
    for number, block in enumerate(shell):
        script += [f"echo {shlex.quote(_MARK.format(number))}", block.text]
    with tempfile.TemporaryDirectory(prefix="kl-", dir="/tmp") as private:
        proc = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=workdir, text=True,
                                env=environment(private), stdout=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=120)
        finally:
            try:   # whatever a failed page left running in the background
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    pieces = re.split(r"^@@kloader-docs-block (\d+)@@\n", output, flags=re.M)
    results = {int(n): text for n, text in zip(pieces[1::2], pieces[2::2])}
    return [(block, results.get(n, "<never ran>\n")) for n, block in enumerate(shell)]


def check_outputs(page: Path, ran: list[tuple[Block, str]]) -> None:
    for block, actual in ran:
        if block.expected is not None:
            assert matches(block.expected, actual), (
                f"{page.name}:{block.line}: the output shown is not what\n"
                f"{block.text}\nprints now:\n{actual}")


# -- the matcher itself ------------------------------------------------------------

def test_the_output_matcher_knows_wildcards_and_timestamps():
    assert matches("[    0.1] x\n", "[    0.100000] x\n") is False
    assert matches("[    0.100000] x\n", "[   12.345678] x\n")
    assert matches("a\n...\nz\n", "a\nb\nc\nz\n") and matches("a\n...\nz\n", "a\nz\n")
    assert matches("1 passed in ...s", "1 passed in 0.42s\n")
    assert not matches("a\nz\n", "a\nb\nz\n")
    assert not matches("sum 3", "sum 4")


# -- docs/tutorial.md ----------------------------------------------------------------

@pytest.mark.slow          # the whole tutorial, step by step
def test_the_tutorial_runs_as_written(tmp_path):
    ran = run_page(TUTORIAL, tmp_path)
    assert len(ran) >= 7, "the tutorial's commands were not found"
    check_outputs(TUTORIAL, ran)
    files = {b.attrs["file"] for b in blocks(TUTORIAL) if "file" in b.attrs}
    assert {"greeter.c", "test_greeter.py"} <= files


# -- README.md ----------------------------------------------------------------------

def readme_blocks() -> list[Block]:
    return blocks(README)


def test_the_readme_test_command_is_the_one_ci_runs():
    text = README.read_text()
    marker = text.index("<!-- test-command -->")
    after = text[marker:].split("\n")
    assert after[1] == "```sh" and after[2] == TEST_COMMAND
    ci = subprocess.run(["awk", '/<!-- test-command -->/ {getline; getline; print; exit}',
                         str(README)], capture_output=True, text=True, check=True)
    assert ci.stdout.strip() == TEST_COMMAND


def test_the_readme_main_job_runs_and_shows_the_tour_it_prints():
    shell = [b for b in readme_blocks() if b.lang == "sh"]
    main_job = shell[0].text.strip()
    install = TEST_COMMAND.rsplit(" && ", 1)[0].replace("'.[test]'", ".")
    assert main_job.startswith(install + " && "), main_job
    # The install part is what CI's own run of the test command proves; the
    # main job's own command runs here, against this checkout.
    job = main_job[len(install) + 4:]
    assert job == "python examples/tour.py"
    with tempfile.TemporaryDirectory(prefix="kl-", dir="/tmp") as private:
        done = subprocess.run([sys.executable, "examples/tour.py"], cwd=REPO, text=True,
                              env=environment(private), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    tours = [b for b in readme_blocks() if b.attrs.get("output-of") == "examples/tour.py"]
    assert len(tours) == 1
    assert matches(tours[0].text, done.stdout), done.stdout
    for step in ("$ kinsmod fixtures/exporter.ko", "$ klsmod", "$ kdmesg",
                 "$ krmmod --wait --verbose exporter &", "rmmod exporter"):
        assert step in done.stdout


def test_every_readme_command_is_accounted_for():
    """A new shell block in the README must be given a test here."""
    shell = [b.text.strip() for b in readme_blocks() if b.lang == "sh"]
    assert shell[1] == TEST_COMMAND
    assert len(shell) == 2, f"untested README commands: {shell[2:]}"


def test_the_readme_embedding_examples_pass(tmp_path):
    files = [b for b in readme_blocks() if b.attrs.get("file", "").endswith(".py")]
    examples = [b for b in files if b.attrs["file"].startswith("test_")]
    assert examples, "the README shows how to embed kloader in a suite"
    # In an empty directory, as a reader would: nothing from this checkout but kloader itself.
    for block in files:
        (tmp_path / block.attrs["file"]).write_text(block.text)
    with tempfile.TemporaryDirectory(prefix="kl-", dir="/tmp") as private:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               *[b.attrs["file"] for b in examples]], cwd=tmp_path, text=True,
                              env=environment(private), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b(\d+) passed\b", done.stdout)
    assert " failed" not in done.stdout and " skipped" not in done.stdout


@pytest.mark.parametrize("page", [README, TUTORIAL], ids=lambda p: p.name)
def test_pages_link_only_to_files_that_exist(page):
    for target in re.findall(r"\]\(([^)#\s]+)\)", page.read_text()):
        if "://" not in target:
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
