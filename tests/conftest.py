"""What several test files share: the fixture modules, and pytester for the
plugin's own tests.  The daemon fixtures themselves (`kloaderd`, `kloader`,
`kloader_async`, `kloader_build`) come from kloader's pytest plugin, which the
package registers as a `pytest11` entry point — as they do for any user's suite.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"


@pytest.fixture(scope="session")
def fixture_ko(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`fixture_ko("hello")`: the committed `fixtures/hello.ko`; one that is not
    committed (yet) is built from `fixtures/src/` once per session, against
    the exporter's symbols, as `fixtures/rebuild.py` builds the set."""
    built = tmp_path_factory.mktemp("fixture-ko")

    def ko(name: str) -> Path:
        committed = FIXTURES / f"{name}.ko"
        if committed.exists():
            return committed
        output = built / f"{name}.ko"
        if not output.exists():
            from kloaderd.build import build_module

            extra = [] if name == "exporter" else [ko("exporter")]
            build_module([FIXTURES / "src" / f"{name}.c"], output,
                         include_dirs=[FIXTURES / "include"], extra_symbols=extra)
        return output

    return ko


@pytest.fixture(params=["6.1", "6.12"])
def each_release(request: pytest.FixtureRequest) -> str:
    """"6.1" then "6.12": the test's daemon runs that Debian kernel's profile
    (and kloader_build uses its kbuild), or the test skips saying why."""
    from realkernel import corpus
    _, build = corpus(request.param)
    request.node.add_marker(pytest.mark.kloader(kernel=str(build)))
    return request.param
