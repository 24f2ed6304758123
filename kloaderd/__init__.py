"""kloader: a user-space emulation of the Linux module loader and linker.

The embedding API, for test suites:

    async with kloaderd.serve() as daemon: ...        # in this trio run
    with kloaderd.run_in_thread() as daemon: ...      # on a background thread

Both give `daemon.socket_path` and `daemon.kernel`; see `kloaderd.embed`.
They are imported on first use, so `import kloaderd.config` (kmodbuild, the
client) does not pay for trio and the emulator.
"""

from __future__ import annotations

from typing import Any

# The one home of kloader's version: pyproject.toml reads it from here
# (`[tool.setuptools.dynamic]`).  A literal, not importlib.metadata's lookup,
# which costs every command ~40 ms of start-up (half of `klsmod`'s).
__version__ = "0.1.0"

__all__ = ["Daemon", "KernelProblemWarning", "KernelProblems", "Problems",
           "run_in_thread", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kloaderd import embed

        return getattr(embed, name)
    raise AttributeError(f"module 'kloaderd' has no attribute {name!r}")
