"""GPIO descriptors (Linux 6.1's drivers/gpio/gpiolib.c) on a machine with
no GPIO chip, no firmware node and no lookup table: kloader's kernel is
built with CONFIG_GPIOLIB=y and nothing registers a chip.

So, as Linux answers there:

* `gpio_to_desc(n)` finds no chip: NULL, and "invalid GPIO n" first when
  `gpio_is_valid(n)` is false (n < 0 or n >= ARCH_NR_GPIOS, 1024 on x86-64);
* `gpiod_get(dev, con_id, flags)` (and `_index`) finds no mapping:
  ERR_PTR(-ENOENT); the `_optional` forms turn that into NULL;
* every descriptor operation on NULL does nothing and returns 0
  (VALIDATE_DESC: an optional GPIO that is absent), on an ERR_PTR warns
  "NAME: invalid GPIO (errorpointer)" and returns its error, and on any other
  pointer — no descriptor exists here, so it is not one — "NAME: invalid
  GPIO (no device)" and -EINVAL;
* `gpiod_to_irq` of no descriptor is -EINVAL.

Under a kernel profile these are not kloader's: the Debian cloud kernels
(6.1, 6.12) are built without GPIOLIB, so <linux/gpio.h> there is inline
stubs (`gpio_request` is -ENOSYS, `gpiod_get` ERR_PTR(-ENOSYS),
`gpiod_get_optional` NULL) and nothing is exported.

Where 6.12 differs (docs/kernel-files.md): `gpio_is_valid` is `n >= 0`,
`gpio_to_desc` never warns, and `gpio_request` of any number is
-EPROBE_DEFER.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.printk import KERN_WARNING

ARCH_NR_GPIOS = 1024             # CONFIG_ARCH_NR_GPIO on x86-64
MAX_ERRNO = 4095
_MASK64 = (1 << 64) - 1


def _who(ctx: Any) -> str | None:
    return getattr(ctx.module, "name", None)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def err_ptr(code: int) -> int:
    return (-code) & _MASK64


def is_err(ptr: int) -> bool:
    return ptr >= err_ptr(MAX_ERRNO)


def gpio_is_valid(number: int) -> bool:
    """asm-generic/gpio.h (6.1): the number fits the global space."""
    return 0 <= number < ARCH_NR_GPIOS


def to_desc(ctx: Any, gpio: int) -> int:
    """gpio_to_desc: no chip holds any number."""
    number = _s32(gpio)
    if not gpio_is_valid(number):
        ctx.kernel.log.emit(KERN_WARNING, f"invalid GPIO {number}", _who(ctx))
    return 0


def validate(ctx: Any, desc: int, function: str) -> int:
    """validate_desc: 0 (NULL: nothing to do), the ERR_PTR's error, or
    -EINVAL for a pointer that is no descriptor of this machine's."""
    if not desc:
        return 0
    if is_err(desc):
        ctx.kernel.log.emit(KERN_WARNING, f"{function}: invalid GPIO (errorpointer)", _who(ctx))
        return desc - (1 << 64)
    ctx.mem.read_u64(desc)                     # desc->gdev: an oops if it is no memory at all
    ctx.kernel.log.emit(KERN_WARNING, f"{function}: invalid GPIO (no device)", _who(ctx))
    return -errno.EINVAL


def find(ctx: Any, dev: int, con_id: int, idx: int, flags: int) -> int:
    """gpiod_get_index: no firmware node, no lookup table: ERR_PTR(-ENOENT)."""
    return err_ptr(errno.ENOENT)


def optional(desc: int) -> int:
    """gpiod_get_index_optional: a GPIO that is not there is NULL."""
    return 0 if desc == err_ptr(errno.ENOENT) else desc


@export("gpio_to_desc", "struct gpio_desc *gpio_to_desc(unsigned gpio)", nargs=1)
def gpio_to_desc(ctx: Any, gpio: int) -> int:
    return to_desc(ctx, gpio)


@export("gpiod_get", "struct gpio_desc *gpiod_get(struct device *dev, const char *con_id, "
        "enum gpiod_flags flags)", nargs=3, gpl=True)
def gpiod_get(ctx: Any, dev: int, con_id: int, flags: int) -> int:
    return find(ctx, dev, con_id, 0, flags)


@export("gpiod_get_index", "struct gpio_desc *gpiod_get_index(struct device *dev, const char *con_id, "
        "unsigned int idx, enum gpiod_flags flags)", nargs=4, gpl=True)
def gpiod_get_index(ctx: Any, dev: int, con_id: int, idx: int, flags: int) -> int:
    return find(ctx, dev, con_id, idx, flags)


@export("gpiod_get_optional", "struct gpio_desc *gpiod_get_optional(struct device *dev, const char *con_id, "
        "enum gpiod_flags flags)", nargs=3, gpl=True)
def gpiod_get_optional(ctx: Any, dev: int, con_id: int, flags: int) -> int:
    return optional(find(ctx, dev, con_id, 0, flags))


@export("gpiod_get_index_optional", "struct gpio_desc *gpiod_get_index_optional(struct device *dev, "
        "const char *con_id, unsigned int index, enum gpiod_flags flags)", nargs=4, gpl=True)
def gpiod_get_index_optional(ctx: Any, dev: int, con_id: int, idx: int, flags: int) -> int:
    return optional(find(ctx, dev, con_id, idx, flags))


@export("gpiod_count", "int gpiod_count(struct device *dev, const char *con_id)", nargs=2, gpl=True)
def gpiod_count(ctx: Any, dev: int, con_id: int) -> int:
    return -errno.ENOENT


@export("gpiod_put", "void gpiod_put(struct gpio_desc *desc)", nargs=1, gpl=True)
def gpiod_put(ctx: Any, desc: int) -> None:
    if desc:
        validate(ctx, desc, "gpiod_free")


def _export_validated(name: str, proto: str, nargs: int) -> None:
    """A descriptor operation: VALIDATE_DESC's answer is all there is."""
    def impl(ctx: Any, desc: int, *_args: int) -> int:
        return validate(ctx, desc, name)
    impl.__qualname__ = impl.__name__ = name
    export(name, proto, nargs=nargs, gpl=True)(impl)


for _name, _proto, _nargs in (
        ("gpiod_direction_input", "int gpiod_direction_input(struct gpio_desc *desc)", 1),
        ("gpiod_direction_output", "int gpiod_direction_output(struct gpio_desc *desc, int value)", 2),
        ("gpiod_direction_output_raw", "int gpiod_direction_output_raw(struct gpio_desc *desc, int value)", 2),
        ("gpiod_get_value", "int gpiod_get_value(const struct gpio_desc *desc)", 1),
        ("gpiod_get_raw_value", "int gpiod_get_raw_value(const struct gpio_desc *desc)", 1),
        ("gpiod_get_value_cansleep", "int gpiod_get_value_cansleep(const struct gpio_desc *desc)", 1),
        ("gpiod_get_raw_value_cansleep", "int gpiod_get_raw_value_cansleep(const struct gpio_desc *desc)", 1),
        ("gpiod_set_value", "void gpiod_set_value(struct gpio_desc *desc, int value)", 2),
        ("gpiod_set_raw_value", "void gpiod_set_raw_value(struct gpio_desc *desc, int value)", 2),
        ("gpiod_set_value_cansleep", "void gpiod_set_value_cansleep(struct gpio_desc *desc, int value)", 2),
        ("gpiod_set_raw_value_cansleep", "void gpiod_set_raw_value_cansleep(struct gpio_desc *desc, int value)",
         2),
        ("gpiod_set_consumer_name", "int gpiod_set_consumer_name(struct gpio_desc *desc, const char *name)", 2)):
    _export_validated(_name, _proto, _nargs)


@export("gpiod_to_irq", "int gpiod_to_irq(const struct gpio_desc *desc)", nargs=1, gpl=True)
def gpiod_to_irq(ctx: Any, desc: int) -> int:
    return -errno.EINVAL
