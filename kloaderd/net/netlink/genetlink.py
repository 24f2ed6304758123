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
gets ids and group ids Linux would have given a built-in one.  Layouts
(Linux 6.1 x86-64): genl_family {id@0, name@8 (char[16]), mcgrp_offset@32,
n_ops@37, n_small_ops@38, n_mcgrps@39, resv_start_op@40, ops@72,
small_ops@80, mcgrps@88, module@96}; genl_ops (48 bytes) {doit@0,
dumpit@16, cmd@44, validate@47}; genl_small_ops (24) {doit@0, dumpit@8,
cmd@16, validate@19}; genl_multicast_group (17) {name@0}.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.panic import warn
from ...kernel.registry import owner_of

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

ID, NAME, MCGRP_OFFSET, N_OPS, N_SMALL_OPS, N_MCGRPS, RESV_START_OP = 0, 8, 32, 37, 38, 39, 40
OPS, SMALL_OPS, MCGRPS, MODULE = 72, 80, 88, 96
OP_SIZE, OP_DOIT, OP_DUMPIT, OP_CMD, OP_VALIDATE = 48, 0, 16, 44, 47
SOP_SIZE, SOP_DOIT, SOP_DUMPIT, SOP_CMD, SOP_VALIDATE = 24, 0, 8, 16, 19
MCGRP_SIZE = 17
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


def _commands(mem: Any, family: int) -> list[tuple[int, int, int, int]] | None:
    """(cmd, doit, dumpit, validate) of every operation, or None if a count
    has no array."""
    n_ops, n_small = mem.read(family + N_OPS, 2)
    ops, small = mem.read_u64(family + OPS), mem.read_u64(family + SMALL_OPS)
    if n_ops and not ops or n_small and not small:
        return None
    found = []
    for i in range(n_ops):
        op = ops + i * OP_SIZE
        found.append((mem.read(op + OP_CMD, 1)[0], mem.read_u64(op + OP_DOIT),
                      mem.read_u64(op + OP_DUMPIT), mem.read(op + OP_VALIDATE, 1)[0]))
    for i in range(n_small):
        op = small + i * SOP_SIZE
        found.append((mem.read(op + SOP_CMD, 1)[0], mem.read_u64(op + SOP_DOIT),
                      mem.read_u64(op + SOP_DUMPIT), mem.read(op + SOP_VALIDATE, 1)[0]))
    return found


def _validate_ops(ctx: Any, family: int) -> int:
    """genl_validate_ops()."""
    commands = _commands(ctx.mem, family)
    if commands is None:
        warn(ctx, "WARN_ON(family->n_ops && !family->ops)", "net/netlink/genetlink.c:470",
             "genl_validate_ops")
        return -errno.EINVAL
    resv_start_op = ctx.mem.read(family + RESV_START_OP, 1)[0]
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
    mem = ctx.mem
    groups = mem.read_u64(family + MCGRPS)
    for i in range(mem.read(family + N_MCGRPS, 1)[0]):
        raw = mem.read(groups + i * MCGRP_SIZE, GENL_NAMSIZ)
        if b"\0" not in raw or raw[0] == 0:
            warn(ctx, "WARN_ON(grp->name[0] == '\\0')", "net/netlink/genetlink.c:374",
                 "genl_validate_assign_mc_groups")
            return -errno.EINVAL
    return 0


@export("genl_register_family", "int genl_register_family(struct genl_family *family)", nargs=1)
def genl_register_family(ctx: Any, family: int) -> int:
    mem = ctx.mem
    err = _validate_ops(ctx, family)
    if err:
        return err
    registry = ctx.kernel.registrations.registry("genl_family")
    name = _name(mem, family + NAME)
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
    n_mcgrps = mem.read(family + N_MCGRPS, 1)[0]
    offset = fixed if fixed and n_mcgrps == 1 else state.alloc_groups(n_mcgrps) if n_mcgrps else 0
    mem.write_u32(family + ID, family_id)
    mem.write_u32(family + MCGRP_OFFSET, offset)
    registry.add(family, f"generic netlink family {name.decode('utf-8', 'replace')}",
                 owner=owner_of(ctx.kernel, family, mem.read_u64(family + MODULE)),
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
