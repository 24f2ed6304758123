"""Managed GPIO descriptors (drivers/gpio/gpiolib-devres.c): the
`devm_gpiod_get*` of a machine without GPIO chips answer as the unmanaged
ones (ERR_PTR(-ENOENT), NULL for `_optional`) and, having got nothing,
add nothing to the device's resources.  `devm_gpiod_put` of a descriptor
the device does not manage is Linux's WARN_ON.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import FUNCTIONS, export
from ...kernel.panic import warn
from .gpiolib import gpiod_get, gpiod_get_index, gpiod_get_index_optional, gpiod_get_optional


# Found nothing, they manage nothing: the unmanaged functions serve under these names.
for _name, _impl in (("devm_gpiod_get", gpiod_get), ("devm_gpiod_get_index", gpiod_get_index),
                     ("devm_gpiod_get_optional", gpiod_get_optional),
                     ("devm_gpiod_get_index_optional", gpiod_get_index_optional)):
    _proto = FUNCTIONS[_impl.__name__].proto.replace(f" *{_impl.__name__}(", f" *{_name}(")
    export(_name, _proto, nargs=FUNCTIONS[_impl.__name__].nargs, gpl=True)(_impl)


@export("devm_gpiod_put", "void devm_gpiod_put(struct device *dev, struct gpio_desc *desc)", nargs=2,
        gpl=True)
def devm_gpiod_put(ctx: Any, dev: int, desc: int) -> None:
    warn(ctx, None, "drivers/gpio/gpiolib-devres.c:265", "devm_gpiod_put")
