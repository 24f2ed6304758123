"""The legacy integer GPIO API (Linux 6.1's drivers/gpio/gpiolib-legacy.c)
on a machine without GPIO chips: `gpio_request(n)` of a valid-looking
number is -EPROBE_DEFER ("assume unavailable valid GPIOs will appear
later"); of a number `gpio_is_valid` rejects it is what 6.1's
`gpiod_request(NULL)` is — 0, after gpio_to_desc's "invalid GPIO n" —
and so is `gpio_request_one`.  `gpio_free` of anything does nothing.
The value and direction calls are inline in <linux/gpio.h>: gpio_to_desc,
then the descriptor call on NULL (0, nothing done).
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from .gpiolib import _s32, gpio_is_valid, to_desc

EPROBE_DEFER = 517               # include/linux/errno.h: kernel-internal, not in Python's errno


def request(ctx: Any, gpio: int) -> int:
    if not to_desc(ctx, gpio) and gpio_is_valid(_s32(gpio)):
        return -EPROBE_DEFER
    return 0                                   # gpiod_request(NULL): VALIDATE_DESC's 0


@export("gpio_request", "int gpio_request(unsigned gpio, const char *label)", nargs=2, gpl=True)
def gpio_request(ctx: Any, gpio: int, label: int) -> int:
    return request(ctx, gpio)


@export("gpio_request_one", "int gpio_request_one(unsigned gpio, unsigned long flags, const char *label)",
        nargs=3, gpl=True)
def gpio_request_one(ctx: Any, gpio: int, flags: int, label: int) -> int:
    return request(ctx, gpio)


@export("gpio_free", "void gpio_free(unsigned gpio)", nargs=1, gpl=True)
def gpio_free(ctx: Any, gpio: int) -> None:
    to_desc(ctx, gpio)                         # gpiod_free(NULL): nothing


@export("devm_gpio_request", "int devm_gpio_request(struct device *dev, unsigned gpio, const char *label)",
        nargs=3, gpl=True)
def devm_gpio_request(ctx: Any, dev: int, gpio: int, label: int) -> int:
    return request(ctx, gpio)


@export("devm_gpio_request_one", "int devm_gpio_request_one(struct device *dev, unsigned gpio, "
        "unsigned long flags, const char *label)", nargs=4, gpl=True)
def devm_gpio_request_one(ctx: Any, dev: int, gpio: int, flags: int, label: int) -> int:
    return request(ctx, gpio)
