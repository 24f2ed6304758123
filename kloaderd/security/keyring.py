"""security/keys/key.c and keyring.c: keys and keyrings that modules make
for themselves — `keyring_alloc`, `key_put`, `key_revoke` — and
`/proc/keys`, where Linux shows them.

dns_resolver, cifs (".cifs_idmap") and nfsv4 (".id_resolver") each make a
private keyring at init, hand it to an override credential as its
`thread_keyring`, and at exit revoke it and put the credential, whose
release (kernel/cred.py) puts the keyring.  kloader does the same, in guest
memory at the running kernel's `struct key` offsets:

* `keyring_alloc()` is `key_alloc()` of the kernel's "keyring" type
  (`key_type_keyring`, a kernel object here too) then its instantiation:
  -EINVAL for a NULL or empty description; the owner's quota (root 1000000
  keys / 25000000 bytes, others 200 / 20000, each key counting its
  description + 1) unless `KEY_ALLOC_NOT_IN_QUOTA`, -EDQUOT past it
  (`KEY_ALLOC_QUOTA_OVERRUN` lets it overrun); a random serial of at least
  3, unique; usage 1; `uid`, `gid`, `perm`, `restrict_link` as given; flags
  from the allocation flags as Linux sets them (IN_QUOTA, BUILTIN,
  UID_KEYRING, KEEP); `last_used_at` now; state KEY_IS_POSITIVE, an empty
  keyring.  The description is a kernel copy (`index_key.desc_len`,
  `desc`, `description`), the type is `key_type_keyring`.
* `key_put()` drops a reference (refcount_t, with refcount's underflow
  WARN); the last frees the key as the garbage collector would: quota
  returned, the keyring's restriction put and freed (`keyring_destroy`),
  the description and the key freed.  Linux frees it from a work item a
  moment later; kloader at once.
* `key_revoke()` sets KEY_FLAG_REVOKED once, clears a keyring (it has no
  links here), and records `revoked_at`.
* `/proc/keys` lists the live keys in serial order with Linux's columns
  (serial, the flags "IRDQUNi", usage, expiry "perm", perm, uid, gid,
  type, and the keyring's description with ": empty"), those the reader may
  view: a privileged reader as root (uid 0, gid 0), any other as a user
  neither owner nor in the group.

A key still alive when the module that made it is freed is reported as
`NAME: leaked registration: keyring ".dns_resolver" (serial ...; key_put)`:
nothing can reach it any more but a serial number, so Linux would keep it
for ever.  It stays listed in /proc/keys, as in Linux.

Where kloader differs: there is no `key_user` (`key->user` stays NULL;
quota is counted by uid in Python), no LSM blob, no domain tag or index
hash (`hash`, `domain_tag` stay 0: no keyring is ever searched, since no
`request_key`, `keyctl` or `add_key` reaches the kernel), and nothing is
ever linked into a keyring: `keyring_alloc()` with a destination keyring
is not emulated (an oops naming it), so the keyrings' assoc arrays stay
empty.  The possessor's permissions are never granted in /proc/keys (the
reader's keyrings are not emulated).  Keys of other types are never made.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from typing import Any

from ..kernel.api import at_boot, export
from ..kernel.kdata import DataExport, export_data
from ..kernel.layouts import constants, struct
from ..kernel.locking.rwsem import init_rwsem
from ..kernel.oops import NotEmulated
from ..lib.refcount import refcount_warn_saturate
from .keys import KEY_TYPE

KEY = struct("struct key", "linux/key.h", "usage", "serial", "sem", "user", "security", "expiry",
             "last_used_at", "uid", "gid", "perm", "quotalen", "datalen", "state", "flags",
             "index_key.desc_len", "index_key.desc", "type", "domain_tag", "description",
             "keys.nr_leaves_on_tree", "restrict_link")
KEY_RESTRICTION = struct("struct key_restriction", "linux/key.h", "check", "key", "keytype")
KEY_BITS = constants("key flags", "linux/key.h", "KEY_FLAG_DEAD", "KEY_FLAG_REVOKED", "KEY_FLAG_IN_QUOTA",
                     "KEY_FLAG_USER_CONSTRUCT", "KEY_FLAG_INVALIDATED", "KEY_FLAG_BUILTIN", "KEY_FLAG_KEEP",
                     "KEY_FLAG_UID_KEYRING", "KEY_ALLOC_QUOTA_OVERRUN", "KEY_ALLOC_NOT_IN_QUOTA",
                     "KEY_ALLOC_BUILT_IN", "KEY_ALLOC_UID_KEYRING", "KEY_ALLOC_SET_KEEP", "KEY_IS_POSITIVE",
                     "KEY_POS_VIEW", "KEY_USR_VIEW", "KEY_GRP_VIEW", "KEY_OTH_VIEW")
STRUCTS = (KEY, KEY_TYPE, KEY_RESTRICTION, KEY_BITS)

export_data("key_type_keyring", DataExport(struct=KEY_TYPE))

# security/keys/gc.c, key.c: the quota defaults (key_quota_*), in keys and bytes
ROOT_MAXKEYS, ROOT_MAXBYTES = 1000000, 25000000
MAXKEYS, MAXBYTES = 200, 20000
DESC_MAX = 4096                     # a description longer than this is not a string a module meant
REFCOUNT_SUB_UAF = 3                # enum refcount_saturation_type's underflow
GLOBAL_ROOT = 0
NOBODY = 65534                      # the unprivileged reader of /proc/keys: not owner, not in the group


@dataclass(eq=False)
class Key:
    """What the kernel keeps of one key besides its bytes."""
    address: int
    serial: int
    description: str
    uid: int
    quotalen: int
    in_quota: bool


class Keys:
    """One kernel's keys (its key_serial_tree) and key_type_keyring."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.by_address: dict[int, Key] = {}
        self.by_serial: dict[int, Key] = {}
        self.quota: dict[int, list[int]] = {}          # uid -> [qnkeys, qnbytes]
        self.registry = kernel.registrations.registry("keyring")
        self.keyring_type = self._keyring_type()

    def _keyring_type(self) -> int:
        """key_type_keyring: the profile's object, named "keyring"."""
        kernel = self.kernel
        found = kernel.symbols.get("key_type_keyring")
        ktype = found.address if found is not None else kernel.slab.alloc(
            kernel.layouts[KEY_TYPE].size, None, zero=True)
        name = kernel.slab.alloc(len(b"keyring\0"), None)
        kernel.mem.write(name, b"keyring\0")
        kernel.mem.write_u64(ktype + kernel.layouts[KEY_TYPE].name, name)
        return ktype

    # -- allocation -------------------------------------------------------------

    def charge(self, uid: int, quotalen: int, overrun: bool) -> bool:
        """The owner's quota takes one more key of `quotalen` bytes (false: -EDQUOT)."""
        used = self.quota.setdefault(uid, [0, 0])
        maxkeys, maxbytes = (ROOT_MAXKEYS, ROOT_MAXBYTES) if uid == GLOBAL_ROOT else (MAXKEYS, MAXBYTES)
        if not overrun and (used[0] + 1 >= maxkeys or used[1] + quotalen >= maxbytes):
            return False
        used[0] += 1
        used[1] += quotalen
        return True

    def serial(self) -> int:
        """key_alloc_serial(): random, positive, at least 3, unused."""
        serial = 0
        while serial < 3:
            serial = int.from_bytes(os.urandom(4), "little") >> 1
        while serial in self.by_serial:
            serial = serial + 1 if serial + 1 < 1 << 31 else 3
        return serial

    def alloc_keyring(self, ctx: Any, desc: str, raw: bytes, uid: int, gid: int, perm: int, flags: int,
                      restrict_link: int) -> int:
        """key_alloc(&key_type_keyring, ...) then keyring_instantiate(): the
        key's address, or a negative errno."""
        kernel, mem = self.kernel, self.kernel.mem
        off, bits = kernel.layouts[KEY], kernel.layouts[KEY_BITS]
        quotalen = len(raw) + 1                  # key_type_keyring's def_datalen is 0
        in_quota = not flags & bits.KEY_ALLOC_NOT_IN_QUOTA
        if in_quota and not self.charge(uid, quotalen, bool(flags & bits.KEY_ALLOC_QUOTA_OVERRUN)):
            return -errno.EDQUOT
        key = kernel.slab.alloc(off.size, None, zero=True)          # key_jar
        description = kernel.slab.alloc(len(raw) + 1, None) if key else 0
        if not description:
            if key:
                kernel.slab.free(key, None)
            self.uncharge(uid, quotalen, in_quota)
            return -errno.ENOMEM
        mem.write(description, raw + b"\0")
        mem.write_u32(key + off.usage, 1)
        init_rwsem(mem, key + off.sem)
        mem.write_u16(key + off.index_key_desc_len, len(raw))
        mem.write(key + off.index_key_desc, raw[:6])
        mem.write_u64(key + off.type, self.keyring_type)
        mem.write_u64(key + off.description, description)
        mem.write_u16(key + off.quotalen, quotalen)
        mem.write_u32(key + off.uid, uid)
        mem.write_u32(key + off.gid, gid)
        mem.write_u32(key + off.perm, perm)
        mem.write_u64(key + off.restrict_link, restrict_link)
        mem.write_u64(key + off.last_used_at, time.time_ns() // 1_000_000_000)
        key_flags = 0
        for alloc_flag, bit in ((None, bits.KEY_FLAG_IN_QUOTA), (bits.KEY_ALLOC_BUILT_IN, bits.KEY_FLAG_BUILTIN),
                                (bits.KEY_ALLOC_UID_KEYRING, bits.KEY_FLAG_UID_KEYRING),
                                (bits.KEY_ALLOC_SET_KEEP, bits.KEY_FLAG_KEEP)):
            if in_quota if alloc_flag is None else flags & alloc_flag:
                key_flags |= 1 << bit
        mem.write_u64(key + off.flags, key_flags)
        serial = self.serial()
        mem.write_u32(key + off.serial, serial)
        mem.write_u16(key + off.state, bits.KEY_IS_POSITIVE)     # mark_key_instantiated()
        record = Key(key, serial, desc, uid, quotalen, in_quota)
        self.by_address[key] = self.by_serial[serial] = record
        self.registry.add(key, f'keyring "{desc}" (serial {serial}; key_put)', owner=ctx.module, address=key,
                          points_to=(restrict_link,) if restrict_link else (), data=record)
        return key

    def uncharge(self, uid: int, quotalen: int, in_quota: bool) -> None:
        if in_quota:
            used = self.quota[uid]
            used[0] -= 1
            used[1] -= quotalen

    # -- references ----------------------------------------------------------------

    def get(self, key: int) -> None:
        """__key_get(): refcount_inc() of the key's usage."""
        mem, usage = self.kernel.mem, key + self.kernel.layouts[KEY].usage
        mem.write_u32(usage, (mem.read_u32(usage) + 1) & 0xFFFFFFFF)

    def put(self, ctx: Any, key: int) -> None:
        """key_put(): refcount_dec_and_test(), the last reference freeing it."""
        mem, usage = self.kernel.mem, key + self.kernel.layouts[KEY].usage
        old = mem.read_u32(usage)
        if old == 1:
            mem.write_u32(usage, 0)
            self.destroy(ctx, key)
        elif old == 0 or old & 0x80000000:
            refcount_warn_saturate(ctx, usage, REFCOUNT_SUB_UAF)
        else:
            mem.write_u32(usage, old - 1)

    def destroy(self, ctx: Any, key: int) -> None:
        """key_gc_unused_keys() of one key: quota back, keyring_destroy(),
        the description and the key freed."""
        record = self.by_address.pop(key, None)
        if record is None:
            return              # not a key kloader made: Linux would free whatever it is
        del self.by_serial[record.serial]
        self.registry.remove(key)
        self.uncharge(record.uid, record.quotalen, record.in_quota)
        kernel, mem = self.kernel, self.kernel.mem
        off = kernel.layouts[KEY]
        restriction = mem.read_u64(key + off.restrict_link)
        if restriction:
            held = mem.read_u64(restriction + kernel.layouts[KEY_RESTRICTION].key)
            if held:
                self.put(ctx, held)
            kernel.slab.free(restriction, getattr(ctx.module, "name", None))
        kernel.slab.free(mem.read_u64(key + off.description), None)
        mem.write(key, bytes(off.size))                     # memzero_explicit()
        kernel.slab.free(key, None)

    # -- revocation ----------------------------------------------------------------

    def revoke(self, key: int) -> None:
        """key_revoke(): KEY_FLAG_REVOKED once; a keyring is cleared (it has
        no links here) and its data reservation dropped; revoked_at now."""
        kernel, mem = self.kernel, self.kernel.mem
        off, bits = kernel.layouts[KEY], kernel.layouts[KEY_BITS]
        flags = mem.read_u64(key + off.flags)
        if flags & 1 << bits.KEY_FLAG_REVOKED:
            return
        mem.write_u64(key + off.flags, flags | 1 << bits.KEY_FLAG_REVOKED)
        mem.write_u16(key + off.datalen, 0)              # keyring_revoke(): key_payload_reserve(0)
        now = time.time_ns() // 1_000_000_000
        revoked_at = mem.read_u64(key + off.expiry)      # the union's revoked_at
        if revoked_at == 0 or revoked_at > now:
            mem.write_u64(key + off.expiry, now)

    # -- /proc/keys ----------------------------------------------------------------

    def may_view(self, key: int, uid: int, gid: int) -> bool:
        """key_task_permission(KEY_NEED_VIEW) without possession: the owner's,
        the group's or the others' view bit."""
        mem, off, bits = self.kernel.mem, self.kernel.layouts[KEY], self.kernel.layouts[KEY_BITS]
        perm = mem.read_u32(key + off.perm)
        if mem.read_u32(key + off.uid) == uid:
            return bool(perm & bits.KEY_USR_VIEW)
        if mem.read_u32(key + off.gid) == gid:
            return bool(perm & bits.KEY_GRP_VIEW)
        return bool(perm & bits.KEY_OTH_VIEW)

    def proc_keys(self, privileged: bool) -> str:
        """proc_keys_show() for each viewable key, in serial order."""
        uid = gid = GLOBAL_ROOT if privileged else NOBODY
        return "".join(self.show(record) for serial, record in sorted(self.by_serial.items())
                       if self.may_view(record.address, uid, gid))

    def show(self, record: Key) -> str:
        mem, off, bits = self.kernel.mem, self.kernel.layouts[KEY], self.kernel.layouts[KEY_BITS]
        key = record.address
        flags = mem.read_u64(key + off.flags)
        state = int.from_bytes(mem.read(key + off.state, 2), "little", signed=True)

        def flag(letter: str, bit: int) -> str:
            return letter if flags & 1 << bit else "-"
        shown = ("I" if state != 0 else "-") + flag("R", bits.KEY_FLAG_REVOKED) + flag("D", bits.KEY_FLAG_DEAD) \
            + flag("Q", bits.KEY_FLAG_IN_QUOTA) + flag("U", bits.KEY_FLAG_USER_CONSTRUCT) \
            + ("N" if state < 0 else "-") + flag("i", bits.KEY_FLAG_INVALIDATED)
        usage = mem.read_u32(key + off.usage)
        leaves = mem.read_u64(key + off.keys_nr_leaves_on_tree)
        described = record.description + (f": {leaves}" if leaves else ": empty") if state > 0 \
            else record.description
        return (f"{record.serial:08x} {shown} {usage:5d} {'perm':>4} {mem.read_u32(key + off.perm):08x} "
                f"{mem.read_u32(key + off.uid):5d} {mem.read_u32(key + off.gid):5d} {'keyring':<9.9} "
                f"{described}\n")


def keys(kernel: Any) -> Keys:
    return kernel.subsystem(Keys)


def _known(ctx: Any, key: int, function: str) -> Keys:
    """The kernel's keys, once `key` is one of them (kloader makes no other)."""
    state = keys(ctx.kernel)
    if key not in state.by_address:
        raise NotEmulated(f"{function} of {key:#x}, not a key keyring_alloc made")
    return state


@at_boot
def _boot(kernel: Any) -> None:
    """/proc/keys and key_type_keyring's name exist from boot, where the
    running kernel's layouts give struct key."""
    if not all(kernel.layouts.has(s) for s in STRUCTS):
        return
    from ..fs.tree import Content, file_tree
    state = keys(kernel)
    file_tree(kernel).add("/proc", "keys", Content(lambda file: state.proc_keys(file.table.privileged)),
                          mode=0o444)


@export("keyring_alloc",
        "struct key *keyring_alloc(const char *description, kuid_t uid, kgid_t gid, const struct cred *cred, "
        "key_perm_t perm, unsigned long flags, struct key_restriction *restrict_link, struct key *dest)",
        nargs=8)
def keyring_alloc(ctx: Any, description: int, uid: int, gid: int, cred: int, perm: int, flags: int,
                  restrict_link: int, dest: int) -> int:
    if dest:
        raise NotEmulated("keyring_alloc linking into a keyring")
    raw = ctx.mem.read_cstr(description, DESC_MAX) if description else b""
    if not raw:
        return -errno.EINVAL & 0xFFFFFFFFFFFFFFFF
    state = keys(ctx.kernel)
    key = state.alloc_keyring(ctx, raw.decode(errors="replace"), raw, uid & 0xFFFFFFFF, gid & 0xFFFFFFFF,
                              perm & 0xFFFFFFFF, flags, restrict_link)
    return key & 0xFFFFFFFFFFFFFFFF


@export("key_put", "void key_put(struct key *key)", nargs=1)
def key_put(ctx: Any, key: int) -> None:
    if key:
        _known(ctx, key, "key_put").put(ctx, key)


@export("key_revoke", "void key_revoke(struct key *key)", nargs=1)
def key_revoke(ctx: Any, key: int) -> None:
    _known(ctx, key, "key_revoke").revoke(key)


def put_cred_keyrings(ctx: Any, keyrings: list[int]) -> None:
    """put_cred_rcu()'s key_put()s of a freed cred's keyrings."""
    for key in keyrings:
        if key:
            _known(ctx, key, "put_cred's key_put").put(ctx, key)


def get_cred_keyrings(kernel: Any, keyrings: list[int]) -> None:
    """prepare_creds()'s key_get()s of the keyrings a copied cred holds."""
    for key in keyrings:
        if key and key in keys(kernel).by_address:
            keys(kernel).get(key)
