"""The `param_ops_*` objects `module_param()` points at.

A module's `struct kernel_param` names its type by the address of one of
these `struct kernel_param_ops` (32 bytes: `unsigned int flags` then the
set/get/free pointers).  The kernel treats them as tags: `PARAM_OPS` maps
each object to the `params.PARAM_TYPES` key (or "string" / "array") whose
rules apply, so the function pointers stay NULL.
"""

from __future__ import annotations

import struct

from ..params import PARAM_TYPES
from . import export_object

KERNEL_PARAM_OPS_SIZE = 32
KERNEL_PARAM_OPS_FL_NOARG = 1

PARAM_OPS: dict[str, str] = {f"param_ops_{name}": name for name in PARAM_TYPES}
PARAM_OPS["param_ops_string"] = "string"
PARAM_OPS["param_array_ops"] = "array"

for _object, _kind in PARAM_OPS.items():
    _noarg = _kind in PARAM_TYPES and PARAM_TYPES[_kind].noarg
    export_object(_object, f"const struct kernel_param_ops {_object}", KERNEL_PARAM_OPS_SIZE,
                  struct.pack("<I", KERNEL_PARAM_OPS_FL_NOARG if _noarg else 0))
