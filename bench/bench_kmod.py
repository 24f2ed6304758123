"""kdepmod against kmod's depmod on a distribution kernel's tree, in the same run.

Both run as commands over twin copies of the corpus's `lib/modules/RELEASE`
(`tools/depmod_corpus.py` makes them and checks the files are identical),
interleaved round by round; the row is kdepmod's wall time judged on its
ratio to depmod's.  Target: <= 3×.  Without kmod or the corpus the row says
how to get them; `--quick` uses the corpus only if it is cached already.

    python -m bench --only kmod
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from bench.common import Row, interleaved, ratio_row, timing, unmeasured
from tools.depmod_corpus import OUTPUTS, kdepmod_command, kmod_command, mirror
from tools.kernel_corpus import Unavailable, build_dir, cache_root, fetch, modules_dir

TARGET = 3.0
METRIC = "kdepmod -E Module.symvers, 6.1 corpus"


def _cached_root() -> Path | None:
    """A 6.1 corpus already unpacked with kmod, if any."""
    for marker in sorted(cache_root().glob("6.1.*/.complete")):
        if "kmod" in marker.read_text().split():
            return marker.parent
    return None


def run(quick: bool) -> list[Row]:
    root = _cached_root()
    if root is None and not quick:
        try:
            root = fetch("6.1", with_kmod=True)
        except Unavailable as exc:
            return [unmeasured(METRIC, f"no corpus: {exc}")]
    if root is None:
        return [unmeasured(METRIC, "corpus not cached: python tools/kernel_corpus.py --with-kmod")]
    try:
        depmod = kmod_command("depmod", root)
    except Unavailable as exc:
        return [unmeasured(METRIC, str(exc))]
    tree = modules_dir(root)
    args = ["-E", str(build_dir(root) / "Module.symvers"), tree.name]
    with tempfile.TemporaryDirectory(prefix="kloader-bench-depmod-") as tmp:
        a, b = Path(tmp) / "kmod", Path(tmp) / "kloader"
        da, db = mirror(tree, a), mirror(tree, b)

        def command(argv: list[str]) -> None:
            subprocess.run(argv, check=True, capture_output=True)

        samples = interleaved(1 if quick else 7,
                              depmod=timing(lambda: command([*depmod, "-b", str(a), *args])),
                              kdepmod=timing(lambda: command([*kdepmod_command(), "-b", str(b), *args])))
        same = all((da / n).read_bytes() == (db / n).read_bytes() for n in OUTPUTS)
        modules = sum(1 for line in (da / "modules.dep").read_text().splitlines() if line)
    metric = f"kdepmod -E, {modules} modules ({'files identical' if same else 'FILES DIFFER'})"
    result = ratio_row(metric, samples["kdepmod"], samples["depmod"], "ms", TARGET, floor_name="kmod depmod")
    if not same:
        result["ok"] = False
    return [result]


if __name__ == "__main__":
    from bench.common import table
    print(table(run(False)))
