"""net/ipv4/tcp_ulp.c: TCP upper layer protocols (`tcp_register_ulp`), what
kTLS (`tls`), SMC and espintcp attach to a TCP socket with
setsockopt(TCP_ULP, NAME).

As Linux: a ULP is known by its name (`tcp_ulp_find` compares the whole
name, up to TCP_ULP_NAME_MAX); a name already on `tcp_ulp_list` is -EEXIST,
with no message, as Linux says nothing either.  The list is in guest memory,
linked through the ops' `list` (list_add_tail_rcu), after the kernel's own
ULPs — "mptcp" where the .config builds MPTCP in, "espintcp" where it
builds INET_ESPINTCP in — which are kloader objects holding only their
names.  `tcp_unregister_ulp` unlinks with list_del_rcu's checks and waits
for an RCU grace period.  No socket ever attaches one (no TCP socket
exists), so a ULP's `init`/`release` never run.

`struct tcp_ulp_ops` {list, name, owner} is read at the running kernel's
offsets.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.rcu import synchronize_rcu
from ...kernel.registry import leftover_unlinks, owner_of
from ...lib.list import GuestList

ULP_OPS = struct("struct tcp_ulp_ops", "net/tcp.h", "list", "name", "owner")
STRUCTS = (ULP_OPS,)       # what these functions read at the kernel's offsets
TCP_ULP_NAME_MAX = 16
BUILTIN = (("mptcp", "MPTCP"), ("espintcp", "INET_ESPINTCP"))


class TcpUlps:
    """tcp_ulp_list of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.list = GuestList(kernel)
        self.builtin = {name for name, option in BUILTIN if kernel.builds_in(option)}


def _name(ctx: Any, ulp: int) -> str:
    raw = ctx.mem.read(ulp + ctx.kernel.layouts[ULP_OPS].name, TCP_ULP_NAME_MAX)
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def registered_names(kernel: Any) -> list[str]:
    """Every ULP name in list order, as tcp_get_available_ulp() lists them."""
    state, ops = kernel.subsystem(TcpUlps), kernel.layouts[ULP_OPS]
    names = [name for name, _ in BUILTIN if name in state.builtin]
    for node in state.list:
        raw = kernel.mem.read(node - ops.list + ops.name, TCP_ULP_NAME_MAX)
        names.append(raw.split(b"\0", 1)[0].decode("utf-8", "replace"))
    return names


@export("tcp_register_ulp", "int tcp_register_ulp(struct tcp_ulp_ops *type)", nargs=1)
def tcp_register_ulp(ctx: Any, ulp: int) -> int:
    name, ops = _name(ctx, ulp), ctx.kernel.layouts[ULP_OPS]
    if name in registered_names(ctx.kernel):
        return -errno.EEXIST
    state = ctx.kernel.subsystem(TcpUlps)
    state.list.add_tail(ctx, ulp + ops.list)
    ctx.kernel.registrations.registry("tcp_ulp").add(
        ulp, f"tcp ulp {name}", owner=owner_of(ctx.kernel, ulp, ctx.mem.read_u64(ulp + ops.owner)),
        address=ulp, data=(state.list, ops.list), on_leftover=leftover_unlinks)
    return 0


@export("tcp_unregister_ulp", "void tcp_unregister_ulp(struct tcp_ulp_ops *type)", nargs=1)
def tcp_unregister_ulp(ctx: Any, ulp: int) -> Any:
    GuestList.delete(ctx, ulp + ctx.kernel.layouts[ULP_OPS].list, rcu=True)
    ctx.kernel.registrations.registry("tcp_ulp").remove(ulp)
    return synchronize_rcu(ctx)
