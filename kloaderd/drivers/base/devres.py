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

Linux's complaints: `devm_kfree` of memory the device does not manage is
`WARN_ON(rc)` (drivers/base/devres.c), `devm_free_irq` of an irq it did not
request likewise, `devm_remove_action` of an action it has none of too.
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
    """One managed resource: `kind`, and what releasing it calls."""
    kind: str                         # "kmalloc", "action", "irq", "kernel"
    address: int = 0                  # the memory (kmalloc), the action's function
    data: int = 0                     # its argument (action), dev_id (irq)
    irq: int = 0
    free: Callable[[], Any] | None = None   # "kernel": what releases it, in Python (a region, a mapping)


class DevresTable:
    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.lists: dict[int, list[Devres]] = {}

    def add(self, dev: int, res: Devres) -> None:
        self.lists.setdefault(dev, []).append(res)

    def find(self, dev: int, kind: str, address: int, data: int | None = None) -> Devres | None:
        for res in reversed(self.lists.get(dev, [])):
            if res.kind == kind and res.address == address and (data is None or res.data == data):
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
            kernel.slab.free(res.address, None)
        elif res.kind == "kernel":
            res.free()
        elif res.kind == "irq":
            from ...irq.manage import irqs
            subsystem = irqs(kernel)
            action = subsystem.find(res.irq, res.data)
            if action is not None:
                subsystem.detach(action)
                await subsystem.synchronize(res.irq)
        elif res.kind == "action":
            try:
                await kernel.sanitizer.call_pointer(res.address, res.data, via="devm_action_release",
                                                    comm=getattr(kernel.machine.current, "comm", "kworker/0:1"),
                                                    check=False)
            except Exception:
                pass                     # an oops is logged; the other resources still go

    def release_now(self, dev: int) -> None:
        """A device released where nothing can wait: memory and irqs go;
        an action in module code cannot run here and is reported."""
        for res in reversed(self.lists.pop(dev, [])):
            if res.kind == "kmalloc":
                self.kernel.slab.free(res.address, None)
            elif res.kind == "kernel":
                res.free()
            elif res.kind == "irq":
                from ...irq.manage import irqs
                action = irqs(self.kernel).find(res.irq, res.data)
                if action is not None:
                    irqs(self.kernel).detach(action)
            else:
                self.kernel.log.emit(KERN_ERR, f"devres: action {self.kernel.machine.symbol_name(res.address)} "
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
        devres(ctx.kernel).add(dev, Devres("kmalloc", ptr))
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
    if take(ctx, dev, "kmalloc", p, None, "drivers/base/devres.c:1054", "devm_kfree") is not None:
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
    devres(ctx.kernel).add(dev, Devres("action", action, data))
    return 0


@export("devm_remove_action", "void devm_remove_action(struct device *dev, void (*action)(void *), "
        "void *data)", nargs=3, gpl=True)
def devm_remove_action(ctx: Any, dev: int, action: int, data: int) -> None:
    _take_action(ctx, dev, action, data, "drivers/base/devres.c:758", "devm_remove_action")


def take(ctx: Any, dev: int, kind: str, address: int, data: int | None, where: str,
         function: str) -> Devres | None:
    """The device's managed resource, taken off its list without releasing
    it; the WARN_ON at `where` (in `function`) every devm_ remover has when
    there is none."""
    table = devres(ctx.kernel)
    res = table.find(dev, kind, address, data)
    if res is None:
        warn(ctx, None, where, function)
        return None
    table.remove(dev, res)
    return res


def _take_action(ctx: Any, dev: int, action: int, data: int, where: str, function: str) -> Devres | None:
    """The device's managed action (action, data), taken off its list; WARN_ON if none."""
    return take(ctx, dev, "action", action, data, where, function)


@export("devm_release_action", "void devm_release_action(struct device *dev, void (*action)(void *), "
        "void *data)", nargs=3, gpl=True)
def devm_release_action(ctx: Any, dev: int, action: int, data: int) -> Any:
    res = _take_action(ctx, dev, action, data, "drivers/base/devres.c:777", "devm_release_action")
    return waiting(devres(ctx.kernel).release(res, dev)) if res is not None else 0


@export("devm_request_threaded_irq", "int devm_request_threaded_irq(struct device *dev, unsigned int irq, "
        "irq_handler_t handler, irq_handler_t thread_fn, unsigned long irqflags, const char *devname, "
        "void *dev_id)", nargs=7)
def devm_request_threaded_irq(ctx: Any, dev: int, irq: int, handler: int, thread_fn: int, flags: int,
                              devname: int, dev_id: int) -> int:
    result = request_threaded(ctx, irq, handler, thread_fn, flags, devname, dev_id)
    if isinstance(result, int):
        return result
    devres(ctx.kernel).add(dev, Devres("irq", 0, dev_id, irq & 0xFFFFFFFF))
    return 0


@export("devm_free_irq", "void devm_free_irq(struct device *dev, unsigned int irq, void *dev_id)", nargs=3)
def devm_free_irq(ctx: Any, dev: int, irq: int, dev_id: int) -> Any:
    table = devres(ctx.kernel)
    irq &= 0xFFFFFFFF
    res = next((r for r in reversed(table.lists.get(dev, [])) if r.kind == "irq" and r.irq == irq
                and r.data == dev_id), None)
    if res is None:
        warn(ctx, None, "kernel/irq/devres.c:144", "devm_free_irq")
        return 0
    table.remove(dev, res)
    return free(ctx, irq, dev_id)
