"""The checks Linux makes before trusting a module's ABI: vermagic,
modversions CRCs, and the license.

kloader behaves as a kernel built with CONFIG_MODVERSIONS and
CONFIG_MODULE_FORCE_LOAD: what `modprobe --force-vermagic` and
`--force-modversion` skip is allowed, and taints the kernel `F`.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..config import GPL_COMPATIBLE
from ..errors import KernelError
from ..uapi import MODULE_INIT_IGNORE_VERMAGIC
from .printk import KERN_ERR

if TYPE_CHECKING:
    from .internal import KernelServices
    from .module import Module


def license_is_gpl_compatible(license: str) -> bool:
    return license in GPL_COMPATIBLE


def try_to_force_load(kernel: "KernelServices", module: "Module", reason: str) -> None:
    """CONFIG_MODULE_FORCE_LOAD=y: load anyway, module and kernel tainted F."""
    kernel.warn(f"{module.name}: {reason}: kernel tainted.")
    kernel.add_module_taint(module, "F")


def check_vermagic(kernel: "KernelServices", module: "Module", flags: int) -> None:
    """check_modinfo()'s vermagic test; ENOEXEC unless forced."""
    ours = kernel.vermagic
    theirs = module.image.modinfo_get("vermagic")
    if flags & MODULE_INIT_IGNORE_VERMAGIC:
        theirs = None
    if theirs is None:
        try_to_force_load(kernel, module, "bad vermagic")
    elif theirs != ours:
        error = KernelError(errno.ENOEXEC,
                            f"{module.name}: version magic '{theirs}' should be '{ours}'")
        kernel.log.emit(KERN_ERR, error.message)
        raise error


def check_version(kernel: "KernelServices", module: "Module", symbol: str, crc: int | None,
                  versions: dict[str, int] | None) -> bool:
    """check_version(): does the module's `__versions` CRC for `symbol` match?

    `versions` is None when the module has no `__versions` (or the caller
    asked to ignore them): loading then needs a forced load.
    """
    if crc is None:           # the exporter has no CRC: nothing to compare
        return True
    if versions is None:
        try_to_force_load(kernel, module, f'no version for "{symbol}" found')
        return True
    theirs = versions.get(symbol)
    if theirs is None:
        # "Broken toolchain. Warn once, then let it go.."
        kernel.warn(f"{module.name}: no symbol version for {symbol}")
        return True
    if theirs != crc:
        kernel.warn(f"{module.name}: disagrees about version of symbol {symbol}")
        return False
    return True
