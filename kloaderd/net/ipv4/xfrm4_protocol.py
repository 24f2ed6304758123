"""net/ipv4/xfrm4_protocol.c (and, through the same code, net/ipv6's
xfrm6_protocol.c): the IPsec protocol handlers that ESP, AH and IPComp
modules and xfrm interfaces register (`xfrm4_protocol_register`).

As Linux 6.1: the protocol must be ESP (50), AH (51) or IPComp (108), else
-EINVAL; each has its list of handlers in descending `priority` order,
linked through `next` in the handlers themselves, and a second handler of
a priority already there is -EEXIST.  The first handler of a protocol makes
the kernel put its own IP protocol handler for it in place
(`inet_add_protocol` or `inet6_add_protocol` of xfrm's `esp4_protocol`,
...): "xfrm4_protocol_register: can't add protocol" and -EAGAIN when that
slot is taken.  Deregistering unlinks the handler (-ENOENT when it is not
there), the last one takes the kernel's protocol handler away again, and a
network RCU grace period passes before it returns.  A handler left
registered when its module goes is reported and unlinked.  Where kloader
differs: the kernel's own protocol handlers are placeholders (no packet
ever arrives to be handed to the xfrm handlers).

The handlers' `next` and `priority` (int) are read at the running
kernel's offsets of `struct xfrm4_protocol` or `struct xfrm6_protocol`.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.callback import finished
from ...kernel.layouts import Struct, struct
from ...kernel.printk import KERN_ERR
from ...kernel.rcu import synchronize_rcu
from ...kernel.registry import owner_of
from .protocol import add_protocol, del_protocol

XFRM4 = struct("struct xfrm4_protocol", "net/xfrm.h", "next", "priority")
XFRM6 = struct("struct xfrm6_protocol", "net/xfrm.h", "next", "priority")
HANDLER: dict[str, Struct] = {"xfrm4": XFRM4, "xfrm6": XFRM6}
STRUCTS = (XFRM4,)         # what these functions read at the kernel's offsets
PROTOCOLS = {50: "esp", 51: "ah", 108: "comp"}      # IPPROTO_ESP, IPPROTO_AH, IPPROTO_COMP
NET_PROTOCOL_SIZE = 32                               # xfrm's own handler objects


class XfrmProtocols:
    """Per family ("xfrm4", "xfrm6") and protocol: the handlers, first to
    last, and the kernel's own IP protocol handler object it adds."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.handlers: dict[tuple[str, int], list[int]] = {}
        self.netproto: dict[tuple[str, int], int] = {}

    def kernel_handler(self, family: str, protocol: int) -> int:
        """xfrm4_esp_protocol and friends: an object of the kernel's."""
        key = (family, protocol)
        if key not in self.netproto:
            address = self.kernel.slab.alloc(NET_PROTOCOL_SIZE, None, zero=True)
            if not address:
                raise MemoryError(f"no memory for {family} protocol {protocol}")
            self.netproto[key] = address
        return self.netproto[key]

    def relink(self, mem: Any, family: str, protocol: int) -> None:
        """Each handler's `next` names the one after it, the last NULL."""
        chain = self.handlers.get((family, protocol), [])
        next_ = self.kernel.layouts[HANDLER[family]].next
        for handler, after in zip(chain, [*chain[1:], 0]):
            mem.write_u64(handler + next_, after)


def _priority(ctx: Any, family: str, handler: int) -> int:
    value = ctx.mem.read_u32(handler + ctx.kernel.layouts[HANDLER[family]].priority)
    return value - (1 << 32) if value >> 31 else value


def register(ctx: Any, family: str, ip: str, handler: int, protocol: int) -> int:
    protocol &= 0xFF
    if protocol not in PROTOCOLS:
        return -errno.EINVAL
    state = ctx.kernel.subsystem(XfrmProtocols)
    mem = ctx.mem
    chain = state.handlers.setdefault((family, protocol), [])
    first = not chain
    priority = _priority(ctx, family, handler)
    if any(_priority(ctx, family, other) == priority for other in chain):
        return -errno.EEXIST
    at = next((i for i, other in enumerate(chain) if _priority(ctx, family, other) < priority),
              len(chain))
    chain.insert(at, handler)
    state.relink(mem, family, protocol)
    name = ctx.kernel.symbolize(handler, False) or f"{handler:#x}"
    ctx.kernel.registrations.registry(f"{family}_protocol").add(
        handler, f"{family} {PROTOCOLS[protocol]} handler {name}, priority {priority}",
        owner=owner_of(ctx.kernel, handler), address=handler,
        data=(state, family, ip, protocol), on_leftover=_forget)
    if first and add_protocol(ctx, ip, state.kernel_handler(family, protocol), protocol):
        ctx.kernel.log.emit(KERN_ERR, f"{family}_protocol_register: can't add protocol",
                            getattr(ctx.module, "name", None))
        return -errno.EAGAIN
    return 0


def _unlink(state: XfrmProtocols, family: str, protocol: int, handler: int) -> bool:
    """Take `handler` off its list: whether the list is now empty."""
    chain = state.handlers[family, protocol]
    chain.remove(handler)
    state.relink(state.kernel.mem, family, protocol)
    return not chain


def _forget(entry: Any) -> None:
    """on_leftover: the handler's module is going."""
    state, family, ip, protocol = entry.data
    if _unlink(state, family, protocol, entry.address):
        state.kernel.registrations.registry(f"{ip}_protocol").remove(protocol)


async def deregister(ctx: Any, family: str, ip: str, handler: int, protocol: int) -> int:
    protocol &= 0xFF
    if protocol not in PROTOCOLS:
        return -errno.EINVAL
    state = ctx.kernel.subsystem(XfrmProtocols)
    ret = -errno.ENOENT
    if handler in state.handlers.get((family, protocol), []):
        ctx.kernel.registrations.registry(f"{family}_protocol").remove(handler)
        _unlink(state, family, protocol, handler)
        ret = 0
    if not state.handlers.get((family, protocol)):
        if await finished(del_protocol(ctx, ip, state.kernel_handler(family, protocol), protocol)):
            ctx.kernel.log.emit(KERN_ERR, f"{family}_protocol_deregister: can't remove protocol",
                                getattr(ctx.module, "name", None))
            ret = -errno.EAGAIN
    await finished(synchronize_rcu(ctx))                  # synchronize_net()
    return ret


@export("xfrm4_protocol_register",
        "int xfrm4_protocol_register(struct xfrm4_protocol *handler, unsigned char protocol)", nargs=2)
def xfrm4_protocol_register(ctx: Any, handler: int, protocol: int) -> int:
    return register(ctx, "xfrm4", "inet", handler, protocol)


@export("xfrm4_protocol_deregister",
        "int xfrm4_protocol_deregister(struct xfrm4_protocol *handler, unsigned char protocol)",
        nargs=2)
def xfrm4_protocol_deregister(ctx: Any, handler: int, protocol: int) -> Any:
    return deregister(ctx, "xfrm4", "inet", handler, protocol)
