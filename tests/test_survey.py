"""kloader-survey: every module of a tree loaded, run and removed, and classified."""

from __future__ import annotations

import json
import lzma
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kloaderd import survey
from kloaderd.survey import chunks, classify_failure, groups, pieces, summary
from test_profile import corpus
from test_server import FIXTURES, command

EXPECTED = {
    "hello.ko": {"class": "clean"},
    "exporter.ko": {"class": "clean"},
    "user.ko": {"class": "clean"},
    "initfail.ko": {"class": "init-failed", "errno": 19},
    "leaky.ko": {"class": "leaked", "what": "leaky: leaked 1024 bytes in 2 allocations"},
    "unknownsym.ko": {"class": "refused", "errno": 2, "message": "unknownsym: Unknown symbol "
                      "kloader_missing_too, kloader_no_such_function (see dmesg)"},
}


def test_groups_keep_dependencies_together_and_in_order():
    deps = {"a": [], "b": ["a"], "c": ["b"], "d": [], "e": ["d", "a"], "f": []}
    found = groups(deps)
    assert sorted(map(sorted, found)) == [["a", "b", "c", "d", "e"], ["f"]]
    big = found[0]
    for rel, needed in deps.items():
        for dep in needed:
            assert big.index(dep) < big.index(rel)


def test_failures_are_classified_by_the_loaders_words():
    assert classify_failure("m: init oopsed: kloader: kernel function foo is not emulated", 14) == \
        {"class": "not-emulated", "function": "foo"}
    assert classify_failure("m: init oopsed: BUG: kernel NULL pointer dereference", 14) == \
        {"class": "oops", "where": "BUG: kernel NULL pointer dereference"}
    assert classify_failure("m: init failed with error -12", 12) == {"class": "init-failed", "errno": 12}
    assert classify_failure("m: version magic 'x' should be 'y'", 8)["class"] == "refused"
    lines = summary({"a": {"class": "clean"}, "b": {"class": "not-emulated", "function": "foo"}}, 5)
    assert lines[1].split() == ["clean", "1", "50.0%"] and lines[-1].split() == ["1", "foo"]
    # a base module is blamed for every module stopped behind it, however deep
    lines = summary({"base": {"class": "not-emulated", "function": "foo"},
                     "mid": {"class": "dependency", "needs": ["base"]},
                     "top": {"class": "dependency", "needs": ["mid", "base"]},
                     "other": {"class": "init-failed", "errno": 19},
                     "user": {"class": "dependency", "needs": ["other", "mid"]}}, 5)
    assert lines[-3:] == ["modules that block most others (dependents stopped, transitively):",
                          "      3  base  (not-emulated: foo)",
                          "      1  other  (init-failed: 19)"]


def test_a_removal_is_judged_by_its_own_records_not_by_an_unrelated_module_dying_meanwhile():
    """vsock_loopback's exit was sometimes `not-emulated`: sunrpc's cache
    cleaner, queued on a system workqueue, died while it ran.  A record of a
    module still loaded that the removed one does not use is that module's,
    and counts in its own exit verdict."""
    from types import SimpleNamespace as Record
    deps = {"vsock.ko": [], "vsock_loopback.ko": ["vsock.ko"], "sunrpc.ko": []}
    names = {"sunrpc.ko": "sunrpc", "vsock.ko": "vsock", "vsock_loopback.ko": "vsock_loopback"}
    dying = [Record(module="sunrpc", text="kloader: kernel function getboottime64 is not emulated",
                    problem=None)]
    used = [Record(module="vsock", text="kloader: kernel function vsock_x is not emulated", problem=None)]
    strays: dict = {}
    mine = survey.removal_records("vsock_loopback.ko", names, deps, dying + used, strays)
    assert survey.exit_verdict(mine) == {"class": "not-emulated", "function": "vsock_x", "phase": "exit"}
    assert survey.exit_verdict(survey.removal_records("vsock_loopback.ko", names, deps, dying, {})) == \
        {"class": "clean"}
    del names["vsock_loopback.ko"]
    assert survey.exit_verdict(survey.removal_records("sunrpc.ko", names, deps, [], strays)) == \
        {"class": "not-emulated", "function": "getboottime64", "phase": "exit"}
    assert strays == {}


def test_a_tree_of_modules_with_the_command(tmp_path):
    tree = tmp_path / "lib/modules/x"
    (tree / "kernel/sub").mkdir(parents=True)
    for name in EXPECTED:
        shutil.copy(FIXTURES / name, tree / "kernel" / name)
    # compressed modules are surveyed too, and a dependency may sit elsewhere in the tree
    (tree / "kernel/sub/user.ko.xz").write_bytes(lzma.compress((FIXTURES / "user.ko").read_bytes()))
    (tree / "kernel/user.ko").unlink()
    out = tmp_path / "survey.json"
    done = subprocess.run([command("kloader-survey"), str(tree), "--jobs", "2", "--json", str(out),
                           "--timeout", "5"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    expected = {f"kernel/{k}" if k != "user.ko" else "kernel/sub/user.ko.xz": v
                for k, v in EXPECTED.items()}
    assert result == expected
    lines = done.stdout.splitlines()
    assert lines[1].split() == ["clean", "3", "50.0%"]
    assert "6 modules in" in done.stdout and "kernel kloader" in done.stdout


def test_a_missing_tree_or_profile_is_one_line(tmp_path):
    done = subprocess.run([command("kloader-survey"), str(tmp_path / "none")], capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stderr) == (1, f"kloader-survey: {tmp_path / 'none'}: no such directory\n")
    done = subprocess.run([command("kloader-survey"), str(tmp_path), "--kernel", "0.0-nosuch"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no build tree" in done.stderr


def test_real_modules_are_classified_under_their_profile(tmp_path):
    """A slice of the Debian 6.12 corpus (.ko.xz) under its own profile."""
    modules, build = corpus("6.12")
    tree = tmp_path / "mods"
    tree.mkdir()
    for name in ("cast_common", "cast5_generic", "cast6_generic"):
        shutil.copy(next(modules.rglob(f"{name}.ko.xz")), tree)
    out = tmp_path / "s.json"
    done = subprocess.run([command("kloader-survey"), str(tree), "--kernel", str(build), "--json",
                           str(out), "--jobs", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert set(result) == {"cast_common.ko.xz", "cast5_generic.ko.xz", "cast6_generic.ko.xz"}
    assert all(v["class"] != "refused" for v in result.values()), result    # unforced, all linked


@pytest.mark.parametrize("release", ["6.1", "6.12"])
def test_a_module_removed_after_its_inits_work_has_run(tmp_path, release):
    """rds's init takes a DO_ONCE, whose work item holds a reference on rds
    until it has run: removed at once, rds was "refused, in use"; a user's
    rmmod comes after that work, and so does the survey's."""
    modules, build = corpus(release)
    tree = tmp_path / "mods"
    tree.mkdir()
    shutil.copy(next(modules.rglob("rds.ko*")), tree)
    out = tmp_path / "s.json"
    done = subprocess.run([command("kloader-survey"), str(tree), "--kernel", str(build), "--json",
                           str(out), "--jobs", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert list(json.loads(out.read_text()).values()) == [{"class": "clean"}]


def test_a_module_that_poisons_the_kernel_does_not_judge_the_modules_after_it(tmp_path):
    """halfdead dies in init with its widget on exporter's list; kloader
    frees it, so the next widget registration would write into freed
    memory.  The modules after it run again in a fresh kernel without it:
    user is clean, not the echo of halfdead's oops.  The groups after a
    poisoned one start on a fresh kernel too; healthy groups share one."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("exporter", "halfdead", "user", "hello", "initfail", "leaky"):
        shutil.copy(FIXTURES / f"{name}.ko", tree)
    out = tmp_path / "survey.json"
    done = subprocess.run([command("kloader-survey"), str(tree), "--jobs", "1", "--json", str(out),
                           "--timeout", "5"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result.pop("halfdead.ko") == {"class": "oops", "where": "BUG: kernel NULL pointer "
                                                                   "dereference, address: 0000000000000000"}
    assert result == {"exporter.ko": {"class": "clean"}, "user.ko": {"class": "clean"},
                      "hello.ko": {"class": "clean"}, "initfail.ko": EXPECTED["initfail.ko"],
                      "leaky.ko": EXPECTED["leaky.ko"]}


def test_chunks_pack_pieces_whole_and_in_order():
    a, b, c, d, e = (["a1", "a2", "a3"], ["a1"]), (["b1", "b2"], ["b1", "b2"]), (["c"], ["c"]), \
        (["d"], ["d"]), (["e"], ["e"])
    work = [a, b, c, d, e]
    assert chunks(work, 3) == [[a], [b, c], [d, e]]
    assert chunks(work, 2) == [[a], [b], [c, d], [e]]
    assert [p for chunk in chunks(work) for p in chunk] == work


def test_a_big_group_is_cut_into_pieces_holding_what_each_module_needs():
    """Two bases, each needed by several modules, and one module needing
    both: every module is judged in exactly one piece, which loads what it
    needs before it; modules needing the same bases share a piece."""
    deps = {"x": [], "y": [], "x1": ["x"], "x2": ["x"], "x3": ["x"], "y1": ["y"], "y2": ["y"],
            "xy": ["x1", "y"]}
    group = groups(deps)[0]
    assert len(group) == 8
    cut = pieces(group, deps, size=4)
    assert sorted(rel for _, owned in cut for rel in owned) == sorted(deps)     # each once
    for modules, owned in cut:
        assert set(owned) <= set(modules)
        for rel in modules:
            assert all(modules.index(dep) < modules.index(rel) for dep in deps[rel])
    assert len(cut) == 3 and sum(len(m) for m, _ in cut) == 10       # x and y load twice
    assert all(len(modules) <= 4 for modules, _ in cut)
    assert {"x1", "x2", "x3"} & set(cut[0][1]) and "y1" not in cut[0][0]
    assert pieces(group, deps, size=8) == [(group, group)]


def test_a_worker_keeps_its_kernel_while_healthy_and_replaces_a_poisoned_one(monkeypatch):
    """One chunk, four groups.  halfdead's oops poisons the first kernel, in
    which user's init then oopses on halfdead's freed widget: user is
    confirmed in a kernel of its own (exporter and user: clean, so that oops
    was not its own), and the group runs again without halfdead on a third
    kernel.  That healthy kernel then serves hello and initfail (an init
    that fails cleanly leaves it healthy) and leaky, whose leak retires it."""
    built = []
    real_init = survey.SurveyKernel.__init__

    def counting_init(self, *args):
        real_init(self, *args)
        built.append(self)
    monkeypatch.setattr(survey.SurveyKernel, "__init__", counting_init)
    deps = {"exporter.ko": [], "halfdead.ko": ["exporter.ko"], "user.ko": ["exporter.ko"],
            "hello.ko": [], "initfail.ko": [], "leaky.ko": []}
    chunk = [(group, group) for group in (["exporter.ko", "halfdead.ko", "user.ko"], ["hello.ko"],
                                          ["initfail.ko"], ["leaky.ko"])]
    result = survey.survey_chunk(str(FIXTURES), chunk, deps, None, 5.0)
    assert {rel: v["class"] for rel, v in result.items()} == {
        "exporter.ko": "clean", "halfdead.ko": "oops", "user.ko": "clean", "hello.ko": "clean",
        "initfail.ko": "init-failed", "leaky.ko": "leaked"}

    def said(kernel: survey.SurveyKernel) -> str:
        return "\n".join(r.text for r in kernel.k.log.records())
    poisoned, alone, fresh = built
    assert all(b.k.shutting_down for b in built)                 # every kernel closed
    assert "halfdead_init" in said(poisoned) and "user_init+" in said(poisoned)   # both oopsed
    assert "halfdead" not in said(alone) and "Hello, world" not in said(alone)
    assert "halfdead" not in said(fresh)
    assert all(line in said(fresh) for line in ("user: unloaded", "Hello, world",
                                                "initfail: init returning -19", "leaky: leaked"))


def test_once_poisoned_a_load_asleep_on_a_dead_tasks_mutex_is_given_up_at_once(monkeypatch):
    """exporter's widgets_lock is left held by a task that is gone, so
    initfail's clean failure poisons the kernel and user's init, which
    takes that lock in register_widget, would sleep for ever: the survey
    gives it up as soon as it sleeps there (a `timeout`, so a poisoner to
    confirm alone), not after PROVISIONAL_TIMEOUT."""
    import trio
    monkeypatch.setattr(survey, "PROVISIONAL_TIMEOUT", 30.0)
    kernel = survey.SurveyKernel(None, 5.0)
    real_read = survey.read_image

    def read(path: Path) -> bytes:
        if path.name == "initfail.ko":                 # exporter is loaded by now
            lock = next(s.address for s in kernel.k.ksyms.all() if s.name == "widgets_lock")
            kernel.k.mem.write_u64(lock, 0xdead)
            kernel.k.machine.sched.orphaned_locks[lock] = "gone/1"
        return real_read(path)
    monkeypatch.setattr(survey, "read_image", read)
    deps = {"exporter.ko": [], "initfail.ko": [], "user.ko": ["exporter.ko"]}

    async def main() -> tuple[Any, float]:
        start = trio.current_time()
        try:
            return await kernel.run(FIXTURES, list(deps), deps), trio.current_time() - start
        finally:
            await kernel.close()
    (verdicts, poisoners), took = trio.run(main)
    assert poisoners == ["initfail.ko", "user.ko"]
    assert verdicts == {"initfail.ko": EXPECTED["initfail.ko"]}
    assert took < survey.PROVISIONAL_TIMEOUT
