"""Module references for module code: try_module_get, module_put,
__module_get, module_refcount, __symbol_get, __symbol_put.

Module code names a module by the address of its `struct module`
(`THIS_MODULE`, `w->owner`); NULL is the core kernel, which is always there
and never counted — "you don't need to check for owner != NULL".
"""

from __future__ import annotations

from ..printk import KERN_WARNING
from . import export


def _target(ctx, struct_addr: int):
    return ctx.kernel.module_by_struct(struct_addr)


def _owner(ctx):
    """Whose reference this is: the calling module's code, or the kernel's."""
    return ctx.module.code_owner if ctx.module is not None else ctx.kernel.kernel_owner


@export("try_module_get", "bool try_module_get(struct module *module)", nargs=1)
def try_module_get(ctx, module: int) -> int:
    if not module:
        return 1
    target = _target(ctx, module)
    if target is None:
        ctx.kernel.log.emit(KERN_WARNING, f"try_module_get: no module at {module:#x}")
        return 0
    return int(ctx.kernel.module_get(target, _owner(ctx)))


@export("__module_get", "void __module_get(struct module *module)", nargs=1)
def __module_get(ctx, module: int) -> int:
    target = _target(ctx, module) if module else None
    if target is not None:
        ctx.kernel.module_get(target, _owner(ctx), unconditional=True)
    return 0


@export("module_put", "void module_put(struct module *module)", nargs=1)
def module_put(ctx, module: int) -> int:
    target = _target(ctx, module) if module else None
    if target is not None:
        ctx.kernel.module_put_from_code(target, _owner(ctx))
        sanitizer = ctx.kernel.sanitizer
        sanitizer.check_self_put(target, sanitizer.module_at(ctx.caller), ctx.caller)
    return 0


@export("module_refcount", "int module_refcount(struct module *mod)", nargs=1)
def module_refcount(ctx, module: int) -> int:
    target = _target(ctx, module) if module else None
    return target.refcount if target is not None else 0


@export("__symbol_get", "void *__symbol_get(const char *symbol)", nargs=1, gpl=True)
def __symbol_get(ctx, symbol: int) -> int:
    name = ctx.mem.read_cstr(symbol, 256).decode(errors="replace")
    return ctx.kernel.symbol_get(name, ctx.module)


@export("__symbol_put", "void __symbol_put(const char *symbol)", nargs=1)
def __symbol_put(ctx, symbol: int) -> int:
    name = ctx.mem.read_cstr(symbol, 256).decode(errors="replace")
    ctx.kernel.symbol_put(name, ctx.module)
    return 0
