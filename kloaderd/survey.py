"""kloader-survey: how far a tree of real modules gets under a kernel profile.

    kloader-survey /lib/modules/RELEASE --kernel /lib/modules/RELEASE/build [--jobs N] [--json FILE]

Every module (`.ko`, `.ko.gz`, `.ko.xz`, `.ko.zst`) is loaded unforced, in
dependency order (a module's dependencies are the modules exporting what it
needs, read from the modules themselves), its init runs, then everything is
removed in reverse order and its exit runs.  Each module gets one class:

* `clean`: loaded and removed, init and exit ran, no oops, no not-emulated
  call, no leak;
* `refused`: the loader refused it (errno and message: vermagic, CRC,
  unknown symbol, namespace, ...);
* `init-failed`: its init returned an error (errno);
* `not-emulated`: it called (or read) a kernel function or object kloader
  does not emulate (which one), at init or exit;
* `oops`: it oopsed (where: the first oops line);
* `leaked`: it unloaded but left memory or registrations behind;
* `timeout`: its init or exit still slept after `--timeout` seconds;
* `dependency`: a module it needs did not load.

Modules are grouped by the dependencies between them (a group shares one
kernel; a big one is cut into pieces, each with what its modules need) and
the pieces are spread over `--jobs` worker processes.  The
summary, the not-emulated functions that stop most modules, and (with
`--json`) every module's verdict are written at the end; a terminal also
sees progress while it runs.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import functools
import json
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from kloaderd import __version__

SUFFIXES = (".ko", ".ko.gz", ".ko.xz", ".ko.zst")
_NOT_EMULATED = re.compile(r"kloader: kernel (?:function|object) (\S+) is not emulated")
_INIT_ERROR = re.compile(r"init failed with error (-\d+)")
_OOPS_START = ("BUG:", "Oops:", "general protection", "invalid opcode", "kernel BUG",
               "Kernel panic", "watchdog: BUG")


def module_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.endswith(SUFFIXES) and p.is_file())


# A worker reads the same images again and again (the modules a chunk's
# pieces share, a piece run again after a poisoning): the last two chunks'
# worth are kept (a few MiB), so a .ko.xz is not decompressed each time.
@functools.lru_cache(maxsize=64)
def read_image(path: Path) -> bytes:
    from kloaderd.decompress import compression_of, module_decompress
    data = path.read_bytes()
    return module_decompress(data, 64 << 20) if compression_of(data) else data


# What a module exports, what it needs, and why it could not be read (or None).
Symbols = tuple[str, list[str], tuple[str, ...], str | None]


def symbols(root: str, rels: list[str]) -> list[Symbols]:
    """Each of `rels` read and parsed: one worker call of the first pass."""
    from kloaderd.elf.image import parse
    from kloaderd.errors import KernelError
    found: list[Symbols] = []
    for rel in rels:
        try:
            image = parse(read_image(Path(root) / rel))
        except KernelError as exc:
            found.append((rel, [], (), exc.message))
            continue
        found.append((rel, [export.name for export in image.exports], image.undefined, None))
    return found


def dependencies(root: Path, files: list[Path], pool: concurrent.futures.Executor | None = None
                 ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """{module: modules it needs}, {module: why it could not be read}.

    Every image is decompressed and parsed (6.12's 1,138 .ko.xz: ~2 s of
    CPU), in `pool`'s workers when given, while they start."""
    rels = [str(path.relative_to(root)) for path in files]
    step = -(-len(rels) // 16) or 1
    slices = [rels[i:i + step] for i in range(0, len(rels), step)]
    call = functools.partial(symbols, str(root))
    provider: dict[str, str] = {}
    undefined: dict[str, tuple[str, ...]] = {}
    unreadable: dict[str, str] = {}
    for part in (pool.map(call, slices) if pool else map(call, slices)):
        for rel, exports, needs, why in part:                  # in file order: the first wins
            for name in exports:
                provider.setdefault(name, rel)
            undefined[rel] = needs
            if why is not None:
                unreadable[rel] = why
    deps = {rel: sorted({provider[n] for n in names if n in provider and provider[n] != rel})
            for rel, names in undefined.items()}
    return deps, unreadable


def groups(deps: dict[str, list[str]]) -> list[list[str]]:
    """Modules joined by dependencies, each group in dependency order, largest first."""
    parent = {rel: rel for rel in deps}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for rel, needed in deps.items():
        for dep in needed:
            parent[find(rel)] = find(dep)
    order: list[str] = []
    seen: set[str] = set()

    def visit(rel: str) -> None:
        stack = [(rel, iter(deps[rel]))]
        seen.add(rel)
        while stack:
            node, it = stack[-1]
            nxt = next((d for d in it if d not in seen), None)
            if nxt is None:
                stack.pop()
                order.append(node)
            else:
                seen.add(nxt)
                stack.append((nxt, iter(deps[nxt])))
    for rel in sorted(deps):
        if rel not in seen:
            visit(rel)
    by_root: dict[str, list[str]] = collections.defaultdict(list)
    for rel in order:
        by_root[find(rel)].append(rel)
    return sorted(by_root.values(), key=len, reverse=True)


def classify_failure(message: str, errno_: int | None) -> dict[str, Any]:
    found = _NOT_EMULATED.search(message)
    if found:
        return {"class": "not-emulated", "function": found.group(1)}
    if "oopsed:" in message:
        return {"class": "oops", "where": message.split("oopsed:", 1)[1].strip()}
    found = _INIT_ERROR.search(message)
    if found:
        return {"class": "init-failed", "errno": -int(found.group(1))}
    return {"class": "refused", "errno": errno_, "message": message}


# A chunk: pieces of groups handed to one worker call, packed up to this
# many modules, so a kernel is built once per chunk and not per singleton
# group, while chunks stay small enough to balance the workers.  A group
# larger than this is cut into pieces of about this size (`pieces`).
CHUNK_MODULES = 32

# A piece of a group: the modules to load, in the group's order, and those
# of them whose verdicts it gives (the others only support them).
Piece = tuple[list[str], list[str]]


def pieces(group: list[str], deps: dict[str, list[str]], size: int = CHUNK_MODULES) -> list[Piece]:
    """`group` (in dependency order) cut into pieces of about `size` modules.

    A piece is some modules nothing else in the group needs, with
    everything they need, so each module still runs in a kernel holding
    what it needs, loaded before it and removed after it, as in the whole
    group.  Without the cut, Debian 6.1's largest group (624 modules
    joined by x_tables, hid, nf_conntrack, scsi_mod...) was one worker's
    long pole, and each module poisoning it ran most of the 624 again.
    A module needed by several pieces loads in each; its verdict is the
    first's."""
    if len(group) <= size:
        return [(group, group)]
    used = {dep for rel in group for dep in deps[rel]}
    tops = [rel for rel in group if rel not in used]
    covered = set(tops).union(*(needed(rel, deps) for rel in tops))
    tops += [rel for rel in group if rel not in covered]     # on a cycle of exports
    # Modules needing the same ones side by side, so fewer load in several
    # pieces (Debian 6.1's largest group: 755 loads, against 855 in order).
    order = {rel: i for i, rel in enumerate(group)}
    support = {top: needed(top, deps) for top in tops}
    tops.sort(key=lambda top: sorted(order[rel] for rel in support[top]))
    cut: list[set[str]] = [set()]
    for top in tops:
        wanted = support[top] | {top}
        if cut[-1] and len(cut[-1] | wanted) > size:
            cut.append(set())
        cut[-1] |= wanted
    owned: set[str] = set()
    result: list[Piece] = []
    for members in cut:
        result.append(([rel for rel in group if rel in members],
                       [rel for rel in group if rel in members and rel not in owned]))
        owned |= members
    return result


def chunks(work: list[Piece], size: int = CHUNK_MODULES) -> list[list[Piece]]:
    """`work` (the largest group's pieces first) packed in order into chunks
    of about `size` modules."""
    packed: list[list[Piece]] = []
    filled = size
    for piece in work:
        if filled + len(piece[0]) > size:
            packed.append([])
            filled = 0
        packed[-1].append(piece)
        filled += len(piece[0])
    return packed


# After a module poisoned the kernel, the loads go on only to find the other
# modules that poison it (their verdicts are confirmed in a kernel of their
# own): there a sleeping init is given up after this many seconds, or at
# once when it sleeps on a mutex whose holder is gone (looked for this often).
PROVISIONAL_TIMEOUT = 1.0
ORPHAN_POLL = 0.01
SETTLE_TIMEOUT = 0.1      # the longest a removal waits for the kernel's tasks to block (settle())


class SurveyKernel:
    """A worker's kernel, reused from group to group while it is healthy.

    A failure *poisons* the kernel when later modules could pay for it:

    * a task died (or returned) holding a sleeping lock, which as in Linux
      stays held for ever (`Scheduler.orphaned_locks`);
    * a module that uses other modules died (an oops, a not-emulated
      call, in its init or its exit) or failed leaving memory or
      registrations behind: kloader frees the module and its leftovers
      where Linux would leave them in place, so the modules it used may
      keep pointers into freed memory (comedi's driver list, llc's SAP
      list); a module using only the kernel cannot: what it registered
      with the kernel, kloader's registries drop;
    * a task was given up asleep (`timeout`).

    A verdict reached after the kernel was poisoned is never kept: those
    modules run again in a fresh kernel without the module that poisoned
    it, so each verdict is the module's own, never the echo of an earlier
    failure (see `survey_group`).  Any other trouble (an oops, a warning,
    a leak) retires the kernel after its group.
    """

    def __init__(self, kernel: str | None, timeout: float) -> None:
        from kloaderd.kernel.kernel import Kernel, KernelOptions
        # exit_grace 0: what is still asleep when the kernel is dropped was
        # already given up (a `timeout` verdict); it is interrupted at once.
        self.k = Kernel(KernelOptions(kernel=kernel or "", watchdog=min(5.0, timeout),
                                      exit_grace=0.0))
        self.timeout = timeout

    def poisoned(self, verdict: dict[str, Any], needs: list[str], since: int) -> bool:
        """Whether the failure `verdict` of a module using `needs`, logged
        after record `since`, leaves the kernel unfit for the modules after it."""
        from kloaderd.kernel.printk import Problem
        if verdict["class"] == "timeout" or self.k.machine.sched.orphaned_locks:
            return True
        return bool(needs) and (verdict["class"] in ("oops", "not-emulated") or any(
            r.problem is Problem.LEAK for r in self.k.log.records(since)))

    def healthy(self, since: int) -> bool:
        """Nothing left behind since log record `since`: fit for the next group."""
        k = self.k
        return not (k.loaded or k.machine.sched.orphaned_locks
                    or any(r.problem is not None for r in k.log.records(since)))

    async def give_up_orphaned(self, loading: list[Any]) -> None:
        """Once the kernel is poisoned: give the load in progress up as soon
        as its init sleeps on a mutex whose holder is gone.  Nobody will
        unlock it (as in Linux), so `PROVISIONAL_TIMEOUT` would end it the
        same way, a second later; a poisoner's held RTNL made every network
        module after it wait that second."""
        import trio

        from kloaderd.kernel.module import ModuleState
        sched = self.k.machine.sched
        while True:
            await trio.sleep(ORPHAN_POLL)
            if any(task.comm == "insmod" and getattr(task.module, "state", None) is ModuleState.COMING
                   for lock in sched.orphaned_locks for task in sched.waitqueue.sleepers(lock)):
                loading[0].cancel()

    async def run(self, root: Path, modules: list[str], deps: dict[str, list[str]]
                  ) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Load `modules` in order, then remove them in reverse.

        Returns the verdicts and the modules that poisoned the kernel.  If
        a load poisoned it, the loads go on (with `PROVISIONAL_TIMEOUT`) to
        find every module that does, no exit runs, and only the verdicts
        reached before the first poisoning (and its own) are returned.  If
        an exit poisoned it, the modules still loaded have no verdict.
        """
        import trio

        from kloaderd.errors import KernelError

        k = self.k
        result: dict[str, dict[str, Any]] = {}
        poisoners: list[str] = []
        names: dict[str, str] = {}
        loading: list[trio.CancelScope] = []
        async with trio.open_nursery() as nursery:
            for rel in modules:
                missing = [d for d in deps[rel] if d not in names]
                if missing:
                    result[rel] = {"class": "dependency", "needs": missing}
                    continue
                since = k.log.last_seq
                verdict: dict[str, Any] = {"class": "timeout", "phase": "init"}
                with trio.move_on_after(PROVISIONAL_TIMEOUT if poisoners else self.timeout) as scope:
                    loading[:] = [scope]
                    try:
                        names[rel] = await k.init_module(read_image(root / rel))
                        continue
                    except KernelError as exc:
                        verdict = classify_failure(exc.message, exc.errno)
                    except OSError as exc:
                        verdict = {"class": "refused", "errno": exc.errno, "message": str(exc)}
                result[rel] = verdict
                if self.poisoned(verdict, deps[rel], since):
                    if not poisoners:
                        nursery.start_soon(self.give_up_orphaned, loading)
                    poisoners.append(rel)
            nursery.cancel_scope.cancel()
        if poisoners:
            first = modules.index(poisoners[0])
            return {rel: v for rel, v in result.items() if modules.index(rel) <= first}, poisoners
        strays: dict[str, list[Any]] = {}
        for rel in reversed(list(names)):
            since = k.log.last_seq
            verdict = {"class": "timeout", "phase": "exit"}
            with trio.move_on_after(self.timeout):
                try:
                    await settle()
                    await k.delete_module(names[rel])
                    verdict = exit_verdict(removal_records(rel, names, deps, k.log.records(since), strays))
                except KernelError as exc:
                    verdict = {**classify_failure(exc.message, exc.errno), "phase": "exit"}
            result[rel] = verdict
            del names[rel]
            if names and self.poisoned(verdict, deps[rel], since):
                return result, [rel]
        return result, []

    async def close(self) -> None:
        import trio
        with trio.CancelScope(shield=True):
            await self.k.shutdown()


async def settle() -> None:
    """Let what the loads queued run before a removal, as it has on a real
    machine by the time a person or a script types rmmod: a DO_ONCE in an
    init (rds, ipvlan) holds a reference on its module until its work item
    has flipped the key, and an immediate delete_module is EWOULDBLOCK, as
    it would be on Linux in that window.  A kernel whose tasks never all
    block (a kthread that spins) is waited for SETTLE_TIMEOUT at most."""
    import trio
    import trio.testing
    with trio.move_on_after(SETTLE_TIMEOUT):
        await trio.testing.wait_all_tasks_blocked()


def removal_records(rel: str, names: dict[str, str], deps: dict[str, list[str]],
                    records: Sequence[Any], strays: dict[str, list[Any]]) -> list[Any]:
    """What of `records` (logged while `rel` was removed) is its removal's:
    a record of a module still loaded that `rel` does not use (through any
    chain) is that module's — its own work or timer dying meanwhile, such
    as sunrpc's cache cleaner during vsock_loopback's exit — and is kept
    in `strays` for that module's own exit verdict; `rel`'s strays are its."""
    used = {names[d] for d in needed(rel, deps) if d in names}
    others = {name for other, name in names.items() if other != rel} - used
    mine = strays.pop(names[rel], [])
    for record in records:
        if record.module in others:
            strays.setdefault(record.module, []).append(record)
        else:
            mine.append(record)
    return mine


def exit_verdict(records: Sequence[Any]) -> dict[str, Any]:
    """A removal that returned: what its exit left in the log decides."""
    from kloaderd.kernel.printk import Problem
    texts = [r.text for r in records]
    missing = next((m.group(1) for t in texts if (m := _NOT_EMULATED.search(t))), None)
    if missing:
        return {"class": "not-emulated", "function": missing, "phase": "exit"}
    oops = next((t for t in texts if t.startswith(_OOPS_START)), None)
    if oops is not None:
        return {"class": "oops", "phase": "exit", "where": oops}
    leak = next((r.text for r in records if r.problem is Problem.LEAK), None)
    if leak is not None:
        return {"class": "leaked", "what": leak}
    return {"class": "clean"}


def needed(rel: str, deps: dict[str, list[str]]) -> set[str]:
    """Every module `rel` needs, through any chain."""
    seen: set[str] = set()
    stack = list(deps[rel])
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.add(dep)
            stack.extend(deps[dep])
    return seen


async def survey_group(root: Path, group: list[str], deps: dict[str, list[str]],
                       kernel: str | None, timeout: float,
                       survey: SurveyKernel | None) -> tuple[dict[str, dict[str, Any]],
                                                             SurveyKernel | None]:
    """Every module of `group` (in dependency order) loaded, run and removed,
    on `survey` (or a fresh kernel); returns the verdicts and the kernel if
    it is fit for the next group.

    When a module poisons the kernel, its verdict stands (the kernel was
    healthy until then) and the modules not finished run again in a fresh
    kernel without it.  The other modules that poisoned that run are
    confirmed first, each in a kernel of its own with only what it needs,
    so that the next run goes without them too: a group costs a few runs,
    not one per module that poisons it.
    """
    final: dict[str, dict[str, Any]] = {}
    pending = list(group)
    while pending:
        if survey is None:
            survey = SurveyKernel(kernel, timeout)
        since = survey.k.log.last_seq
        verdicts, poisoners = await survey.run(root, pending, deps)
        final.update(verdicts)
        for rel in poisoners[1:]:
            alone = SurveyKernel(kernel, timeout)
            support = needed(rel, deps)
            verdicts, first = await alone.run(root, [m for m in pending if m in support] + [rel], deps)
            await alone.close()
            if first[:1] == [rel]:
                final[rel] = verdicts[rel]
        pending = [rel for rel in pending if rel not in final]
        if poisoners or not survey.healthy(since):
            await survey.close()
            survey = None
    return final, survey


def survey_chunk(root: str, chunk: list[Piece], deps: dict[str, list[str]],
                 kernel: str | None, timeout: float) -> dict[str, dict[str, Any]]:
    """One worker call: the pieces of `chunk`, on a kernel reused while
    healthy; the verdicts each piece gives."""
    import trio

    result: dict[str, dict[str, Any]] = {}

    async def main() -> None:
        survey: SurveyKernel | None = None
        try:
            for group, owned in chunk:
                verdicts, survey = await survey_group(Path(root), group, deps, kernel, timeout,
                                                      survey)
                result.update((rel, verdicts[rel]) for rel in owned)
        finally:
            if survey is not None:
                await survey.close()

    trio.run(main)
    return result


CLASSES = ("clean", "refused", "init-failed", "not-emulated", "oops", "leaked", "timeout", "dependency")


def summary(result: dict[str, dict[str, Any]], top: int) -> list[str]:
    total = len(result) or 1
    counts = collections.Counter(v["class"] for v in result.values())
    lines = [f"{'class':<14} {'modules':>7} {'share':>7}"]
    for cls in CLASSES:
        lines.append(f"{cls:<14} {counts[cls]:>7} {100 * counts[cls] / total:>6.1f}%")
    lines.append(f"{'total':<14} {len(result):>7}")
    stopped = collections.Counter(v["function"] for v in result.values() if "function" in v)
    if stopped:
        lines += ["", f"top not-emulated functions (modules stopped by each):"]
        lines += [f"{n:>7}  {name}" for name, n in stopped.most_common(top)]
    blocking = blockers(result)
    if blocking:
        lines += ["", "modules that block most others (dependents stopped, transitively):"]
        lines += [f"{n:>7}  {rel}  ({_why(result[rel])})" for rel, n in blocking.most_common(top)]
    return lines


def blockers(result: dict[str, dict[str, Any]]) -> collections.Counter[str]:
    """{failed module: how many `dependency` modules it stops, through any chain}."""
    blame: collections.Counter[str] = collections.Counter()
    for rel, verdict in result.items():
        if verdict["class"] != "dependency":
            continue
        roots: set[str] = set()
        stack, seen = list(verdict.get("needs", ())), set()
        while stack:
            dep = stack.pop()
            if dep in seen or dep not in result:
                continue
            seen.add(dep)
            if result[dep]["class"] == "dependency":
                stack.extend(result[dep].get("needs", ()))
            else:
                roots.add(dep)
        blame.update(roots)
    return blame


def _why(verdict: dict[str, Any]) -> str:
    detail = verdict.get("function") or verdict.get("errno") or verdict.get("where") or ""
    return f"{verdict['class']}: {detail}" if detail else verdict["class"]


def run_survey(root: Path, kernel: str | None, jobs: int, timeout: float,
               progress: bool) -> dict[str, dict[str, Any]]:
    started = time.monotonic()
    context = multiprocessing.get_context("spawn")     # no forked copy of a parent's threads
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        deps, unreadable = dependencies(root, module_files(root), pool)
        result: dict[str, dict[str, Any]] = {rel: {"class": "refused", "errno": 8, "message": why}
                                             for rel, why in unreadable.items()}
        readable = {r: d for r, d in deps.items() if r not in unreadable}
        work = chunks([piece for group in groups(readable) for piece in pieces(group, readable)])
        done, total = len(result), len(deps)
        futures = [pool.submit(survey_chunk, str(root), c, deps, kernel, timeout) for c in work]
        for future in concurrent.futures.as_completed(futures):
            part = future.result()
            result.update(part)
            done += len(part)
            if progress:
                clean = sum(v["class"] == "clean" for v in result.values())
                print(f"\r{done}/{total} modules, {clean} clean, {time.monotonic() - started:.0f} s",
                      end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return dict(sorted(result.items()))


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kloader-survey", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"%(prog)s (kloader) {__version__}")
    p.add_argument("root", type=Path, metavar="DIR", help="a tree of modules, e.g. /lib/modules/RELEASE")
    p.add_argument("--kernel", metavar="DIR|RELEASE",
                   help="the kernel profile (default: DIR/build when it exists, else kloader's own)")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="worker processes (default: the number of CPUs)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write every module's verdict here")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="how long an init or exit may sleep before it is given up (default 10)")
    p.add_argument("--top", type=int, default=20, metavar="N",
                   help="how many not-emulated functions to list (default 20)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if not args.root.is_dir():
        print(f"kloader-survey: {args.root}: no such directory", file=sys.stderr)
        return 1
    kernel = args.kernel
    if kernel is None and (args.root / "build").is_dir():
        kernel = str(args.root / "build")
    if kernel:
        from kloaderd.errors import KernelError
        from kloaderd.kernel.profile import KernelProfile
        try:
            KernelProfile(kernel)
        except KernelError as exc:
            print(f"kloader-survey: {exc.message}", file=sys.stderr)
            return 1
    started = time.monotonic()
    result = run_survey(args.root, kernel, max(1, args.jobs), args.timeout, sys.stderr.isatty())
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(summary(result, args.top)))
    print(f"\n{len(result)} modules in {time.monotonic() - started:.1f} s with {args.jobs} jobs, "
          f"kernel {kernel or 'kloader'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
