"""net/netlink/genetlink.c: generic netlink families
(`genl_register_family`), what `genl ctrl list` shows.

As Linux 6.1: the operations are checked first (ops or small_ops counted
but missing is a WARN_ON and -EINVAL, as is an operation with neither
doit nor dumpit, a command listed twice, or a `validate` on a command at
or above `resv_start_op`); a family name already registered is -EEXIST;
the id is allocated cyclically from GENL_START_ALLOC (0x13) to 1023
(`nlctrl`, `VFS_DQUOT` and `pmcraid` keep their fixed ids); multicast
groups need a NUL-terminated, non-empty name (WARN_ON, -EINVAL) and get
consecutive ids from the kernel's group bitmap, the first written to the
family's `mcgrp_offset`.  Unregistering a family that is not registered
is -ENOENT.  No CTRL_CMD_NEWFAMILY event reaches anyone: kloader has no
user-space netlink.

Where kloader differs: the kernel's built-in families (nlctrl, ethtool,
devlink, taskstats, ...) are not known by name or id, so a module's family
gets ids and group ids Linux would have given a built-in one.  genl_family,
genl_ops, genl_small_ops and genl_multicast_group are read at the running
kernel's offsets and sizes.  (6.2's split ops, `split_ops`, are not
validated.)
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.api.sched import mutex_lock, mutex_unlock
from ...kernel.layouts import struct
from ...kernel.panic import warn
from ...kernel.registry import owner_of

FAMILY = struct("struct genl_family", "net/genetlink.h", "id", "name", "mcgrp_offset", "n_ops",
                "n_small_ops", "n_mcgrps", "resv_start_op", "ops", "small_ops", "mcgrps", "module")
OP = struct("struct genl_ops", "net/genetlink.h", "doit", "dumpit", "cmd", "validate")
SMALL_OP = struct("struct genl_small_ops", "net/genetlink.h", "doit", "dumpit", "cmd", "validate")
MCGRP = struct("struct genl_multicast_group", "net/genetlink.h", "name")
STRUCTS = (FAMILY, OP, SMALL_OP, MCGRP)       # what these functions read at the kernel's offsets
GENL_NAMSIZ = 16
GENL_ID_CTRL, GENL_ID_VFS_DQUOT, GENL_ID_PMCRAID, GENL_START_ALLOC, GENL_MAX_ID = (
    0x10, 0x11, 0x12, 0x13, 1023)
FIXED_IDS = {"nlctrl": GENL_ID_CTRL, "VFS_DQUOT": GENL_ID_VFS_DQUOT, "pmcraid": GENL_ID_PMCRAID}
# mc_group_start: groups 0 and 1, and those named after the fixed ids, are taken
RESERVED_GROUPS = {0, 1, GENL_ID_CTRL, GENL_ID_VFS_DQUOT, GENL_ID_PMCRAID}


class Families:
    """genl_fam_idr and the multicast group bitmap of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.next_id = GENL_START_ALLOC
        self.groups: set[int] = set(RESERVED_GROUPS)

    def alloc_id(self, taken: set[int]) -> int:
        """idr_alloc_cyclic(start, end + 1): from after the last one, wrapping."""
        span = GENL_MAX_ID - GENL_START_ALLOC + 1
        for step in range(span):
            candidate = GENL_START_ALLOC + (self.next_id - GENL_START_ALLOC + step) % span
            if candidate not in taken:
                self.next_id = candidate + 1
                return candidate
        return -errno.ENOSPC

    def alloc_groups(self, count: int) -> int:
        """The first run of `count` free group ids (find_first_zero_bit and up)."""
        first = 0
        while any(first + i in self.groups for i in range(count)):
            first += 1
        self.groups.update(range(first, first + count))
        return first


def _name(mem: Any, address: int) -> bytes:
    return mem.read(address, GENL_NAMSIZ).split(b"\0", 1)[0]


def _u8(mem: Any, address: int) -> int:
    return mem.read(address, 1)[0]


def _commands(ctx: Any, family: int) -> list[tuple[int, int, int, int]] | None:
    """(cmd, doit, dumpit, validate) of every operation, or None if a count
    has no array."""
    mem, f = ctx.mem, ctx.kernel.layouts[FAMILY]
    found = []
    for count, array, kind in ((f.n_ops, f.ops, OP), (f.n_small_ops, f.small_ops, SMALL_OP)):
        n, ops, op_layout = _u8(mem, family + count), mem.read_u64(family + array), ctx.kernel.layouts[kind]
        if n and not ops:
            return None
        for op in range(ops, ops + n * op_layout.size, op_layout.size):
            found.append((_u8(mem, op + op_layout.cmd), mem.read_u64(op + op_layout.doit),
                          mem.read_u64(op + op_layout.dumpit), _u8(mem, op + op_layout.validate)))
    return found


def _validate_ops(ctx: Any, family: int) -> int:
    """genl_validate_ops()."""
    commands = _commands(ctx, family)
    if commands is None:
        warn(ctx, "WARN_ON(family->n_ops && !family->ops)", "net/netlink/genetlink.c:470",
             "genl_validate_ops")
        return -errno.EINVAL
    resv_start_op = _u8(ctx.mem, family + ctx.kernel.layouts[FAMILY].resv_start_op)
    seen: set[int] = set()
    for cmd, doit, dumpit, validate in commands:
        if not doit and not dumpit:
            return -errno.EINVAL
        if cmd >= resv_start_op and validate:
            warn(ctx, "WARN_ON(op.cmd >= family->resv_start_op && op.validate)",
                 "net/netlink/genetlink.c:481", "genl_validate_ops")
            return -errno.EINVAL
        if cmd in seen:
            return -errno.EINVAL
        seen.add(cmd)
    return 0


def _validate_mcgrps(ctx: Any, family: int) -> int:
    mem, f, grp = ctx.mem, ctx.kernel.layouts[FAMILY], ctx.kernel.layouts[MCGRP]
    groups = mem.read_u64(family + f.mcgrps)
    for i in range(_u8(mem, family + f.n_mcgrps)):
        raw = mem.read(groups + i * grp.size + grp.name, GENL_NAMSIZ)
        if b"\0" not in raw or raw[0] == 0:
            warn(ctx, "WARN_ON(grp->name[0] == '\\0')", "net/netlink/genetlink.c:374",
                 "genl_validate_assign_mc_groups")
            return -errno.EINVAL
    return 0


@export("genl_register_family", "int genl_register_family(struct genl_family *family)", nargs=1)
def genl_register_family(ctx: Any, family: int) -> int:
    mem, f = ctx.mem, ctx.kernel.layouts[FAMILY]
    err = _validate_ops(ctx, family)
    if err:
        return err
    registry = ctx.kernel.registrations.registry("genl_family")
    name = _name(mem, family + f.name)
    if any(entry.data[0] == name for entry in registry.entries()):
        return -errno.EEXIST
    state = ctx.kernel.subsystem(Families)
    taken = {entry.data[1] for entry in registry.entries()}
    fixed = FIXED_IDS.get(name.decode("utf-8", "replace"))
    family_id = (fixed if fixed not in taken else -errno.ENOSPC) if fixed else state.alloc_id(taken)
    if family_id < 0:
        return family_id
    err = _validate_mcgrps(ctx, family)
    if err:
        return err
    n_mcgrps = _u8(mem, family + f.n_mcgrps)
    offset = fixed if fixed and n_mcgrps == 1 else state.alloc_groups(n_mcgrps) if n_mcgrps else 0
    mem.write_u32(family + f.id, family_id)
    mem.write_u32(family + f.mcgrp_offset, offset)
    registry.add(family, f"generic netlink family {name.decode('utf-8', 'replace')}",
                 owner=owner_of(ctx.kernel, family, mem.read_u64(family + f.module)),
                 address=family, data=(name, family_id, range(offset, offset + n_mcgrps)),
                 on_leftover=lambda entry: _release_groups(state, entry))
    return 0


def _release_groups(state: Families, entry: Any) -> None:
    """genl_unregister_mc_groups(): the family's group ids are free again."""
    state.groups.difference_update(set(entry.data[2]) - RESERVED_GROUPS)


@export("genl_unregister_family", "int genl_unregister_family(const struct genl_family *family)",
        nargs=1)
def genl_unregister_family(ctx: Any, family: int) -> int:
    entry = ctx.kernel.registrations.registry("genl_family").remove(family)
    if entry is None:
        return -errno.ENOENT
    _release_groups(ctx.kernel.subsystem(Families), entry)
    return 0


# --- genl_mutex ------------------------------------------------------------------------
# genl_lock() is mutex_lock(&genl_mutex), the lock modules take around
# their own family's state (l2tp); a sleeping mutex on a kernel object.
# (Registering a family is atomic here, so the emulation does not take it.)

class GenlMutex:
    def __init__(self, kernel: Any) -> None:
        self.address = kernel.slab.alloc(32, None, zero=True)     # struct mutex


@export("genl_lock", "void genl_lock(void)", nargs=0)
def genl_lock(ctx: Any) -> Any:
    return mutex_lock(ctx, ctx.kernel.subsystem(GenlMutex).address)


@export("genl_unlock", "void genl_unlock(void)", nargs=0)
def genl_unlock(ctx: Any) -> None:
    mutex_unlock(ctx, ctx.kernel.subsystem(GenlMutex).address)
