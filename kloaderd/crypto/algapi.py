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

Where kloader differs from Linux 6.1:
* the crypto manager's self-tests are not run: a registered algorithm is
  flagged CRYPTO_ALG_TESTED at once, as if its test had passed (and no
  "alg: self-tests ... passed" line);
* of the core kernel's built-in algorithms only crc32c-generic is on the
  list (crc32c_generic.py), so a clash with another one is not seen;
* the default operations Linux fills in (shash's finup/digest/export/
  import/setkey, ...) are left as the module set them; `cra_type` points at
  a kloader object standing for the type.
Layouts are Linux 6.1 x86-64's (tests/test_crypto.py checks them against
the real headers with the kernel's own kbuild when the corpus is present).
"""

from __future__ import annotations

import errno
from typing import Any

from ..config import PAGE_SIZE
from ..kernel.api import export
from ..kernel.callback import call_module_code
from ..kernel.panic import warn
from ..lib.list import GuestList, init_list_head

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

# struct crypto_alg
CRA_LIST, CRA_USERS, CRA_FLAGS, CRA_BLOCKSIZE, CRA_ALIGNMASK = 0, 16, 32, 36, 44
CRA_PRIORITY, CRA_REFCNT, CRA_NAME, CRA_DRIVER_NAME, CRA_TYPE = 48, 52, 56, 184, 312
CRA_DESTROY, CRA_MODULE = 368, 376
CRYPTO_MAX_ALG_NAME = 128
# struct crypto_template
TMPL_LIST, TMPL_MODULE, TMPL_NAME = 0, 24, 40

CRYPTO_ALG_TYPE_MASK = 0xF
CRYPTO_ALG_TYPE_CIPHER = 0x1
CRYPTO_ALG_LARVAL, CRYPTO_ALG_DEAD, CRYPTO_ALG_TESTED = 0x10, 0x20, 0x400
MAX_ALGAPI_ALIGNMASK, MAX_ALGAPI_BLOCKSIZE = 63, 160
MAX_CIPHER_ALIGNMASK, MAX_CIPHER_BLOCKSIZE = 15, 16
HASH_MAX_DIGESTSIZE, HASH_MAX_DESCSIZE, HASH_MAX_STATESIZE = 64, 8 + 360, 512


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


class Crypto:
    """crypto_alg_list, crypto_template_list and the type objects of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.algs = GuestList(kernel)
        self.templates = GuestList(kernel)
        self.types: dict[str, int] = {}
        self.builtins: dict[int, Any] = {}   # crypto_alg address -> its api.Ops
        self.exits: dict[int, Any] = {}      # tfm->exit marker -> the frontend's exit
        from . import crc32c_generic
        crc32c_generic.register(kernel, self)

    def type_object(self, name: str) -> int:
        """The address standing for `crypto_<name>_type`."""
        address = self.types.get(name)
        if address is None:
            address = self.types[name] = self.kernel.slab.alloc(64, None, zero=True)
        return address


def _crypto(ctx: Any) -> Crypto:
    return ctx.kernel.subsystem(Crypto)


def _name(ctx: Any, address: int) -> str:
    return ctx.mem.read_cstr(address, CRYPTO_MAX_ALG_NAME).decode("utf-8", "replace")


def _owner(ctx: Any, module_struct: int, address: int) -> Any:
    return ctx.kernel.module_by_struct(module_struct) or ctx.kernel.registrations.module_at(address)


def crypto_check_alg(ctx: Any, alg: int) -> int:
    mem = ctx.mem
    if not mem.read(alg + CRA_NAME, 1)[0] or not mem.read(alg + CRA_DRIVER_NAME, 1)[0]:
        return -errno.EINVAL
    alignmask = mem.read_u32(alg + CRA_ALIGNMASK)
    blocksize = mem.read_u32(alg + CRA_BLOCKSIZE)
    if alignmask & (alignmask + 1) or alignmask > MAX_ALGAPI_ALIGNMASK \
            or blocksize > MAX_ALGAPI_BLOCKSIZE:
        return -errno.EINVAL
    flags = mem.read_u32(alg + CRA_FLAGS)
    if not mem.read_u64(alg + CRA_TYPE) and flags & CRYPTO_ALG_TYPE_MASK == CRYPTO_ALG_TYPE_CIPHER:
        if alignmask > MAX_CIPHER_ALIGNMASK or blocksize > MAX_CIPHER_BLOCKSIZE:
            return -errno.EINVAL
    if _s32(mem.read_u32(alg + CRA_PRIORITY)) < 0:
        return -errno.EINVAL
    mem.write_u32(alg + CRA_REFCNT, 1)
    return 0


def register_alg(ctx: Any, alg: int) -> int:
    """crypto_register_alg(): check, refuse clashes, link on crypto_alg_list."""
    err = crypto_check_alg(ctx, alg)
    if err:
        return err
    mem, crypto = ctx.mem, _crypto(ctx)
    name, driver = _name(ctx, alg + CRA_NAME), _name(ctx, alg + CRA_DRIVER_NAME)
    for node in crypto.algs:
        q = node - CRA_LIST
        if q == alg:
            return -errno.EEXIST
        q_flags = mem.read_u32(q + CRA_FLAGS)
        if q_flags & CRYPTO_ALG_DEAD:
            continue
        q_name, q_driver = _name(ctx, q + CRA_NAME), _name(ctx, q + CRA_DRIVER_NAME)
        if q_flags & CRYPTO_ALG_LARVAL:
            if driver == q_driver:
                return -errno.EEXIST
            continue
        if q_driver in (name, driver) or q_name == driver:
            return -errno.EEXIST
    init_list_head(mem, alg + CRA_USERS)
    # No self-test runs (kloader has no test vectors): the algorithm is
    # flagged as one whose test passed, so lookups that want tested ones find it.
    mem.write_u32(alg + CRA_FLAGS, mem.read_u32(alg + CRA_FLAGS) | CRYPTO_ALG_TESTED)
    crypto.algs.add(ctx, alg + CRA_LIST)
    ctx.kernel.registrations.registry("crypto").add(
        ("alg", alg), f'crypto algorithm "{name}" ({driver})',
        owner=_owner(ctx, mem.read_u64(alg + CRA_MODULE), alg), address=alg,
        data=crypto, on_leftover=_unlink_leftover)
    return 0


def unregister_alg(ctx: Any, alg: int) -> Any:
    """crypto_unregister_alg()."""
    mem, crypto = ctx.mem, _crypto(ctx)
    if ctx.kernel.registrations.registry("crypto").remove(("alg", alg)) is None:
        warn(ctx, f"Algorithm {_name(ctx, alg + CRA_DRIVER_NAME)} is not registered",
             "crypto/algapi.c:459", "crypto_unregister_alg")
        return 0
    mem.write_u32(alg + CRA_FLAGS, mem.read_u32(alg + CRA_FLAGS) | CRYPTO_ALG_DEAD)
    crypto.algs.delete(ctx, alg + CRA_LIST, init=True)
    if mem.read_u32(alg + CRA_REFCNT) != 1:
        warn(ctx, "", "crypto/algapi.c:462", "crypto_unregister_alg")
        return 0
    destroy = mem.read_u64(alg + CRA_DESTROY)
    if destroy:
        return call_module_code(ctx, destroy, alg)
    return 0


def _unlink_leftover(entry: Any) -> None:
    entry.data.algs.unlink_quietly(entry.address + CRA_LIST)


# --- algorithm types: each prepares its alg, then registers its base ----------

def _prepare(ctx: Any, base: int, kind: str, type_flag: int) -> None:
    mem = ctx.mem
    mem.write_u64(base + CRA_TYPE, _crypto(ctx).type_object(kind))
    flags = mem.read_u32(base + CRA_FLAGS) & ~CRYPTO_ALG_TYPE_MASK
    mem.write_u32(base + CRA_FLAGS, flags | type_flag)


def _shash_check(ctx: Any, alg: int) -> bool:
    digest, desc, state = (ctx.mem.read_u32(alg + off) for off in (88, 80, 92))
    return digest <= HASH_MAX_DIGESTSIZE and desc <= HASH_MAX_DESCSIZE \
        and state <= HASH_MAX_STATESIZE


def _ahash_check(ctx: Any, alg: int) -> bool:
    digest, state = ctx.mem.read_u32(alg + 80), ctx.mem.read_u32(alg + 84)
    return digest <= HASH_MAX_DIGESTSIZE and 0 < state <= HASH_MAX_STATESIZE


def _skcipher_check(ctx: Any, alg: int) -> bool:
    mem = ctx.mem
    iv, chunk, walk = (mem.read_u32(alg + off) for off in (48, 52, 56))
    if max(iv, chunk, walk) > PAGE_SIZE // 8:
        return False
    if not chunk:
        chunk = mem.read_u32(alg + 64 + CRA_BLOCKSIZE)
        mem.write_u32(alg + 52, chunk)
    if not walk:
        mem.write_u32(alg + 56, chunk)
    return True


def _aead_check(ctx: Any, alg: int) -> bool:
    return max(ctx.mem.read_u32(alg + 52), ctx.mem.read_u32(alg + 48)) <= PAGE_SIZE // 8


def _rng_check(ctx: Any, alg: int) -> bool:
    return ctx.mem.read_u32(alg + 24) <= PAGE_SIZE // 8


# kind: (offset of `base`, sizeof the alg struct, CRYPTO_ALG_TYPE_*, validation)
TYPES: dict[str, tuple[int, int, int, Any]] = {
    "shash": (96, 480, 0xE, _shash_check),
    "ahash": (88, 472, 0xF, _ahash_check),
    "skcipher": (64, 448, 0x5, _skcipher_check),
    "aead": (64, 448, 0x3, _aead_check),
    "akcipher": (80, 464, 0xD, None),
    "kpp": (56, 440, 0x8, None),
    "rng": (32, 416, 0xC, _rng_check),
    "scomp": (32, 416, 0xB, None),
}


def _register_typed(ctx: Any, kind: str, alg: int) -> int:
    base, _, flag, check = TYPES[kind]
    if check is not None and not check(ctx, alg):
        return -errno.EINVAL
    _prepare(ctx, alg + base, kind, flag)
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
    size = 384 if kind is None else TYPES[kind][1]
    base = 0 if kind is None else TYPES[kind][0]
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
    return _unregister_many(ctx, [algs + i * 384 for i in range(_s32(count))])


def _export_type(kind: str, plural: str | None) -> None:
    base, size, _, _ = TYPES[kind]
    struct = f"struct {kind}_alg"

    def register(ctx: Any, alg: int) -> int:
        return _register_typed(ctx, kind, alg)

    def unregister(ctx: Any, alg: int) -> Any:
        return unregister_alg(ctx, alg + base)

    def register_many(ctx: Any, algs: int, count: int) -> Any:
        return _register_many(ctx, kind, algs, count)

    def unregister_many(ctx: Any, algs: int, count: int) -> Any:
        return _unregister_many(ctx, [algs + i * size + base for i in range(_s32(count))])

    fns = [(register, f"crypto_register_{kind}", f"int %s({struct} *alg)", 1),
           (unregister, f"crypto_unregister_{kind}", f"void %s({struct} *alg)", 1)]
    if plural:
        fns += [(register_many, f"crypto_register_{plural}", f"int %s({struct} *algs, int count)", 2),
                (unregister_many, f"crypto_unregister_{plural}",
                 f"void %s({struct} *algs, int count)", 2)]
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
    crypto = _crypto(ctx)
    if any(node == tmpl + TMPL_LIST for node in crypto.templates):
        return -errno.EEXIST
    crypto.templates.add(ctx, tmpl + TMPL_LIST)
    name = _name(ctx, tmpl + TMPL_NAME)
    ctx.kernel.registrations.registry("crypto").add(
        ("template", tmpl), f'crypto template "{name}"',
        owner=_owner(ctx, ctx.mem.read_u64(tmpl + TMPL_MODULE), tmpl), address=tmpl,
        data=crypto, on_leftover=_unlink_template)
    return 0


@export("crypto_unregister_template",
        "void crypto_unregister_template(struct crypto_template *tmpl)", nargs=1, gpl=True)
def crypto_unregister_template(ctx: Any, tmpl: int) -> None:
    """BUG_ON(list_empty(&tmpl->list)) as Linux; instances are never made here."""
    crypto = _crypto(ctx)
    ctx.kernel.registrations.registry("crypto").remove(("template", tmpl))
    crypto.templates.delete(ctx, tmpl + TMPL_LIST, init=True)


def _unlink_template(entry: Any) -> None:
    entry.data.templates.unlink_quietly(entry.address + TMPL_LIST)


TEMPLATE_SIZE = 168


@export("crypto_register_templates",
        "int crypto_register_templates(struct crypto_template *tmpls, int count)", nargs=2,
        gpl=True)
def crypto_register_templates(ctx: Any, tmpls: int, count: int) -> int:
    for i in range(_s32(count)):
        err = crypto_register_template(ctx, tmpls + i * TEMPLATE_SIZE)
        if err:
            for j in reversed(range(i)):
                crypto_unregister_template(ctx, tmpls + j * TEMPLATE_SIZE)
            return err
    return 0


@export("crypto_unregister_templates",
        "void crypto_unregister_templates(struct crypto_template *tmpls, int count)", nargs=2,
        gpl=True)
def crypto_unregister_templates(ctx: Any, tmpls: int, count: int) -> None:
    for i in reversed(range(_s32(count))):
        crypto_unregister_template(ctx, tmpls + i * TEMPLATE_SIZE)


# --- request queues ------------------------------------------------------------------
# struct crypto_queue: list@0, backlog@16, qlen@24, max_qlen@28

@export("crypto_init_queue", "void crypto_init_queue(struct crypto_queue *queue, "
        "unsigned int max_qlen)", nargs=2)
def crypto_init_queue(ctx: Any, queue: int, max_qlen: int) -> None:
    mem = ctx.mem
    init_list_head(mem, queue)
    mem.write_u64(queue + 16, queue)
    mem.write_u32(queue + 24, 0)
    mem.write_u32(queue + 28, max_qlen & 0xFFFFFFFF)
