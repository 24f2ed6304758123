"""net/ipv6/xfrm6_protocol.c: IPv6's IPsec protocol handlers
(`xfrm6_protocol_register`), as IPv4's (net/ipv4/xfrm4_protocol.py, whose
code serves both): ESP, AH and IPComp, priority order, the kernel's own
`inet6_add_protocol` handler for a protocol while it has handlers."""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ..ipv4.xfrm4_protocol import XFRM6, deregister, register

STRUCTS = (XFRM6,)         # what these functions read at the kernel's offsets


@export("xfrm6_protocol_register",
        "int xfrm6_protocol_register(struct xfrm6_protocol *handler, unsigned char protocol)", nargs=2)
def xfrm6_protocol_register(ctx: Any, handler: int, protocol: int) -> int:
    return register(ctx, "xfrm6", "inet6", handler, protocol)


@export("xfrm6_protocol_deregister",
        "int xfrm6_protocol_deregister(struct xfrm6_protocol *handler, unsigned char protocol)",
        nargs=2)
def xfrm6_protocol_deregister(ctx: Any, handler: int, protocol: int) -> Any:
    return deregister(ctx, "xfrm6", "inet6", handler, protocol)
