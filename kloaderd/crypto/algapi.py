"""crypto/algapi.c and the per-type front ends (shash, ahash, skcipher,
aead, akcipher, kpp, rng, scomp): registering algorithms and templates.

What Linux does on registration, kloader does: the type's prepare step
validates the sizes Linux validates (-EINVAL) and sets the type in
`cra_flags`; crypto_check_alg() refuses an empty name or driver name, a bad
alignmask, an oversized block and a negative priority (-EINVAL) and sets
`cra_refcnt` to 1; a name or driver-name clash with a registered algorithm
is -EEXIST; the algorithm is linked on `crypto_alg_list` (in guest memory,
through `cra_list`) and its `cra_users` initialised.  Unregistering one that
is not registered is Linux's WARN "Algorithm %s is not registered"; the
algorithm is marked CRYPTO_ALG_DEAD and unlinked (list_del_init), and its
`cra_destroy`, if any, runs.  Templates are linked on
`crypto_template_list`; registering the same template twice is -EEXIST.
Each algorithm and template is in the "crypto" registry: shown in
module_info, and reported and unlinked if its module goes without
unregistering it.

Where kloader differs from Linux:
* the crypto manager's self-tests are not run: a registered algorithm is
  flagged CRYPTO_ALG_TESTED at once, as if its test had passed (and no
  "alg: self-tests ... passed" line);
* of the core kernel's built-in algorithms only crc32c-generic is on the
  list (crc32c_generic.py), so a clash with another one is not seen;
* the default operations Linux fills in (shash's finup/digest/export/
  import/setkey, ...) are left as the module set them; `cra_type` points at
  a kloader object standing for the type.
Structures are read at the running kernel's offsets
(kloaderd/kernel/layouts.py), and the constants that changed between
releases (CRYPTO_ALG_TYPE_AKCIPHER, MAX_ALGAPI_ALIGNMASK, HASH_MAX_STATESIZE)
are the kernel's own, measured the same way (`constant`).
"""

from __future__ import annotations

import errno
from typing import Any, Callable

from ..config import PAGE_SIZE
from ..kernel.api import export
from ..kernel.callback import call_module_code
from ..kernel.layouts import Struct, struct
from ..kernel.panic import warn
from ..lib.list import GuestList, init_list_head


def constant(name: str, header: str) -> Struct:
    """A macro of the kernel's headers, measured with the structures as
    `sizeof(char[NAME])` (so it must be positive): `kernel.layouts[C].size`."""
    return struct(f"char[{name}]", header)


def constant_of(kernel: Any, const: Struct) -> int | None:
    """The kernel's value of `const`; None where its headers do not define it."""
    return kernel.layouts[const].size if kernel.layouts.has(const) else None


ALG = struct("struct crypto_alg", "linux/crypto.h", "cra_list", "cra_users", "cra_flags",
             "cra_blocksize", "cra_ctxsize", "cra_alignmask", "cra_priority", "cra_refcnt",
             "cra_name", "cra_driver_name", "cra_type", "cra_init", "cra_exit", "cra_destroy",
             "cra_module")
TMPL = struct("struct crypto_template", "crypto/algapi.h", "list", "module", "name")
QUEUE = struct("struct crypto_queue", "crypto/algapi.h", "list", "backlog", "qlen", "max_qlen")
# Each type's algorithm: its `base` and what its registration checks.
SHASH_ALG = struct("struct shash_alg", "crypto/hash.h", "init", "update", "final", "finup",
                   "digest", "export", "import", "setkey", "init_tfm", "exit_tfm", "descsize",
                   "digestsize", "statesize", "base")
AHASH_ALG = struct("struct ahash_alg", "crypto/hash.h", "halg.digestsize", "halg.statesize",
                   "halg.base")
SKCIPHER_ALG = struct("struct skcipher_alg", "crypto/skcipher.h", "ivsize", "chunksize", "walksize",
                      "base")
AEAD_ALG = struct("struct aead_alg", "crypto/aead.h", "ivsize", "maxauthsize", "base")
AKCIPHER_ALG = struct("struct akcipher_alg", "crypto/akcipher.h", "base")
KPP_ALG = struct("struct kpp_alg", "crypto/kpp.h", "base")
RNG_ALG = struct("struct rng_alg", "crypto/rng.h", "seedsize", "base")
SCOMP_ALG = struct("struct scomp_alg", "crypto/internal/scompress.h", "base")
# Transforms (crypto/api.py, shash.py), and what the built-in crc32c writes.
TFM = struct("struct crypto_tfm", "linux/crypto.h", "refcnt", "crt_flags", "node", "exit",
             "__crt_alg", "__crt_ctx")
CRYPTO_SHASH = struct("struct crypto_shash", "crypto/hash.h", "descsize", "base")
SHASH_DESC = struct("struct shash_desc", "crypto/hash.h", "tfm", "__ctx")
MAX_ALGAPI_ALIGNMASK = constant("MAX_ALGAPI_ALIGNMASK", "crypto/algapi.h")     # 63, 127 in 6.12
STRUCTS = (ALG, TMPL, QUEUE, SHASH_ALG, AHASH_ALG, SKCIPHER_ALG, AEAD_ALG, AKCIPHER_ALG, KPP_ALG,
           RNG_ALG, SCOMP_ALG, TFM, CRYPTO_SHASH, SHASH_DESC,
           MAX_ALGAPI_ALIGNMASK)      # what these functions read: the kernel's offsets and values
# Constants some releases lack: where the kernel has none, neither does its check.
HASH_MAX_STATESIZE = constant("HASH_MAX_STATESIZE", "crypto/hash.h")          # 512; gone in 6.12
TYPE_AKCIPHER = constant("CRYPTO_ALG_TYPE_AKCIPHER", "linux/crypto.h")       # 0xd; 0x6 from 6.5

CRYPTO_MAX_ALG_NAME = 128
CRYPTO_ALG_TYPE_MASK = 0xF
CRYPTO_ALG_TYPE_CIPHER = 0x1
CRYPTO_ALG_LARVAL, CRYPTO_ALG_DEAD, CRYPTO_ALG_TESTED = 0x10, 0x20, 0x400
MAX_ALGAPI_BLOCKSIZE = 160
MAX_CIPHER_ALIGNMASK, MAX_CIPHER_BLOCKSIZE = 15, 16
HASH_MAX_DIGESTSIZE, HASH_MAX_DESCSIZE = 64, 8 + 360


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


# The core kernel's own algorithms: `fn(kernel, crypto)` puts one on the list
# when a kernel's crypto API is first used (as their initcalls at boot).
BUILTIN_ALGS: list[Callable[[Any, "Crypto"], None]] = []


class Crypto:
    """crypto_alg_list, crypto_template_list and the type objects of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.algs = GuestList(kernel)
        self.templates = GuestList(kernel)
        self.types: dict[str, int] = {}
        self.builtins: dict[int, Any] = {}   # crypto_alg address -> its api.Ops
        self.exits: dict[int, Any] = {}      # tfm->exit marker -> the frontend's exit
        for register in BUILTIN_ALGS:
            register(kernel, self)

    def type_object(self, name: str) -> int:
        """The address standing for `crypto_<name>_type`."""
        address = self.types.get(name)
        if address is None:
            address = self.types[name] = self.kernel.slab.alloc(64, None, zero=True)
        return address


def _crypto(ctx: Any) -> Crypto:
    return ctx.kernel.subsystem(Crypto)


def alg_layout(ctx: Any) -> Any:
    """struct crypto_alg's offsets in the running kernel."""
    return ctx.kernel.layouts[ALG]


def _name(ctx: Any, address: int) -> str:
    return ctx.mem.read_cstr(address, CRYPTO_MAX_ALG_NAME).decode("utf-8", "replace")


def _owner(ctx: Any, module_struct: int, address: int) -> Any:
    return ctx.kernel.module_by_struct(module_struct) or ctx.kernel.registrations.module_at(address)


def crypto_check_alg(ctx: Any, alg: int) -> int:
    mem, off = ctx.mem, alg_layout(ctx)
    if not mem.read(alg + off.cra_name, 1)[0] or not mem.read(alg + off.cra_driver_name, 1)[0]:
        return -errno.EINVAL
    alignmask = mem.read_u32(alg + off.cra_alignmask)
    blocksize = mem.read_u32(alg + off.cra_blocksize)
    if alignmask & (alignmask + 1) or alignmask > ctx.kernel.layouts[MAX_ALGAPI_ALIGNMASK].size \
            or blocksize > MAX_ALGAPI_BLOCKSIZE:
        return -errno.EINVAL
    flags = mem.read_u32(alg + off.cra_flags)
    if not mem.read_u64(alg + off.cra_type) and flags & CRYPTO_ALG_TYPE_MASK == CRYPTO_ALG_TYPE_CIPHER:
        if alignmask > MAX_CIPHER_ALIGNMASK or blocksize > MAX_CIPHER_BLOCKSIZE:
            return -errno.EINVAL
    if _s32(mem.read_u32(alg + off.cra_priority)) < 0:
        return -errno.EINVAL
    mem.write_u32(alg + off.cra_refcnt, 1)
    return 0


def register_alg(ctx: Any, alg: int) -> int:
    """crypto_register_alg(): check, refuse clashes, link on crypto_alg_list."""
    err = crypto_check_alg(ctx, alg)
    if err:
        return err
    mem, crypto, off = ctx.mem, _crypto(ctx), alg_layout(ctx)
    name, driver = _name(ctx, alg + off.cra_name), _name(ctx, alg + off.cra_driver_name)
    for node in crypto.algs:
        q = node - off.cra_list
        if q == alg:
            return -errno.EEXIST
        q_flags = mem.read_u32(q + off.cra_flags)
        if q_flags & CRYPTO_ALG_DEAD:
            continue
        q_name, q_driver = _name(ctx, q + off.cra_name), _name(ctx, q + off.cra_driver_name)
        if q_flags & CRYPTO_ALG_LARVAL:
            if driver == q_driver:
                return -errno.EEXIST
            continue
        if q_driver in (name, driver) or q_name == driver:
            return -errno.EEXIST
    init_list_head(mem, alg + off.cra_users)
    # No self-test runs (kloader has no test vectors): the algorithm is
    # flagged as one whose test passed, so lookups that want tested ones find it.
    mem.write_u32(alg + off.cra_flags, mem.read_u32(alg + off.cra_flags) | CRYPTO_ALG_TESTED)
    crypto.algs.add(ctx, alg + off.cra_list)
    ctx.kernel.registrations.registry("crypto").add(
        ("alg", alg), f'crypto algorithm "{name}" ({driver})',
        owner=_owner(ctx, mem.read_u64(alg + off.cra_module), alg), address=alg,
        data=(crypto, off.cra_list), on_leftover=_unlink_leftover)
    return 0


def unregister_alg(ctx: Any, alg: int) -> Any:
    """crypto_unregister_alg()."""
    mem, crypto, off = ctx.mem, _crypto(ctx), alg_layout(ctx)
    if ctx.kernel.registrations.registry("crypto").remove(("alg", alg)) is None:
        warn(ctx, f"Algorithm {_name(ctx, alg + off.cra_driver_name)} is not registered",
             "crypto/algapi.c:459", "crypto_unregister_alg")
        return 0
    mem.write_u32(alg + off.cra_flags, mem.read_u32(alg + off.cra_flags) | CRYPTO_ALG_DEAD)
    crypto.algs.delete(ctx, alg + off.cra_list, init=True)
    if mem.read_u32(alg + off.cra_refcnt) != 1:
        warn(ctx, "", "crypto/algapi.c:462", "crypto_unregister_alg")
        return 0
    destroy = mem.read_u64(alg + off.cra_destroy)
    if destroy:
        return call_module_code(ctx, destroy, alg)
    return 0


def _unlink_leftover(entry: Any) -> None:
    crypto, cra_list = entry.data
    crypto.algs.unlink_quietly(entry.address + cra_list)


# --- algorithm types: each prepares its alg, then registers its base ----------

def _prepare(ctx: Any, base: int, kind: str, type_flag: int) -> None:
    mem, off = ctx.mem, alg_layout(ctx)
    mem.write_u64(base + off.cra_type, _crypto(ctx).type_object(kind))
    flags = mem.read_u32(base + off.cra_flags) & ~CRYPTO_ALG_TYPE_MASK
    mem.write_u32(base + off.cra_flags, flags | type_flag)


def _shash_check(ctx: Any, alg: int) -> bool:
    mem, off = ctx.mem, ctx.kernel.layouts[SHASH_ALG]
    state_max = constant_of(ctx.kernel, HASH_MAX_STATESIZE)
    return mem.read_u32(alg + off.digestsize) <= HASH_MAX_DIGESTSIZE \
        and mem.read_u32(alg + off.descsize) <= HASH_MAX_DESCSIZE \
        and (state_max is None or mem.read_u32(alg + off.statesize) <= state_max)


def _ahash_check(ctx: Any, alg: int) -> bool:
    mem, off = ctx.mem, ctx.kernel.layouts[AHASH_ALG]
    state, state_max = mem.read_u32(alg + off.halg_statesize), constant_of(ctx.kernel, HASH_MAX_STATESIZE)
    return mem.read_u32(alg + off.halg_digestsize) <= HASH_MAX_DIGESTSIZE \
        and 0 < state and (state_max is None or state <= state_max)


def _skcipher_check(ctx: Any, alg: int) -> bool:
    mem, off = ctx.mem, ctx.kernel.layouts[SKCIPHER_ALG]
    iv, chunk, walk = (mem.read_u32(alg + o) for o in (off.ivsize, off.chunksize, off.walksize))
    if max(iv, chunk, walk) > PAGE_SIZE // 8:
        return False
    if not chunk:
        chunk = mem.read_u32(alg + off.base + alg_layout(ctx).cra_blocksize)
        mem.write_u32(alg + off.chunksize, chunk)
    if not walk:
        mem.write_u32(alg + off.walksize, chunk)
    return True


def _aead_check(ctx: Any, alg: int) -> bool:
    off = ctx.kernel.layouts[AEAD_ALG]
    return max(ctx.mem.read_u32(alg + off.maxauthsize), ctx.mem.read_u32(alg + off.ivsize)) <= PAGE_SIZE // 8


def _rng_check(ctx: Any, alg: int) -> bool:
    return ctx.mem.read_u32(alg + ctx.kernel.layouts[RNG_ALG].seedsize) <= PAGE_SIZE // 8


def _akcipher_type(kernel: Any) -> int:
    return constant_of(kernel, TYPE_AKCIPHER) or 0


# kind: (struct <kind>_alg, its CRYPTO_ALG_TYPE_* (of the kernel), its validation)
TYPES: dict[str, tuple[Struct, Any, Any]] = {
    "shash": (SHASH_ALG, 0xE, _shash_check),
    "ahash": (AHASH_ALG, 0xF, _ahash_check),
    "skcipher": (SKCIPHER_ALG, 0x5, _skcipher_check),
    "aead": (AEAD_ALG, 0x3, _aead_check),
    "akcipher": (AKCIPHER_ALG, _akcipher_type, None),
    "kpp": (KPP_ALG, 0x8, None),
    "rng": (RNG_ALG, 0xC, _rng_check),
    "scomp": (SCOMP_ALG, 0xB, None),
}


def type_layout(ctx: Any, kind: str) -> tuple[int, int]:
    """(offset of `base` in struct <kind>_alg, its size) in the running kernel."""
    off = ctx.kernel.layouts[TYPES[kind][0]]
    return off.halg_base if kind == "ahash" else off.base, off.size


def _register_typed(ctx: Any, kind: str, alg: int) -> int:
    _, flag, check = TYPES[kind]
    base, _ = type_layout(ctx, kind)
    if check is not None and not check(ctx, alg):
        return -errno.EINVAL
    _prepare(ctx, alg + base, kind, flag(ctx.kernel) if callable(flag) else flag)
    return register_alg(ctx, alg + base)


async def _run(result: Any) -> int:
    return await result if not isinstance(result, int) else result


def _unregister_many(ctx: Any, addresses: list[int]) -> Any:
    """Unregister in order; a cra_destroy that runs module code makes it async."""
    pending = [unregister_alg(ctx, a) for a in addresses]
    if all(isinstance(p, int) for p in pending):
        return 0
    async def finish() -> int:
        for p in pending:
            await _run(p)
        return 0
    return finish()


def _register_many(ctx: Any, kind: str | None, algs: int, count: int) -> Any:
    """crypto_register_algs()/..._shashes()/...: all or none."""
    base, size = (0, alg_layout(ctx).size) if kind is None else type_layout(ctx, kind)
    done: list[int] = []
    for i in range(_s32(count)):
        alg = algs + i * size
        err = register_alg(ctx, alg) if kind is None else _register_typed(ctx, kind, alg)
        if err:
            undo = _unregister_many(ctx, [a + base for a in reversed(done)])
            if isinstance(undo, int):
                return err
            async def failed() -> int:
                await undo
                return err
            return failed()
        done.append(alg)
    return 0


@export("crypto_register_alg", "int crypto_register_alg(struct crypto_alg *alg)", nargs=1,
        gpl=True)
def crypto_register_alg(ctx: Any, alg: int) -> int:
    return register_alg(ctx, alg)


@export("crypto_unregister_alg", "void crypto_unregister_alg(struct crypto_alg *alg)", nargs=1,
        gpl=True)
def crypto_unregister_alg(ctx: Any, alg: int) -> Any:
    return unregister_alg(ctx, alg)


@export("crypto_register_algs", "int crypto_register_algs(struct crypto_alg *algs, int count)",
        nargs=2, gpl=True)
def crypto_register_algs(ctx: Any, algs: int, count: int) -> Any:
    return _register_many(ctx, None, algs, count)


@export("crypto_unregister_algs", "void crypto_unregister_algs(struct crypto_alg *algs, "
        "int count)", nargs=2, gpl=True)
def crypto_unregister_algs(ctx: Any, algs: int, count: int) -> Any:
    size = alg_layout(ctx).size
    return _unregister_many(ctx, [algs + i * size for i in range(_s32(count))])


def _export_type(kind: str, plural: str | None) -> None:
    c_type = f"struct {kind}_alg"

    def register(ctx: Any, alg: int) -> int:
        return _register_typed(ctx, kind, alg)

    def unregister(ctx: Any, alg: int) -> Any:
        return unregister_alg(ctx, alg + type_layout(ctx, kind)[0])

    def register_many(ctx: Any, algs: int, count: int) -> Any:
        return _register_many(ctx, kind, algs, count)

    def unregister_many(ctx: Any, algs: int, count: int) -> Any:
        base, size = type_layout(ctx, kind)
        return _unregister_many(ctx, [algs + i * size + base for i in range(_s32(count))])

    fns = [(register, f"crypto_register_{kind}", f"int %s({c_type} *alg)", 1),
           (unregister, f"crypto_unregister_{kind}", f"void %s({c_type} *alg)", 1)]
    if plural:
        fns += [(register_many, f"crypto_register_{plural}", f"int %s({c_type} *algs, int count)", 2),
                (unregister_many, f"crypto_unregister_{plural}",
                 f"void %s({c_type} *algs, int count)", 2)]
    for fn, name, proto, nargs in fns:
        fn.__name__ = fn.__qualname__ = name
        export(name, proto % name, nargs=nargs, gpl=True)(fn)


for _kind, _plural in (("shash", "shashes"), ("ahash", "ahashes"), ("skcipher", "skciphers"),
                       ("aead", "aeads"), ("akcipher", None), ("kpp", None), ("rng", "rngs"),
                       ("scomp", "scomps")):
    _export_type(_kind, _plural)


# --- templates --------------------------------------------------------------------

@export("crypto_register_template", "int crypto_register_template(struct crypto_template *tmpl)",
        nargs=1, gpl=True)
def crypto_register_template(ctx: Any, tmpl: int) -> int:
    crypto, off = _crypto(ctx), ctx.kernel.layouts[TMPL]
    if any(node == tmpl + off.list for node in crypto.templates):
        return -errno.EEXIST
    crypto.templates.add(ctx, tmpl + off.list)
    name = _name(ctx, tmpl + off.name)
    ctx.kernel.registrations.registry("crypto").add(
        ("template", tmpl), f'crypto template "{name}"',
        owner=_owner(ctx, ctx.mem.read_u64(tmpl + off.module), tmpl), address=tmpl,
        data=(crypto, off.list), on_leftover=_unlink_template)
    return 0


@export("crypto_unregister_template",
        "void crypto_unregister_template(struct crypto_template *tmpl)", nargs=1, gpl=True)
def crypto_unregister_template(ctx: Any, tmpl: int) -> None:
    """BUG_ON(list_empty(&tmpl->list)) as Linux; instances are never made here."""
    crypto = _crypto(ctx)
    ctx.kernel.registrations.registry("crypto").remove(("template", tmpl))
    crypto.templates.delete(ctx, tmpl + ctx.kernel.layouts[TMPL].list, init=True)


def _unlink_template(entry: Any) -> None:
    crypto, list_ = entry.data
    crypto.templates.unlink_quietly(entry.address + list_)


@export("crypto_register_templates",
        "int crypto_register_templates(struct crypto_template *tmpls, int count)", nargs=2,
        gpl=True)
def crypto_register_templates(ctx: Any, tmpls: int, count: int) -> int:
    size = ctx.kernel.layouts[TMPL].size
    for i in range(_s32(count)):
        err = crypto_register_template(ctx, tmpls + i * size)
        if err:
            for j in reversed(range(i)):
                crypto_unregister_template(ctx, tmpls + j * size)
            return err
    return 0


@export("crypto_unregister_templates",
        "void crypto_unregister_templates(struct crypto_template *tmpls, int count)", nargs=2,
        gpl=True)
def crypto_unregister_templates(ctx: Any, tmpls: int, count: int) -> None:
    size = ctx.kernel.layouts[TMPL].size
    for i in reversed(range(_s32(count))):
        crypto_unregister_template(ctx, tmpls + i * size)


# --- request queues ------------------------------------------------------------------

@export("crypto_init_queue", "void crypto_init_queue(struct crypto_queue *queue, "
        "unsigned int max_qlen)", nargs=2)
def crypto_init_queue(ctx: Any, queue: int, max_qlen: int) -> None:
    mem, off = ctx.mem, ctx.kernel.layouts[QUEUE]
    init_list_head(mem, queue + off.list)
    mem.write_u64(queue + off.backlog, queue + off.list)
    mem.write_u32(queue + off.qlen, 0)
    mem.write_u32(queue + off.max_qlen, max_qlen & 0xFFFFFFFF)
