"""crypto/shash.c: synchronous hash transforms for module code.

`struct crypto_shash` is `{descsize; struct crypto_tfm base}` and a
`struct shash_desc` is `{tfm; __ctx[]}`, both Linux 6.1's layouts.  The
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
from typing import Any

from ..kernel.api import export
from ..kernel.callback import call_module_code
from .api import (CRYPTO_TFM_NEED_KEY, TFM_ALG, TFM_CTX, TFM_EXIT, TFM_FLAGS, Frontend, builtins,
                  crypto_alloc_tfm, crypto_destroy_tfm_impl)
from .algapi import HASH_MAX_DESCSIZE, _crypto, _s32
from ..kernel.panic import warn

LAYOUTS = (6, 1)

SHASH_BASE = 96                   # struct shash_alg: base
# struct shash_alg operations
INIT, UPDATE, FINAL, FINUP, DIGEST, EXPORT, IMPORT, SETKEY, INIT_TFM, EXIT_TFM = range(0, 80, 8)
DESCSIZE = 80
CRYPTO_ALG_OPTIONAL_KEY = 0x4000
CRYPTO_ALG_TYPE_SHASH = 0xE
TFM_BASE = 8                      # struct crypto_shash: descsize@0, base@8
DESC_TFM, DESC_CTX = 0, 8


def _alg(ctx: Any, shash_tfm: int) -> int:
    """crypto_shash_alg(): the struct shash_alg of a crypto_shash."""
    return ctx.mem.read_u64(shash_tfm + TFM_BASE + TFM_ALG) - SHASH_BASE


async def _await(result: Any) -> int:
    return _s32(await result if not isinstance(result, int) else result)


def _op(ctx: Any, alg: int, slot: int, name: str, *args: int) -> Any:
    """Run one operation: an int (Python, or absent: None) or a coroutine (module code)."""
    builtin = builtins(ctx).get(alg + SHASH_BASE)
    if builtin is not None:
        op = builtin.get(name)
        return None if op is None else op(ctx.mem, *args)
    fn = ctx.mem.read_u64(alg + slot)
    return call_module_code(ctx, fn, *args) if fn else None


def _desc_args(ctx: Any, desc: int, *args: int) -> tuple[int, ...]:
    """A built-in operation gets the desc's context, module code the desc."""
    alg = _alg(ctx, ctx.mem.read_u64(desc + DESC_TFM))
    return (desc + DESC_CTX, *args) if alg + SHASH_BASE in builtins(ctx) else (desc, *args)


def _needs_key(ctx: Any, desc: int) -> bool:
    tfm = ctx.mem.read_u64(desc + DESC_TFM)
    return bool(ctx.mem.read_u32(tfm + TFM_BASE + TFM_FLAGS) & CRYPTO_TFM_NEED_KEY)


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


def _call(ctx: Any, desc: int, slot: int, name: str, *args: int) -> Any:
    alg = _alg(ctx, ctx.mem.read_u64(desc + DESC_TFM))
    result = _op(ctx, alg, slot, name, *_desc_args(ctx, desc, *args))
    return 0 if result is None else result


def _has(ctx: Any, desc: int, slot: int, name: str) -> bool:
    alg = _alg(ctx, ctx.mem.read_u64(desc + DESC_TFM))
    builtin = builtins(ctx).get(alg + SHASH_BASE)
    return name in builtin if builtin is not None else bool(ctx.mem.read_u64(alg + slot))


def _finup(ctx: Any, desc: int, data: int, length: int, out: int) -> Any:
    if _has(ctx, desc, FINUP, "finup"):
        return _call(ctx, desc, FINUP, "finup", data, length, out)
    return _chain(lambda: _call(ctx, desc, UPDATE, "update", data, length),
                  lambda: _call(ctx, desc, FINAL, "final", out))


def _digest(ctx: Any, desc: int, data: int, length: int, out: int) -> Any:
    if _needs_key(ctx, desc):
        return -errno.ENOKEY
    if _has(ctx, desc, DIGEST, "digest"):
        return _call(ctx, desc, DIGEST, "digest", data, length, out)
    return _chain(lambda: _call(ctx, desc, INIT, "init"),
                  lambda: _finup(ctx, desc, data, length, out))


# --- the frontend: crypto_shash_type ------------------------------------------------

def _init_tfm(ctx: Any, tfm: int, base: int) -> Any:
    """crypto_shash_init_tfm(): descsize, NEED_KEY, exit, the algorithm's init_tfm."""
    mem, alg = ctx.mem, base - SHASH_BASE
    shash = tfm - TFM_BASE
    mem.write_u32(shash, mem.read_u32(alg + DESCSIZE))
    builtin = builtins(ctx).get(base)
    has_setkey = "setkey" in builtin if builtin is not None else bool(mem.read_u64(alg + SETKEY))
    if has_setkey and not mem.read_u32(base + 32) & CRYPTO_ALG_OPTIONAL_KEY:
        mem.write_u32(tfm + TFM_FLAGS, mem.read_u32(tfm + TFM_FLAGS) | CRYPTO_TFM_NEED_KEY)
    if builtin is not None:
        return 0
    if mem.read_u64(alg + EXIT_TFM):
        mem.write_u64(tfm + TFM_EXIT, _exit_marker(ctx))
    init = mem.read_u64(alg + INIT_TFM)
    if not init:
        return 0

    async def initialising() -> int:
        err = await _await(call_module_code(ctx, init, shash))
        if err:
            return err
        if mem.read_u32(shash) > HASH_MAX_DESCSIZE:          # init_tfm may grow descsize
            warn(ctx, "", "crypto/shash.c:453", "crypto_shash_init_tfm")
            exit_ = mem.read_u64(alg + EXIT_TFM)
            if exit_:
                await _await(call_module_code(ctx, exit_, shash))
            return -errno.EINVAL
        return 0
    return initialising()


def _exit_tfm(ctx: Any, tfm: int, base: int) -> Any:
    """crypto_shash_exit_tfm(): the algorithm's exit_tfm."""
    return call_module_code(ctx, ctx.mem.read_u64(base - SHASH_BASE + EXIT_TFM), tfm - TFM_BASE)


def _exit_marker(ctx: Any) -> int:
    """tfm->exit: an address standing for crypto_shash_exit_tfm."""
    crypto = _crypto(ctx)
    marker = crypto.type_object("shash")
    crypto.exits[marker] = _exit_tfm
    return marker


SHASH = Frontend(tfmsize=TFM_BASE, type=CRYPTO_ALG_TYPE_SHASH, maskclear=~0xF & 0xFFFFFFFF,
                 maskset=0xF, init_tfm=_init_tfm)


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
    mem, alg = ctx.mem, _alg(ctx, tfm)
    builtin = builtins(ctx).get(alg + SHASH_BASE)
    args = (tfm + TFM_BASE + TFM_CTX, key, keylen & 0xFFFFFFFF) if builtin is not None \
        else (tfm, key, keylen)
    result = _op(ctx, alg, SETKEY, "setkey", *args)
    if result is None:
        return -errno.ENOSYS                                  # shash_no_setkey

    def settled(err: int) -> int:
        flags = mem.read_u32(tfm + TFM_BASE + TFM_FLAGS)
        if err:
            if not mem.read_u32(alg + SHASH_BASE + 32) & CRYPTO_ALG_OPTIONAL_KEY:
                flags |= CRYPTO_TFM_NEED_KEY
        else:
            flags &= ~CRYPTO_TFM_NEED_KEY
        mem.write_u32(tfm + TFM_BASE + TFM_FLAGS, flags)
        return err
    if isinstance(result, int):
        return settled(_s32(result))

    async def setting() -> int:
        return settled(await _await(result))
    return setting()


@export("crypto_shash_update", "int crypto_shash_update(struct shash_desc *desc, const u8 *data, "
        "unsigned int len)", nargs=3, gpl=True)
def crypto_shash_update(ctx: Any, desc: int, data: int, length: int) -> Any:
    return _call(ctx, desc, UPDATE, "update", data, length & 0xFFFFFFFF)


@export("crypto_shash_final", "int crypto_shash_final(struct shash_desc *desc, u8 *out)",
        nargs=2, gpl=True)
def crypto_shash_final(ctx: Any, desc: int, out: int) -> Any:
    return _call(ctx, desc, FINAL, "final", out)


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
    mem, slab = ctx.mem, ctx.kernel.slab
    size = DESC_CTX + mem.read_u32(tfm)
    desc = slab.alloc(size, None, zero=True)
    if not desc:
        return -errno.ENOMEM
    mem.write_u64(desc + DESC_TFM, tfm)

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
