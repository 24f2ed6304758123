"""Managed device resources (Linux's drivers/base/devres.c, and devm_*
of kernel/irq/devres.c): what a driver asks for with `devm_` is released,
newest first, when its device is unbound — after `remove`, or when `probe`
fails — and when the device is released.

`devm_kmalloc` (the header's `devm_kzalloc`), `devm_kfree`, `devm_kstrdup`,
`devm_kmemdup`, `devm_add_action` (and the header's
`devm_add_action_or_reset`), `devm_remove_action`, `devm_release_action`,
`devm_request_threaded_irq` (`devm_request_irq`), `devm_free_irq`.  Memory
is accounted to the module that asked for it, so a device that outlives
its driver's module leaves a slab leak the module's unload reports.

Each resource has a kind (Linux's release function) and a key (what its
match function compares: the pointer, the action and its data, the irq and
its dev_id, a region's parent, start and size).  A `devm_` remover takes
its resource off the device's list (`take`), so the device's unbinding
does not release it again; one the device does not manage is Linux's
`WARN_ON` at the remover's line, and then what Linux does after it:
`devm_kfree`, `devm_remove_action` and `devm_release_resource` nothing
more, `devm_iounmap`, `devm_free_irq` and `__devm_release_region` the
unmanaged release all the same (and its own complaint).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ...irq.manage import free, request_threaded
from ...kernel.api import export
from ...kernel.callback import waiting
from ...kernel.panic import warn
from ...kernel.printk import KERN_ERR

if TYPE_CHECKING:
    from ...kernel.kernel import Kernel

_MASK64 = (1 << 64) - 1
_STRING_MAX = 1 << 16


@dataclass(eq=False)
class Devres:
    """One managed resource: its `kind`, the `key` a remover matches, and
    what releasing it calls."""
    kind: str                         # "kmalloc", "action", "irq", or a kernel one: "ioremap", "region", ...
    key: tuple[int, ...]              # (ptr), (action, data), (irq, dev_id), (parent, start, n), ...
    free: Callable[[], Any] | None = None   # a kernel kind's release, in Python (a region, a mapping)


class DevresTable:
    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.lists: dict[int, list[Devres]] = {}

    def add(self, dev: int, res: Devres) -> None:
        self.lists.setdefault(dev, []).append(res)

    def find(self, dev: int, kind: str, key: tuple[int, ...]) -> Devres | None:
        """devres_find: the newest resource of `kind` whose key is `key`."""
        for res in reversed(self.lists.get(dev, [])):
            if res.kind == kind and res.key == key:
                return res
        return None

    def remove(self, dev: int, res: Devres) -> None:
        self.lists[dev].remove(res)

    async def release_all(self, dev: int) -> None:
        """devres_release_all: newest first."""
        resources = self.lists.pop(dev, [])
        for res in reversed(resources):
            await self.release(res, dev)

    async def release(self, res: Devres, dev: int) -> None:
        kernel = self.kernel
        if res.kind == "kmalloc":
            kernel.slab.free(res.key[0], None)
        elif res.free is not None:
            res.free()
        elif res.kind == "irq":
            from ...irq.manage import irqs
            subsystem = irqs(kernel)
            action = subsystem.find(*res.key)
            if action is not None:
                subsystem.detach(action)
                await subsystem.synchronize(res.key[0])
        elif res.kind == "action":
            try:
                await kernel.sanitizer.call_pointer(*res.key, via="devm_action_release",
                                                    comm=getattr(kernel.machine.current, "comm", "kworker/0:1"),
                                                    check=False)
            except Exception:
                pass                     # an oops is logged; the other resources still go

    def release_now(self, dev: int) -> None:
        """A device released where nothing can wait: memory and irqs go;
        an action in module code cannot run here and is reported."""
        for res in reversed(self.lists.pop(dev, [])):
            if res.kind == "kmalloc":
                self.kernel.slab.free(res.key[0], None)
            elif res.free is not None:
                res.free()
            elif res.kind == "irq":
                from ...irq.manage import irqs
                action = irqs(self.kernel).find(*res.key)
                if action is not None:
                    irqs(self.kernel).detach(action)
            else:
                self.kernel.log.emit(KERN_ERR, f"devres: action {self.kernel.machine.symbol_name(res.key[0])} "
                                               "of a released device not run", None)


def devres(kernel: "Kernel") -> DevresTable:
    return kernel.subsystem(DevresTable)


def devres_release_now(kernel: "Kernel", dev: int) -> None:
    devres(kernel).release_now(dev)


def _who(ctx: Any) -> str | None:
    return getattr(ctx.module, "name", None)


def _alloc(ctx: Any, dev: int, size: int, zero: bool) -> int:
    if not dev:
        return 0
    ptr = ctx.kernel.slab.alloc(size, _who(ctx), zero=zero)
    if ptr:
        devres(ctx.kernel).add(dev, Devres("kmalloc", (ptr,)))
    return ptr


@export("devm_kmalloc", "void *devm_kmalloc(struct device *dev, size_t size, gfp_t gfp)", nargs=3, gpl=True)
def devm_kmalloc(ctx: Any, dev: int, size: int, gfp: int) -> int:
    if size == 0:
        return 16                                    # ZERO_SIZE_PTR, as devm_kmalloc(dev, 0)
    return _alloc(ctx, dev, size & _MASK64, bool(gfp & 0x100))    # __GFP_ZERO


@export("devm_kfree", "void devm_kfree(struct device *dev, const void *p)", nargs=2, gpl=True)
def devm_kfree(ctx: Any, dev: int, p: int) -> None:
    if p <= 16:
        return                                       # ZERO_OR_NULL_PTR
    if take(ctx, dev, "kmalloc", (p,), "drivers/base/devres.c:1054", "devm_kfree") is not None:
        ctx.kernel.slab.free(p, _who(ctx))


@export("devm_kstrdup", "char *devm_kstrdup(struct device *dev, const char *s, gfp_t gfp)", nargs=3, gpl=True)
def devm_kstrdup(ctx: Any, dev: int, s: int, gfp: int) -> int:
    if not s:
        return 0
    text = ctx.mem.read_cstr(s, _STRING_MAX)
    ptr = _alloc(ctx, dev, len(text) + 1, False)
    if ptr:
        ctx.mem.write(ptr, text + b"\0")
    return ptr


@export("devm_kmemdup", "void *devm_kmemdup(struct device *dev, const void *src, size_t len, gfp_t gfp)",
        nargs=4, gpl=True)
def devm_kmemdup(ctx: Any, dev: int, src: int, length: int, gfp: int) -> int:
    ptr = _alloc(ctx, dev, length & _MASK64, False)
    if ptr and length:
        ctx.mem.write(ptr, ctx.mem.read(src, length))
    return ptr


@export("devm_add_action", "int devm_add_action(struct device *dev, void (*action)(void *), void *data)",
        nargs=3, gpl=True)
def devm_add_action(ctx: Any, dev: int, action: int, data: int) -> int:
    if not dev:
        return -errno.EINVAL
    devres(ctx.kernel).add(dev, Devres("action", (action, data)))
    return 0


@export("devm_remove_action", "void devm_remove_action(struct device *dev, void (*action)(void *), "
        "void *data)", nargs=3, gpl=True)
def devm_remove_action(ctx: Any, dev: int, action: int, data: int) -> None:
    take(ctx, dev, "action", (action, data), "drivers/base/devres.c:758", "devm_remove_action")


def take(ctx: Any, dev: int, kind: str, key: tuple[int, ...], where: str, function: str) -> Devres | None:
    """devres_remove: the device's managed resource (`kind`, `key`), taken
    off its list without releasing it; the WARN_ON at `where` (in
    `function`) every devm_ remover has when there is none."""
    table = devres(ctx.kernel)
    res = table.find(dev, kind, key)
    if res is None:
        warn(ctx, None, where, function)
        return None
    table.remove(dev, res)
    return res


@export("devm_release_action", "void devm_release_action(struct device *dev, void (*action)(void *), "
        "void *data)", nargs=3, gpl=True)
def devm_release_action(ctx: Any, dev: int, action: int, data: int) -> Any:
    res = take(ctx, dev, "action", (action, data), "drivers/base/devres.c:777", "devm_release_action")
    return waiting(devres(ctx.kernel).release(res, dev)) if res is not None else 0


@export("devm_request_threaded_irq", "int devm_request_threaded_irq(struct device *dev, unsigned int irq, "
        "irq_handler_t handler, irq_handler_t thread_fn, unsigned long irqflags, const char *devname, "
        "void *dev_id)", nargs=7)
def devm_request_threaded_irq(ctx: Any, dev: int, irq: int, handler: int, thread_fn: int, flags: int,
                              devname: int, dev_id: int) -> int:
    result = request_threaded(ctx, irq, handler, thread_fn, flags, devname, dev_id)
    if isinstance(result, int):
        return result
    devres(ctx.kernel).add(dev, Devres("irq", (irq & 0xFFFFFFFF, dev_id)))
    return 0


@export("devm_free_irq", "void devm_free_irq(struct device *dev, unsigned int irq, void *dev_id)", nargs=3)
def devm_free_irq(ctx: Any, dev: int, irq: int, dev_id: int) -> Any:
    """WARN_ON if the device did not request it, and free_irq all the same."""
    irq &= 0xFFFFFFFF
    take(ctx, dev, "irq", (irq, dev_id), "kernel/irq/devres.c:144", "devm_free_irq")
    return free(ctx, irq, dev_id)
