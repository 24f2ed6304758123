"""ELF relocatable objects as Linux's module loader reads them (see image.py).

`image` is imported on first use, so a tool that needs only `depinfo`
(kdepmod) does not pay for the loader's full reader.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Export", "Image", "Param", "RelaSection", "Section", "Symbol", "parse"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kloaderd.elf import image

        return getattr(image, name)
    raise AttributeError(f"module 'kloaderd.elf' has no attribute {name!r}")
