"""The package's structure, as docs/architecture.md states it: rules about
what may import what, checked on the source so that a change that breaks one
fails here rather than in a reviewer's head."""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import kloaderd

PACKAGE = Path(kloaderd.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str], name: str = "") -> set[str]:
    """Every module of `known` that `path` names in an import statement,
    wherever it stands: at the top, in a function, or under TYPE_CHECKING
    (a type-only import is still a dependency a reader must follow)."""
    name = name or module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & known   # from . import api
            found.update(submodules)
            if len(submodules) < len(node.names):    # a name of the package's own, not only its modules
                found.add(target)
    return (found & known) - {name}


def import_graph(root: str) -> dict[str, set[str]]:
    paths = {module_name(p): p for p in (PACKAGE.parent / root.replace(".", "/")).rglob("*.py")}
    return {name: imports(path, set(paths)) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_type_only_circle(tmp_path):
    """The checker itself: a circle closed only by a TYPE_CHECKING import counts."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    source = tmp_path / "m.py"          # as if it were kloaderd/kernel/m.py
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .kernel import Kernel\n")
    assert imports(source, {"kloaderd.kernel.kernel"}, "kloaderd.kernel.m") == {"kloaderd.kernel.kernel"}


def test_the_kernel_package_has_no_import_cycle():
    """Issue 15: `Kernel` is the API the server calls; the pipelines (load,
    unload, version, moduleparam, ...) are handed `KernelServices`
    (internal.py) and never import kernel.py, so no module of kloaderd.kernel
    imports, even for types only, one that imports it back."""
    graph = import_graph("kloaderd.kernel")
    assert "kloaderd.kernel.internal" in graph["kloaderd.kernel.kernel"]
    assert cycles(graph) == []


# The cycles kloaderd still has, each closed by imports for types or by
# mutual calls that mirror Linux's own files; anything else is new.
KNOWN_CYCLES = {
    # KernelServices holds the sanitizer, which is handed the KernelServices (types only)
    frozenset({"kloaderd.kernel.internal", "kloaderd.sanitizer", "kloaderd.sanitizer.golden",
               "kloaderd.sanitizer.lifetime"}),
    # a node's FileOps are called with the OpenFile (a type), and inodes are file.py's struct
    frozenset({"kloaderd.fs.file", "kloaderd.fs.tree"}),
    # device_add/device_del call the bus, class and probe code that calls back into
    # core, as drivers/base/core.c, bus.c, class.c and dd.c do through base.h
    frozenset({"kloaderd.drivers.base.bus", "kloaderd.drivers.base.classes", "kloaderd.drivers.base.core",
               "kloaderd.drivers.base.dd", "kloaderd.drivers.base.driver"}),
    # the server makes sessions, a session runs ops; ops and sessions name their caller's type
    frozenset({"kloaderd.server.ops", "kloaderd.server.server", "kloaderd.server.session"}),
}


def test_kloaderd_has_no_import_cycle_but_the_known_ones():
    """Data flows one way (bytes -> elf -> link -> kernel <-> server <->
    client): a new cycle anywhere in kloaderd fails here.  `kloaderd`'s own
    lazy re-export of the embedding API (`kloaderd.serve`, for users) is
    not an edge: nothing inside the package goes through it."""
    graph = import_graph("kloaderd")
    assert "kloaderd.embed" in graph["kloaderd"]
    graph["kloaderd"].discard("kloaderd.embed")
    found = {frozenset(c) for c in cycles(graph)}
    assert found - KNOWN_CYCLES == set(), "new import cycles"
    assert KNOWN_CYCLES - found == set(), "a known cycle is gone: take it off KNOWN_CYCLES"


def test_the_pipelines_never_reach_the_served_kernel():
    """The served API is above the services: neither internal.py nor the
    pipelines it is handed to reach kernel.py, even through another module
    (subsystems booted by the kernel, such as /proc and /sys, may)."""
    graph = import_graph("kloaderd.kernel")

    def reach(name: str) -> set[str]:
        seen, todo = set(), [name]
        while todo:
            for dep in graph[todo.pop()] - seen:
                seen.add(dep)
                todo.append(dep)
        return seen

    for below in ("internal", "load", "unload", "version", "moduleparam", "kmod"):
        assert "kloaderd.kernel.kernel" not in reach(f"kloaderd.kernel.{below}"), below



def test_kloaderd_parses_its_options_without_loading_the_emulator():
    """`kloaderd --help` and a refused option answer at once: the options
    have their own module (kernel/options.py), the emulator is loaded after."""
    import subprocess
    import sys

    code = ("import sys; from kloaderd.server.main import make_parser; make_parser().parse_args(['--watchdog', '2']); "
            "print(' '.join(m for m in ('unicorn', 'kloaderd.kernel.kernel', 'kloaderd.kernel.cpu') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []

def unmapped(doc: str, root: Path) -> list[str]:
    """Source files docs/architecture.md's package map does not name: a row
    names a file by its path, or a directory row (`dir/`) names it by its
    path inside the directory, or a pattern such as `commands/k*.py` (the
    packages' `__init__.py` below it go with its row)."""
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    firsts = [(re.findall(r"`([^`]+)`", row.split("|")[1]), row) for row in rows]
    missing = []
    for path in sorted(root.glob("kloaderd/**/*.py")) + sorted(root.glob("client/**/*.py")):
        name = path.relative_to(root).as_posix()
        if "__pycache__" in name:
            continue
        found = False
        for cells, row in firsts:
            for cell in cells:
                if name == cell or fnmatch.fnmatch(name, cell):
                    found = True
                elif cell.endswith("/") and name.startswith(cell):
                    inner = name[len(cell):]
                    named = re.findall(r"`([^`]+)`", row)
                    found |= inner.endswith("__init__.py") or any(fnmatch.fnmatch(inner, n) for n in named)
        if not found:
            missing.append(name)
    return missing


def test_the_package_map_names_every_file():
    """Issue 15: a newcomer finds each file's concern in docs/architecture.md.
    A new file needs its row there (or its name in its directory's row)."""
    root = PACKAGE.parent
    doc = (root / "docs" / "architecture.md").read_text()
    assert unmapped(doc, root) == []
    assert unmapped(doc.replace("`rwsem.py`", "rwsem"), root) == ["kloaderd/kernel/locking/rwsem.py"]
