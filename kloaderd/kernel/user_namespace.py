"""kernel/user_namespace.c: mapping user and group ids between a user
namespace and the kernel (`make_kuid`, `from_kuid`, ...).

kloader has one user namespace, `init_user_ns`, whose maps are Linux's
identity extent: ids 0 to 4294967294 map to themselves, and (uid_t)-1 is
INVALID_UID both ways.  `from_kuid_munged` answers `overflowuid` (65534)
for an id with no mapping, as Linux does.  A namespace other than
`init_user_ns` cannot exist here, so a call naming one is not emulated
(it oopses naming the function) rather than answered.

`init_user_ns` itself stays a not-emulated object: modules pass its
address, and one that reads its fields oopses naming it.
"""

from __future__ import annotations

from typing import Any

from .api import export
from .oops import NotEmulated

INVALID_ID = 0xFFFFFFFF
OVERFLOW_ID = 65534            # overflowuid / overflowgid (DEFAULT_OVERFLOWUID)


def _identity(ctx: Any, function: str, ns: int, value: int) -> int:
    init = ctx.kernel.symbols.get("init_user_ns")
    if init is None or ns != init.address:
        raise NotEmulated(function)
    return value & 0xFFFFFFFF      # INVALID_ID is outside the extent and stays itself


@export("make_kuid", "kuid_t make_kuid(struct user_namespace *from, uid_t uid)", nargs=2)
def make_kuid(ctx: Any, ns: int, uid: int) -> int:
    return _identity(ctx, "make_kuid", ns, uid)


@export("make_kgid", "kgid_t make_kgid(struct user_namespace *from, gid_t gid)", nargs=2)
def make_kgid(ctx: Any, ns: int, gid: int) -> int:
    return _identity(ctx, "make_kgid", ns, gid)


@export("from_kuid", "uid_t from_kuid(struct user_namespace *to, kuid_t uid)", nargs=2)
def from_kuid(ctx: Any, ns: int, uid: int) -> int:
    return _identity(ctx, "from_kuid", ns, uid)


@export("from_kgid", "gid_t from_kgid(struct user_namespace *to, kgid_t gid)", nargs=2)
def from_kgid(ctx: Any, ns: int, gid: int) -> int:
    return _identity(ctx, "from_kgid", ns, gid)


@export("from_kuid_munged", "uid_t from_kuid_munged(struct user_namespace *to, kuid_t uid)",
        nargs=2)
def from_kuid_munged(ctx: Any, ns: int, uid: int) -> int:
    mapped = _identity(ctx, "from_kuid_munged", ns, uid)
    return OVERFLOW_ID if mapped == INVALID_ID else mapped


@export("from_kgid_munged", "gid_t from_kgid_munged(struct user_namespace *to, kgid_t gid)",
        nargs=2)
def from_kgid_munged(ctx: Any, ns: int, gid: int) -> int:
    mapped = _identity(ctx, "from_kgid_munged", ns, gid)
    return OVERFLOW_ID if mapped == INVALID_ID else mapped
