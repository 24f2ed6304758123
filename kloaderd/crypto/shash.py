"""crypto/shash.c: synchronous hash transforms for module code.

`struct crypto_shash` is `{descsize; struct crypto_tfm base}` and a
`struct shash_desc` is `{tfm; __ctx[]}`, read (with `struct shash_alg`) at
the running kernel's offsets.  The
exported operations call the algorithm's own: module code through its
`struct shash_alg` pointers, a built-in algorithm (crypto/api.py) in Python.
As Linux's shash_prepare_alg() defaults them, a missing finup is update
then final, a missing digest is init then finup, a missing setkey is
-ENOSYS; a keyed algorithm not yet given its key is -ENOKEY.

Where kloader differs: data the algorithm's `cra_alignmask` says is
misaligned is handed over as it is (Linux first copies it into an aligned
buffer), and a built-in algorithm's `struct shash_alg` has no operation
pointers, so module code calling one directly (the inline
`crypto_shash_init()`) faults at NULL instead of running it.
"""

from __future__ import annotations

import errno
from types import SimpleNamespace
from typing import Any

from ..kernel.api import export
from ..kernel.callback import call_module_code
from ..kernel.panic import warn
from .algapi import (ALG, CRYPTO_SHASH, HASH_MAX_DESCSIZE, SHASH_ALG, SHASH_DESC, TFM, _crypto,
                     _s32)
from .algapi import STRUCTS  # noqa: F401  what these functions read (crc32c-generic's too)
from .api import CRYPTO_TFM_NEED_KEY, Frontend, builtins, crypto_alloc_tfm, crypto_destroy_tfm_impl

CRYPTO_ALG_OPTIONAL_KEY = 0x4000
CRYPTO_ALG_TYPE_SHASH = 0xE


def _o(ctx: Any) -> SimpleNamespace:
    """The offsets this file adds up, in the running kernel: `alg` struct
    shash_alg's members, `base` its base, `tfm` struct crypto_shash's base,
    `flags` a tfm's crt_flags, `desc_tfm`/`desc_ctx` a shash_desc's."""
    layouts = ctx.kernel.layouts
    alg, tfm, desc = layouts[SHASH_ALG], layouts[TFM], layouts[SHASH_DESC]
    return SimpleNamespace(alg=alg, base=alg.base, cra_flags=layouts[ALG].cra_flags,
                           tfm=layouts[CRYPTO_SHASH].base, flags=tfm.crt_flags,
                           crt_alg=tfm.__crt_alg, crt_ctx=tfm.__crt_ctx, exit=tfm.exit,
                           desc_tfm=desc.tfm, desc_ctx=desc.__ctx)


def _alg(ctx: Any, shash_tfm: int) -> int:
    """crypto_shash_alg(): the struct shash_alg of a crypto_shash."""
    o = _o(ctx)
    return ctx.mem.read_u64(shash_tfm + o.tfm + o.crt_alg) - o.base


async def _await(result: Any) -> int:
    return _s32(await result if not isinstance(result, int) else result)


def _op(ctx: Any, alg: int, name: str, *args: int) -> Any:
    """Run operation `name` (a member of struct shash_alg): an int (Python,
    or absent: None) or a coroutine (module code)."""
    o = _o(ctx)
    builtin = builtins(ctx).get(alg + o.base)
    if builtin is not None:
        op = builtin.get(name)
        return None if op is None else op(ctx.mem, *args)
    fn = ctx.mem.read_u64(alg + getattr(o.alg, name))
    return call_module_code(ctx, fn, *args) if fn else None


def _desc_args(ctx: Any, desc: int, *args: int) -> tuple[int, ...]:
    """A built-in operation gets the desc's context, module code the desc."""
    o = _o(ctx)
    alg = _alg(ctx, ctx.mem.read_u64(desc + o.desc_tfm))
    return (desc + o.desc_ctx, *args) if alg + o.base in builtins(ctx) else (desc, *args)


def _needs_key(ctx: Any, desc: int) -> bool:
    o = _o(ctx)
    tfm = ctx.mem.read_u64(desc + o.desc_tfm)
    return bool(ctx.mem.read_u32(tfm + o.tfm + o.flags) & CRYPTO_TFM_NEED_KEY)


def _chain(*steps: Any) -> Any:
    """Run operations in order, stopping at the first error: synchronously
    when every one is Python, else as one coroutine."""
    for i, step in enumerate(steps):
        result = step()
        if not isinstance(result, int):
            rest = steps[i + 1:]

            async def finish(first: Any = result) -> int:
                err = await _await(first)
                for later in rest:
                    if err:
                        return err
                    err = await _await(later())
                return err
            return finish()
        if _s32(result):
            return result
    return 0


def _call(ctx: Any, desc: int, name: str, *args: int) -> Any:
    alg = _alg(ctx, ctx.mem.read_u64(desc + _o(ctx).desc_tfm))
    result = _op(ctx, alg, name, *_desc_args(ctx, desc, *args))
    return 0 if result is None else result


def _has(ctx: Any, desc: int, name: str) -> bool:
    o = _o(ctx)
    alg = _alg(ctx, ctx.mem.read_u64(desc + o.desc_tfm))
    builtin = builtins(ctx).get(alg + o.base)
    return name in builtin if builtin is not None else bool(ctx.mem.read_u64(alg + getattr(o.alg, name)))


def _finup(ctx: Any, desc: int, data: int, length: int, out: int) -> Any:
    if _has(ctx, desc, "finup"):
        return _call(ctx, desc, "finup", data, length, out)
    return _chain(lambda: _call(ctx, desc, "update", data, length),
                  lambda: _call(ctx, desc, "final", out))


def _digest(ctx: Any, desc: int, data: int, length: int, out: int) -> Any:
    if _needs_key(ctx, desc):
        return -errno.ENOKEY
    if _has(ctx, desc, "digest"):
        return _call(ctx, desc, "digest", data, length, out)
    return _chain(lambda: _call(ctx, desc, "init"),
                  lambda: _finup(ctx, desc, data, length, out))


# --- the frontend: crypto_shash_type ------------------------------------------------

def _init_tfm(ctx: Any, tfm: int, base: int) -> Any:
    """crypto_shash_init_tfm(): descsize, NEED_KEY, exit, the algorithm's init_tfm."""
    mem, o = ctx.mem, _o(ctx)
    alg, shash = base - o.base, tfm - o.tfm
    descsize = shash + ctx.kernel.layouts[CRYPTO_SHASH].descsize
    mem.write_u32(descsize, mem.read_u32(alg + o.alg.descsize))
    builtin = builtins(ctx).get(base)
    has_setkey = "setkey" in builtin if builtin is not None else bool(mem.read_u64(alg + o.alg.setkey))
    if has_setkey and not mem.read_u32(base + o.cra_flags) & CRYPTO_ALG_OPTIONAL_KEY:
        mem.write_u32(tfm + o.flags, mem.read_u32(tfm + o.flags) | CRYPTO_TFM_NEED_KEY)
    if builtin is not None:
        return 0
    if mem.read_u64(alg + o.alg.exit_tfm):
        mem.write_u64(tfm + o.exit, _exit_marker(ctx))
    init = mem.read_u64(alg + o.alg.init_tfm)
    if not init:
        return 0

    async def initialising() -> int:
        err = await _await(call_module_code(ctx, init, shash))
        if err:
            return err
        if mem.read_u32(descsize) > HASH_MAX_DESCSIZE:      # init_tfm may grow descsize
            warn(ctx, "", "crypto/shash.c:453", "crypto_shash_init_tfm")
            exit_ = mem.read_u64(alg + o.alg.exit_tfm)
            if exit_:
                await _await(call_module_code(ctx, exit_, shash))
            return -errno.EINVAL
        return 0
    return initialising()


def _exit_tfm(ctx: Any, tfm: int, base: int) -> Any:
    """crypto_shash_exit_tfm(): the algorithm's exit_tfm."""
    o = _o(ctx)
    return call_module_code(ctx, ctx.mem.read_u64(base - o.base + o.alg.exit_tfm), tfm - o.tfm)


def _exit_marker(ctx: Any) -> int:
    """tfm->exit: an address standing for crypto_shash_exit_tfm."""
    crypto = _crypto(ctx)
    marker = crypto.type_object("shash")
    crypto.exits[marker] = _exit_tfm
    return marker


SHASH = Frontend(tfmsize=lambda kernel: kernel.layouts[CRYPTO_SHASH].base, type=CRYPTO_ALG_TYPE_SHASH,
                 maskclear=~0xF & 0xFFFFFFFF, maskset=0xF, init_tfm=_init_tfm)


# --- exports ----------------------------------------------------------------------

@export("crypto_alloc_shash", "struct crypto_shash *crypto_alloc_shash(const char *alg_name, "
        "u32 type, u32 mask)", nargs=3, gpl=True)
def crypto_alloc_shash(ctx: Any, name: int, type_: int, mask: int) -> Any:
    return crypto_alloc_tfm(ctx, name, SHASH, type_ & 0xFFFFFFFF, mask & 0xFFFFFFFF)


@export("crypto_destroy_tfm", "void crypto_destroy_tfm(void *mem, struct crypto_tfm *tfm)",
        nargs=2, gpl=True)
def crypto_destroy_tfm(ctx: Any, mem: int, tfm: int) -> Any:
    return crypto_destroy_tfm_impl(ctx, mem, tfm)


@export("crypto_shash_setkey", "int crypto_shash_setkey(struct crypto_shash *tfm, const u8 *key, "
        "unsigned int keylen)", nargs=3, gpl=True)
def crypto_shash_setkey(ctx: Any, tfm: int, key: int, keylen: int) -> Any:
    mem, alg, o = ctx.mem, _alg(ctx, tfm), _o(ctx)
    builtin = builtins(ctx).get(alg + o.base)
    args = (tfm + o.tfm + o.crt_ctx, key, keylen & 0xFFFFFFFF) if builtin is not None \
        else (tfm, key, keylen)
    result = _op(ctx, alg, "setkey", *args)
    if result is None:
        return -errno.ENOSYS                                  # shash_no_setkey

    def settled(err: int) -> int:
        flags = mem.read_u32(tfm + o.tfm + o.flags)
        if err:
            if not mem.read_u32(alg + o.base + o.cra_flags) & CRYPTO_ALG_OPTIONAL_KEY:
                flags |= CRYPTO_TFM_NEED_KEY
        else:
            flags &= ~CRYPTO_TFM_NEED_KEY
        mem.write_u32(tfm + o.tfm + o.flags, flags)
        return err
    if isinstance(result, int):
        return settled(_s32(result))

    async def setting() -> int:
        return settled(await _await(result))
    return setting()


@export("crypto_shash_update", "int crypto_shash_update(struct shash_desc *desc, const u8 *data, "
        "unsigned int len)", nargs=3, gpl=True)
def crypto_shash_update(ctx: Any, desc: int, data: int, length: int) -> Any:
    return _call(ctx, desc, "update", data, length & 0xFFFFFFFF)


@export("crypto_shash_final", "int crypto_shash_final(struct shash_desc *desc, u8 *out)",
        nargs=2, gpl=True)
def crypto_shash_final(ctx: Any, desc: int, out: int) -> Any:
    return _call(ctx, desc, "final", out)


@export("crypto_shash_finup", "int crypto_shash_finup(struct shash_desc *desc, const u8 *data, "
        "unsigned int len, u8 *out)", nargs=4, gpl=True)
def crypto_shash_finup(ctx: Any, desc: int, data: int, length: int, out: int) -> Any:
    return _finup(ctx, desc, data, length & 0xFFFFFFFF, out)


@export("crypto_shash_digest", "int crypto_shash_digest(struct shash_desc *desc, const u8 *data, "
        "unsigned int len, u8 *out)", nargs=4, gpl=True)
def crypto_shash_digest(ctx: Any, desc: int, data: int, length: int, out: int) -> Any:
    return _digest(ctx, desc, data, length & 0xFFFFFFFF, out)


@export("crypto_shash_tfm_digest", "int crypto_shash_tfm_digest(struct crypto_shash *tfm, "
        "const u8 *data, unsigned int len, u8 *out)", nargs=4, gpl=True)
def crypto_shash_tfm_digest(ctx: Any, tfm: int, data: int, length: int, out: int) -> Any:
    """A descriptor on the kernel's side (Linux's SHASH_DESC_ON_STACK), zeroed after."""
    mem, slab, o = ctx.mem, ctx.kernel.slab, _o(ctx)
    size = o.desc_ctx + mem.read_u32(tfm + ctx.kernel.layouts[CRYPTO_SHASH].descsize)
    desc = slab.alloc(size, None, zero=True)
    if not desc:
        return -errno.ENOMEM
    mem.write_u64(desc + o.desc_tfm, tfm)

    def done(err: int) -> int:
        mem.write(desc, bytes(size))
        slab.free(desc, None)
        return err
    result = _digest(ctx, desc, data, length & 0xFFFFFFFF, out)
    if isinstance(result, int):
        return done(_s32(result))

    async def digesting() -> int:
        return done(await _await(result))
    return digesting()
