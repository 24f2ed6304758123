"""crypto/api.c: finding an algorithm by name and making a transform of it.

`crypto_alloc_shash("crc32c", 0, 0)` (libcrc32c's init) walks
`crypto_alg_list` as Linux's __crypto_alg_lookup() does: algorithms dying
or of another type are skipped; a driver-name match wins at once, a name
match wins by the highest `cra_priority`.  The winner is pinned with
crypto_mod_get() (its module's reference and `cra_refcnt`).  Where nothing
matches, Linux asks for `crypto-NAME` and `crypto-NAME-all` with
request_module() and looks again; a name still unknown is -ENOENT.

The transform is Linux's memory: `kzalloc(frontend tfmsize + sizeof(struct
crypto_tfm) + cra_ctxsize)`, its refcount 1 and `__crt_alg` set, the frontend's init_tfm and
the algorithm's `cra_init` run; crypto_destroy_tfm() runs `cra_exit` or the
frontend's exit, drops the reference and frees it.

Algorithms the core kernel builds in (`CONFIG_CRYPTO_CRC32C=y`:
crc32c-generic) are on the list too, as Linux registers them at boot: a
real `struct shash_alg` in kernel memory whose operations kloader runs in
Python (`Ops`).  Module algorithms' operations are module code, called
through their function pointers (kernel/callback.py: on a task of their
own).  Where kloader differs: no larvals, so two lookups racing for a name
being registered are not merged, and the crypto manager never builds an
instance from a template (`hmac(sha256)`): such a name is -ENOENT.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any, Callable

from ..kernel.api.module import module_put, try_module_get
from ..kernel.api.slab import kfree_sensitive
from ..kernel.callback import call_module_code
from .algapi import CRYPTO_ALG_DEAD, CRYPTO_ALG_LARVAL, TFM, _crypto, _name, _s32, alg_layout
from .algapi import STRUCTS  # noqa: F401  what these functions read (crc32c-generic's too)

CRYPTO_ALG_DYING = 0x40
CRYPTO_ALG_INTERNAL = 0x2000
CRYPTO_NOLOAD = 0x8000
CRYPTO_ALG_NEED_FALLBACK = 0x100
CRYPTO_TFM_NEED_KEY = 0x1
MAX_LOOKUP_NAME = 128            # CRYPTO_MAX_ALG_NAME: longer names are never registered


# A built-in algorithm's operations, by name ("init", "update", "cra_init",
# ...): each takes (mem, the desc's or the tfm's context address, ...).
Ops = dict[str, Callable[..., int]]


def builtins(ctx: Any) -> dict[int, Ops]:
    """The core kernel's algorithms, by the address of their `struct crypto_alg`."""
    return _crypto(ctx).builtins


def _moribund(flags: int) -> bool:
    return bool(flags & (CRYPTO_ALG_DEAD | CRYPTO_ALG_DYING))


def crypto_mod_get(ctx: Any, alg: int) -> bool:
    """try_module_get(alg->cra_module), then the algorithm's own count."""
    mem, off = ctx.mem, alg_layout(ctx)
    if not try_module_get(ctx, mem.read_u64(alg + off.cra_module)):
        return False
    mem.write_u32(alg + off.cra_refcnt, mem.read_u32(alg + off.cra_refcnt) + 1)
    return True


def crypto_mod_put(ctx: Any, alg: int) -> Any:
    """Drop both; the last reference of an unregistered algorithm runs cra_destroy."""
    mem, off = ctx.mem, alg_layout(ctx)
    module = mem.read_u64(alg + off.cra_module)
    count = mem.read_u32(alg + off.cra_refcnt) - 1
    mem.write_u32(alg + off.cra_refcnt, count)
    destroy = mem.read_u64(alg + off.cra_destroy) if count == 0 else 0
    result = call_module_code(ctx, destroy, alg) if destroy else 0
    module_put(ctx, module)
    return result


def _lookup(ctx: Any, name: str, type_: int, mask: int) -> int:
    """__crypto_alg_lookup(): the best live match, referenced; 0 if none."""
    mem, off = ctx.mem, alg_layout(ctx)
    best, found = -1, 0
    for node in _crypto(ctx).algs:
        q = node - off.cra_list
        flags = mem.read_u32(q + off.cra_flags)
        if _moribund(flags) or (flags ^ type_) & mask or flags & CRYPTO_ALG_LARVAL:
            continue
        exact = _name(ctx, q + off.cra_driver_name) == name
        priority = _s32(mem.read_u32(q + off.cra_priority))
        if not exact and not (_name(ctx, q + off.cra_name) == name and priority > best):
            continue
        if not crypto_mod_get(ctx, q):
            continue
        if found:
            crypto_mod_put(ctx, found)
        best, found = priority, q
        if exact:
            break
    return found


async def crypto_alg_mod_lookup(ctx: Any, name: str, type_: int, mask: int) -> int:
    """The algorithm, referenced, or a negative errno (crypto_larval_lookup without larvals)."""
    if not (type_ | mask) & CRYPTO_ALG_INTERNAL:
        mask |= CRYPTO_ALG_INTERNAL
    alg = _lookup(ctx, name, type_, mask)
    if not alg and not mask & CRYPTO_NOLOAD:
        kmod = ctx.kernel.kmod
        await kmod.request_module(f"crypto-{name}")
        if not (type_ ^ CRYPTO_ALG_NEED_FALLBACK) & mask & CRYPTO_ALG_NEED_FALLBACK:
            await kmod.request_module(f"crypto-{name}-all")
        alg = _lookup(ctx, name, type_, mask)
    return alg or -errno.ENOENT


@dataclass(frozen=True)
class Frontend:
    """struct crypto_type: how a kind of transform is laid out and set up."""
    tfmsize: Callable[[Any], int]                  # (kernel) -> offset of `base` in crypto_<kind>
    type: int
    maskclear: int
    maskset: int
    init_tfm: Callable[[Any, int, int], Any]      # (ctx, tfm, alg base) -> 0/-errno or coroutine
    exit_tfm: Callable[[Any, int, int], Any] | None = None


async def _run(result: Any) -> int:
    return await result if not isinstance(result, int) else result


async def crypto_alloc_tfm(ctx: Any, name_ptr: int, frontend: Frontend, type_: int,
                           mask: int) -> int:
    """crypto_alloc_tfm_node(): the frontend's object (crypto_shash, ...) or ERR_PTR."""
    name = ctx.mem.read_cstr(name_ptr, MAX_LOOKUP_NAME).decode("utf-8", "replace")
    type_ = type_ & frontend.maskclear | frontend.type
    mask = mask & frontend.maskclear | frontend.maskset
    alg = await crypto_alg_mod_lookup(ctx, name, type_, mask)
    if alg < 0:
        return alg
    mem, slab, off, tfm_off = ctx.mem, ctx.kernel.slab, alg_layout(ctx), ctx.kernel.layouts[TFM]
    owner = ctx.module.name if ctx.module is not None else None
    ctxsize = mem.read_u32(alg + off.cra_ctxsize) + (mem.read_u32(alg + off.cra_alignmask) & ~7)
    tfmsize = frontend.tfmsize(ctx.kernel)
    obj = slab.alloc(tfmsize + tfm_off.__crt_ctx + ctxsize, owner, zero=True)
    if not obj:
        await _run(crypto_mod_put(ctx, alg))
        return -errno.ENOMEM
    tfm = obj + tfmsize
    mem.write_u32(tfm + tfm_off.refcnt, 1)
    mem.write_u64(tfm + tfm_off.__crt_alg, alg)
    mem.write_u32(tfm + tfm_off.node, 0xFFFFFFFF)             # NUMA_NO_NODE
    err = await _run(frontend.init_tfm(ctx, tfm, alg))
    if not err and not mem.read_u64(tfm + tfm_off.exit):
        err = _s32(await _run(_cra_call(ctx, alg, "cra_init", tfm)))
        if err:
            await _destroy(ctx, obj, tfm)
            return err
    if err:
        slab.free(obj, owner)
        await _run(crypto_mod_put(ctx, alg))
        return err
    return obj


def _cra_call(ctx: Any, alg: int, op_name: str, tfm: int) -> Any:
    """alg->cra_init / cra_exit: Python for a built-in algorithm, else module code."""
    builtin = builtins(ctx).get(alg)
    if builtin is not None:
        op = builtin.get(op_name)
        return op(ctx.mem, tfm + ctx.kernel.layouts[TFM].__crt_ctx) if op else 0
    fn = ctx.mem.read_u64(alg + getattr(alg_layout(ctx), op_name))
    return call_module_code(ctx, fn, tfm) if fn else 0


async def _destroy(ctx: Any, mem_: int, tfm: int) -> int:
    """crypto_destroy_tfm(): exit, drop the algorithm, free (zeroed, as kfree_sensitive)."""
    mem, off = ctx.mem, ctx.kernel.layouts[TFM]
    count = mem.read_u32(tfm + off.refcnt) - 1
    mem.write_u32(tfm + off.refcnt, count)
    if count:
        return 0                                  # crypto_clone_tfm's copies share it
    alg = mem.read_u64(tfm + off.__crt_alg)
    exit_ = mem.read_u64(tfm + off.exit)
    if not exit_:
        await _run(_cra_call(ctx, alg, "cra_exit", tfm))
    else:
        await _run(_crypto(ctx).exits[exit_](ctx, tfm, alg))
    await _run(crypto_mod_put(ctx, alg))
    kfree_sensitive(ctx, mem_)
    return 0


def crypto_destroy_tfm_impl(ctx: Any, mem_: int, tfm: int) -> Any:
    if not mem_ or mem_ >= (1 << 64) - 4095:                  # IS_ERR_OR_NULL
        return 0
    return _destroy(ctx, mem_, tfm)
