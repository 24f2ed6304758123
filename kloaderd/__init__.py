"""kloader: a user-space emulation of the Linux module loader and linker.

The embedding API, for test suites:

    async with kloaderd.serve() as daemon: ...        # in this trio run
    with kloaderd.run_in_thread() as daemon: ...      # on a background thread

Both give `daemon.socket_path` and `daemon.kernel`; see `kloaderd.embed`.
They are imported on first use, so `import kloaderd.config` (kmodbuild, the
client) does not pay for trio and the emulator.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    # The one source is pyproject.toml's version, as installed (editable or not).
    __version__ = version("kloader")
except PackageNotFoundError:  # a tree on sys.path that was never installed
    __version__ = "0+unknown"

__all__ = ["Daemon", "KernelProblemWarning", "KernelProblems", "Problems",
           "run_in_thread", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kloaderd import embed

        return getattr(embed, name)
    raise AttributeError(f"module 'kloaderd' has no attribute {name!r}")
