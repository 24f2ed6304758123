"""net/ipv4/tcp_cong.c: registering TCP congestion control algorithms.

As Linux 6.1: an algorithm must implement `ssthresh`, `undo_cwnd` and one of
`cong_avoid`/`cong_control`, else "TCP: NAME does not implement required
ops" and -EINVAL; its `key` is jhash(name, 16, strlen(name)); a key already
on `tcp_cong_list` (or zero) is "TCP: NAME already registered or non-unique
key" and -EEXIST.  The list is in guest memory, linked through the
algorithm's `list` (list_add_tail_rcu), after the kernel's own algorithms
(reno, and those the profile's .config builds in: cubic on Debian), which
are kloader objects holding only their names and keys.  Unregistering
unlinks with list_del_rcu's checks, then waits for an RCU grace period.

`struct tcp_congestion_ops` {ssthresh, cong_avoid, cong_control,
undo_cwnd, name (16 bytes), owner, list, key} is read at the running
kernel's offsets.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.layouts import struct
from ...kernel.printk import KERN_ERR, KERN_NOTICE
from ...kernel.rcu import synchronize_rcu
from ...lib.jhash import jhash
from ...lib.list import GuestList

CA_OPS = struct("struct tcp_congestion_ops", "net/tcp.h", "ssthresh", "cong_avoid", "cong_control",
                "undo_cwnd", "name", "owner", "list", "key")
STRUCTS = (CA_OPS,)        # what these functions read at the kernel's offsets
TCP_CA_NAME_MAX = 16
TCP_CA_UNSPEC = 0
# The kernel's own: reno always; the others when the .config builds them in.
BUILTIN = (("reno", None), ("cubic", "TCP_CONG_CUBIC"), ("bic", "TCP_CONG_BIC"),
           ("htcp", "TCP_CONG_HTCP"), ("bbr", "TCP_CONG_BBR"), ("westwood", "TCP_CONG_WESTWOOD"),
           ("vegas", "TCP_CONG_VEGAS"), ("dctcp", "TCP_CONG_DCTCP"))


def ca_key(name: bytes) -> int:
    """jhash(ca->name, sizeof(ca->name), strlen(ca->name))."""
    name = name.split(b"\0", 1)[0][:TCP_CA_NAME_MAX]
    return jhash(name.ljust(TCP_CA_NAME_MAX, b"\0"), len(name))


class TcpCongestion:
    """tcp_cong_list of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.list = GuestList(kernel)
        profile = kernel.profile
        builtin = [name for name, option in BUILTIN if option is None or (
            profile.enabled(option) if profile is not None else name == "cubic")]
        self.builtin_keys = {ca_key(name.encode()): name for name in builtin}


def _name(ctx: Any, ca: int) -> str:
    return ctx.mem.read(ca + ctx.kernel.layouts[CA_OPS].name, TCP_CA_NAME_MAX).split(b"\0", 1)[0].decode("utf-8", "replace")


def _log(ctx: Any, level: int, text: str) -> None:
    ctx.kernel.log.emit(level, f"TCP: {text}", getattr(ctx.module, "name", None))


@export("tcp_register_congestion_control",
        "int tcp_register_congestion_control(struct tcp_congestion_ops *ca)", nargs=1, gpl=True)
def tcp_register_congestion_control(ctx: Any, ca: int) -> int:
    mem, name, ops = ctx.mem, _name(ctx, ca), ctx.kernel.layouts[CA_OPS]
    if not mem.read_u64(ca + ops.ssthresh) or not mem.read_u64(ca + ops.undo_cwnd) or not (
            mem.read_u64(ca + ops.cong_avoid) or mem.read_u64(ca + ops.cong_control)):
        _log(ctx, KERN_ERR, f"{name} does not implement required ops")
        return -errno.EINVAL
    key = ca_key(mem.read(ca + ops.name, TCP_CA_NAME_MAX))
    mem.write_u32(ca + ops.key, key)
    state = ctx.kernel.subsystem(TcpCongestion)
    taken = key in state.builtin_keys or any(
        mem.read_u32(node - ops.list + ops.key) == key for node in state.list)
    if key == TCP_CA_UNSPEC or taken:
        _log(ctx, KERN_NOTICE, f"{name} already registered or non-unique key")
        return -errno.EEXIST
    state.list.add_tail(ctx, ca + ops.list)
    regs = ctx.kernel.registrations
    owner = ctx.kernel.module_by_struct(mem.read_u64(ca + ops.owner)) or regs.module_at(ca)
    regs.registry("tcp_congestion").add(ca, f"tcp congestion control {name}", owner=owner,
                                        address=ca, data=state, on_leftover=_unlink_leftover)
    return 0


@export("tcp_unregister_congestion_control",
        "void tcp_unregister_congestion_control(struct tcp_congestion_ops *ca)", nargs=1,
        gpl=True)
def tcp_unregister_congestion_control(ctx: Any, ca: int) -> Any:
    state = ctx.kernel.subsystem(TcpCongestion)
    state.list.delete(ctx, ca + ctx.kernel.layouts[CA_OPS].list, rcu=True)
    ctx.kernel.registrations.registry("tcp_congestion").remove(ca)
    return synchronize_rcu(ctx)


def _unlink_leftover(entry: Any) -> None:
    state = entry.data
    state.list.unlink_quietly(entry.address + state.kernel.layouts[CA_OPS].list)
