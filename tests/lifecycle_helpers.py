"""Shared helpers for the in-process lifecycle tests: fixture images and a
view of the kernel log."""

from __future__ import annotations

from pathlib import Path

from kloaderd.kernel.kernel import Kernel, KernelOptions

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def ko(name: str) -> bytes:
    return (FIXTURES / f"{name}.ko").read_bytes()


def texts(kernel: Kernel) -> list[str]:
    return [r.text for r in kernel.log.records()]


def new_kernel(**options) -> Kernel:
    return Kernel(KernelOptions(**options))


def footprint(kernel: Kernel) -> tuple:
    """Everything a failed load must leave unchanged."""
    return (
        sorted(kernel.loaded),
        len(kernel.symbols),
        kernel.module_memory,
        {m.name: (dict(m.refs), [h.name for h in m.holders]) for m in kernel.loaded.values()},
        kernel.slab.usage(None),
    )
