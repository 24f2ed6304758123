"""Module parameters bound to the module's memory: `__param` entries read
from the relocated image, set from the `init_module` argument string, and
read and written at runtime as `/sys/module/<name>/parameters/<param>`.

The value syntax and the per-type rules are `kernel/params.c`'s
(`kloaderd/kernel/params.py`); this file only knows where each value lives
in the guest and which `param_ops_*` object says how to treat it.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from ..errors import KernelError
from .memory import GuestFault
from .params import (MAX_CHARP_LEN, PARAM_TYPES, ParamError, check_string, format_array, param_equal,
                     param_error_message, parse_args, parse_array)
from .module import Module, ModuleParam, param_owner
from .printk import KERN_ERR, KERN_NOTICE

if TYPE_CHECKING:
    from .internal import KernelServices

KERNEL_PARAM = struct.Struct("<QQQHbB4xQ")     # struct kernel_param, 40 bytes
KPARAM_STRING = struct.Struct("<I4xQ")         # struct kparam_string
KPARAM_ARRAY = struct.Struct("<IIQQQ")         # struct kparam_array


CUSTOM = "custom"       # a module's own kernel_param_ops


def read_module_params(kernel: "KernelServices", mod: Module) -> list[ModuleParam]:
    """Decode `__param` from the relocated module; a bent table is ENOEXEC."""
    try:
        return _read_module_params(kernel, mod)
    except GuestFault as fault:
        raise KernelError(errno.ENOEXEC, f"{mod.name}: __param points outside the module "
                                         f"({fault.address:#x})") from None


def _read_module_params(kernel: "KernelServices", mod: Module) -> list[ModuleParam]:
    assert mod.linked is not None
    mem = kernel.mem
    params = []
    for addr in mod.linked.param_addrs:
        name_p, _mod_p, ops, perm, _level, _flags, arg = KERNEL_PARAM.unpack(mem.read(addr, 40))
        name = mem.read_cstr(name_p, 256).decode(errors="replace")
        # Ops that are not one of the kernel's param_ops_* are the module's
        # own (a custom .set/.get): the parameter exists, but kloader does
        # not call module code to set or show it (see CUSTOM).
        kind = kernel.param_ops.get(ops, CUSTOM)
        param = ModuleParam(name, perm, kind, arg)
        if kind == "string":
            param.max, param.elem = KPARAM_STRING.unpack(mem.read(arg, KPARAM_STRING.size))
        elif kind == "array":
            param.max, param.elemsize, param.num, elem_ops, param.elem = \
                KPARAM_ARRAY.unpack(mem.read(arg, KPARAM_ARRAY.size))
            param.elem_kind = kernel.param_ops.get(elem_ops, "")
            if param.elem_kind not in PARAM_TYPES:
                raise KernelError(errno.ENOEXEC, f"{mod.name}: array parameter {name} has "
                                                 "unknown element ops")
        params.append(param)
    return params


def parse_module_params(kernel: "KernelServices", mod: Module, args: str) -> None:
    """parse_args(mod->name, mod->args, ...) with unknown_module_param_cb."""
    for name, value in parse_args(args):
        param = find_param(mod, name)
        if param is None:
            kernel.log.emit(KERN_NOTICE, f"{mod.name}: unknown parameter '{name}' ignored")
            continue
        try:
            set_param(kernel, mod, param, value)
        except KernelError as e:
            kernel.log.emit(KERN_ERR, e.message)
            raise


def find_param(mod: Module, name: str) -> ModuleParam | None:
    return next((p for p in mod.params if param_equal(p.name, name)), None)


def set_param(kernel: "KernelServices", mod: Module, param: ModuleParam, value: str | None) -> None:
    """The param_ops_*->set of `param`'s type, writing into the module's memory.

    Failures carry parse_args()'s message; a type's own complaint (an array
    too long, a string too large) is logged first, as Linux's set ops do.
    """
    try:
        _set(kernel, mod, param, value)
    except ParamError as e:
        if e.message:
            kernel.log.emit(KERN_ERR, e.message)
        raise KernelError(e.errno, param_error_message(mod.name, param.name, value, e.errno)) \
            from None


def _set(kernel: "KernelServices", mod: Module, param: ModuleParam, value: str | None) -> None:
    mem, kind = kernel.mem, param.kind
    if kind == CUSTOM:
        raise _custom(mod.name, param)
    if kind == "string":
        mem.write(param.elem, check_string(_value(value), param.max, param.name))
    elif kind == "array":
        elem = PARAM_TYPES[param.elem_kind]
        values = parse_array(_value(value), elem, param.max, param.name)
        mem.write(param.elem, b"".join(elem.encode(v).ljust(param.elemsize, b"\0")
                                       for v in values))
        if param.num:
            mem.write_u32(param.num, len(values))
    elif kind == "charp":
        text = PARAM_TYPES["charp"].parse(value).encode() + b"\0"
        copy = kernel.slab.alloc(len(text), param_owner(mod))
        if not copy:
            raise ParamError(errno.ENOMEM)
        mem.write(copy, text)
        old = mem.read_u64(param.arg)
        mem.write_u64(param.arg, copy)
        if kernel.slab.owns(old, param_owner(mod)):
            kernel.slab.free(old, param_owner(mod))
    else:
        ptype = PARAM_TYPES[kind]
        mem.write(param.arg, ptype.encode(ptype.parse(value)))


def _value(value: str | None) -> str:
    if value is None:
        raise ParamError(errno.EINVAL)
    return value


def get_param(kernel: "KernelServices", param: ModuleParam) -> str:
    """The value as `cat /sys/module/M/parameters/P` shows it (no newline)."""
    mem = kernel.mem
    kind = param.kind
    if kind == CUSTOM:
        raise _custom(param_module(kernel, param), param)
    if kind == "string":
        return mem.read_cstr(param.elem, param.max).decode(errors="replace")
    if kind == "charp":
        ptr = mem.read_u64(param.arg)
        return "(null)" if not ptr else mem.read_cstr(ptr, MAX_CHARP_LEN + 1).decode(errors="replace")
    if kind == "array":
        count = mem.read_u32(param.num) if param.num else param.max
        ptype = PARAM_TYPES[param.elem_kind]
        return format_array([ptype.decode(mem.read(param.elem + i * param.elemsize, ptype.size))
                             for i in range(min(count, param.max))], ptype)
    ptype = PARAM_TYPES[kind]
    return ptype.format(ptype.decode(mem.read(param.arg, ptype.size)))


def _custom(module: str, param: ModuleParam) -> KernelError:
    return KernelError(errno.EOPNOTSUPP, f"{module}: parameter {param.name} has its module's own "
                                         "kernel_param_ops, whose set/get kloader does not call")


def param_module(kernel: "KernelServices", param: ModuleParam) -> str:
    return next((m.name for m in kernel.loaded.values() if param in m.params), "?")
