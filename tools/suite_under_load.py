#!/usr/bin/env python3
"""Run the test suite repeatedly while CPU hogs compete for the machine.

The README's test command must pass on a loaded machine, serially and under
xdist; a test that depends on a time slice ending (or not) at some moment
fails here first.  This starts `--hogs` busy-looping processes, runs
`python -m pytest -q -n WORKERS` `--runs` times, prints each run's result and
the tests that failed, and stops the hogs however it ends.  It also lists
what each run left behind in /tmp under kloader's names (kl-*, kloader*),
which tests must not do — on a machine others share, some may be theirs.
(TMPDIR is left alone: a longer one makes socket paths under tmp_path
exceed sun_path's 107 bytes, and a private 0700 one shuts out the test that
connects as another uid.)

    python tools/suite_under_load.py --runs 10            # -n 4, one hog
    python tools/suite_under_load.py --runs 3 --workers 0 # serially

Exit status 0 only if every run passed and left nothing behind.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOG = "while True: pass"
# What kloader's tests and daemons create in the temporary directory.  pytest's
# own basetemp (pytest-of-USER) is pytest's business: it keeps the last three.
OURS = re.compile(r"^(kl-|kloader|kloaderd-)")


def leftovers() -> set[str]:
    return {p.name for p in Path("/tmp").iterdir() if OURS.match(p.name)}


def run_once(workers: int, extra: list[str], log: Path | None) -> tuple[bool, float, list[str], str, list[str]]:
    """(passed, seconds, failed test ids, pytest's last line, what was left behind)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    if workers:
        cmd += ["-n", str(workers)]
    before = leftovers()
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    left = [f"/tmp/{name}" for name in sorted(leftovers() - before)]
    if log:
        log.write_text(done.stdout + done.stderr)
    failed = re.findall(r"^(?:FAILED|ERROR) (.+)$", done.stdout, re.M)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    return done.returncode == 0, time.monotonic() - started, failed, summary, left


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="how many runs (default 10)")
    ap.add_argument("--workers", type=int, default=4, help="pytest-xdist workers, 0 for serial (default 4)")
    ap.add_argument("--hogs", type=int, default=1, help="busy-looping processes to run meanwhile (default 1)")
    ap.add_argument("--log", type=Path, metavar="DIR", help="keep each run's whole output in DIR/run-N.txt")
    ap.add_argument("pytest_args", nargs="*", help="more arguments for pytest (after --)")
    args = ap.parse_args(argv)
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(args.hogs)]
    passed = 0
    clean = True
    try:
        for i in range(1, args.runs + 1):
            log = None
            if args.log:
                args.log.mkdir(parents=True, exist_ok=True)
                log = args.log / f"run-{i}.txt"
            ok, seconds, failed, summary, left = run_once(args.workers, args.pytest_args, log)
            passed += ok
            clean = clean and not left
            print(f"run {i}: {'pass' if ok else 'FAIL'} in {seconds:.0f} s: {summary}", flush=True)
            for test in failed:
                print(f"    failed: {test}", flush=True)
            if left:
                print(f"    left behind: {' '.join(left)}", flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    print(f"{passed}/{args.runs} runs passed with {args.hogs} CPU hog(s), "
          f"{'-n ' + str(args.workers) if args.workers else 'serially'}"
          f"{'' if clean else '; temporary files were left behind'}")
    return 0 if passed == args.runs and clean else 1


if __name__ == "__main__":
    sys.exit(main())
