"""net/core/sock_diag.c: socket diagnostics handlers, one per address
family (`sock_diag_register`), and inet_diag's handler of the old
TCPDIAG_GETSOCK requests (`sock_diag_register_inet_compat`).

As Linux 6.1: a family at or beyond AF_MAX (46) is -EINVAL, a family
already served -EBUSY; unregistering is the WARN_ON of a handler that is
not the one registered, and empties the slot either way.  No family's
handler is built into Debian's kernel.  There is one compat slot:
registering fills it (whatever was there), unregistering empties it and
WARNs (once) when it held other ops (Debian's 6.1 has 6.9's
`struct sock_diag_inet_compat {owner, fn}` form, as 6.12).  sock_diag_handler.family (a u8) is
read at the running kernel's offset.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.panic import warn, warn_once
from ...kernel.registry import owner_of

HANDLER = struct("struct sock_diag_handler", "linux/sock_diag.h", "family")
INET_COMPAT = struct("struct sock_diag_inet_compat", "linux/sock_diag.h", "owner", "fn")
STRUCTS = (HANDLER, INET_COMPAT)       # what these functions read at the kernel's offsets
AF_MAX = 46


@export("sock_diag_register", "int sock_diag_register(const struct sock_diag_handler *h)",
        nargs=1)
def sock_diag_register(ctx: Any, h: int) -> int:
    family = ctx.mem.read(h + ctx.kernel.layouts[HANDLER].family, 1)[0]
    if family >= AF_MAX:
        return -errno.EINVAL
    registry = ctx.kernel.registrations.registry("sock_diag")
    if registry.find(family) is not None:
        return -errno.EBUSY
    registry.add(family, f"sock_diag handler for family {family}", owner=owner_of(ctx.kernel, h),
                 address=h)
    return 0


@export("sock_diag_unregister", "void sock_diag_unregister(const struct sock_diag_handler *hnld)",
        nargs=1)
def sock_diag_unregister(ctx: Any, h: int) -> None:
    family = ctx.mem.read(h + ctx.kernel.layouts[HANDLER].family, 1)[0]
    if family >= AF_MAX:
        return
    registry = ctx.kernel.registrations.registry("sock_diag")
    entry = registry.remove(family)
    if entry is None or entry.address != h:
        warn(ctx, "", "net/core/sock_diag.c:206", "sock_diag_unregister")


@export("sock_diag_register_inet_compat",
        "void sock_diag_register_inet_compat(const struct sock_diag_inet_compat *ptr)", nargs=1,
        gpl=True)
def sock_diag_register_inet_compat(ctx: Any, ptr: int) -> None:
    """xchg(&inet_rcv_compat, ptr)."""
    registry = ctx.kernel.registrations.registry("sock_diag_inet_compat")
    mem, c = ctx.mem, ctx.kernel.layouts[INET_COMPAT]
    registry.remove(0)
    registry.add(0, "sock_diag inet compat handler", address=ptr,
                 owner=owner_of(ctx.kernel, ptr, mem.read_u64(ptr + c.owner)),
                 points_to=(mem.read_u64(ptr + c.fn),))


@export("sock_diag_unregister_inet_compat",
        "void sock_diag_unregister_inet_compat(const struct sock_diag_inet_compat *ptr)", nargs=1,
        gpl=True)
def sock_diag_unregister_inet_compat(ctx: Any, ptr: int) -> None:
    """old = xchg(&inet_rcv_compat, NULL); WARN_ON_ONCE(old != ptr)."""
    old = ctx.kernel.registrations.registry("sock_diag_inet_compat").remove(0)
    if old is None or old.address != ptr:
        warn_once(ctx, "", "net/core/sock_diag.c:199", "sock_diag_unregister_inet_compat")
