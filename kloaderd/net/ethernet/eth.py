"""net/ethernet/eth.c: `ether_setup`, the setup callback of Ethernet-like
devices (`alloc_etherdev`'s, and many drivers' own setup calls it first).

As Linux: type ARPHRD_ETHER, hard and minimum header length ETH_HLEN (14),
MTU ETH_DATA_LEN (1500) within [ETH_MIN_MTU (68), ETH_DATA_LEN], address
length ETH_ALEN (6), tx_queue_len DEFAULT_TX_QUEUE_LEN (1000), flags
IFF_BROADCAST | IFF_MULTICAST, IFF_TX_SKB_SHARING added to the private
flags, and the broadcast address ff:ff:ff:ff:ff:ff.  `header_ops` is
Linux's `eth_header_ops` where the running kernel exports one, else NULL:
kloader builds no Ethernet header (no packet is ever sent).  The members
are the running kernel's (net_device.py's layout; the low 32 bits of the
private flags, a bit-field in 6.12).
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.layouts import constants
from ..core import net_device
from ..core.net_device import DEFAULT_TX_QUEUE_LEN, NET_DEVICE

PRIV_FLAGS = constants("enum netdev_priv_flags", "linux/netdevice.h", "IFF_TX_SKB_SHARING")
STRUCTS = (*net_device.STRUCTS, PRIV_FLAGS)

ARPHRD_ETHER = 1
ETH_HLEN, ETH_ALEN, ETH_DATA_LEN, ETH_MIN_MTU = 14, 6, 1500, 68
IFF_BROADCAST, IFF_MULTICAST = 0x2, 0x1000


def priv_flags_offset(layout: Any) -> int:
    """Where the (low 32 bits of the) private flags are in this release."""
    return layout.priv_flags if layout.priv_flags is not None else layout.priv_flags_fast


@export("ether_setup", "void ether_setup(struct net_device *dev)", nargs=1)
def ether_setup(ctx: Any, dev: int) -> None:
    mem, layout = ctx.mem, ctx.kernel.layouts[NET_DEVICE]
    header_ops = ctx.kernel.symbols.get("eth_header_ops")
    mem.write_u64(dev + layout.header_ops, header_ops.address if header_ops is not None else 0)
    mem.write_u16(dev + layout.type, ARPHRD_ETHER)
    mem.write_u16(dev + layout.hard_header_len, ETH_HLEN)
    mem.write_u8(dev + layout.min_header_len, ETH_HLEN)
    mem.write_u32(dev + layout.mtu, ETH_DATA_LEN)
    mem.write_u32(dev + layout.min_mtu, ETH_MIN_MTU)
    mem.write_u32(dev + layout.max_mtu, ETH_DATA_LEN)
    mem.write_u8(dev + layout.addr_len, ETH_ALEN)
    mem.write_u32(dev + layout.tx_queue_len, DEFAULT_TX_QUEUE_LEN)
    mem.write_u32(dev + layout.flags, IFF_BROADCAST | IFF_MULTICAST)
    flags = dev + priv_flags_offset(layout)
    mem.write_u32(flags, mem.read_u32(flags) | ctx.kernel.layouts[PRIV_FLAGS].IFF_TX_SKB_SHARING)
    mem.write(dev + layout.broadcast, b"\xff" * ETH_ALEN)
