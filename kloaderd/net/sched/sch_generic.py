"""net/sched/sch_generic.c: `netif_carrier_on` / `netif_carrier_off`, how a
driver says its link came up or went down.

As Linux: the carrier is the absence of __LINK_STATE_NOCARRIER in
`dev->state` (`netif_carrier_ok()`, an inline, reads that bit); a change
of it on a registered device counts in `carrier_up_count` /
`carrier_down_count`.  Linux then fires a link-watch event that recomputes
`operstate` and, for a device that is up, sends NETDEV_CHANGE: kloader has
no link-watch work and no device is ever up, so `operstate` stays what
the driver set.  Members at the running kernel's offsets.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ..core import net_device
from ..core.net_device import LINK_STATE_NOCARRIER, NET_DEVICE, NETREG_UNINITIALIZED, net_devices

STRUCTS = net_device.STRUCTS
NOCARRIER = 1 << LINK_STATE_NOCARRIER


def _change(ctx: Any, dev: int, off: bool) -> None:
    mem, layout = ctx.mem, ctx.kernel.layouts[NET_DEVICE]
    state = mem.read_u64(dev + layout.state)
    if bool(state & NOCARRIER) == off:
        return
    mem.write_u64(dev + layout.state, state ^ NOCARRIER)
    if net_devices(ctx.kernel).reg_state(dev) == NETREG_UNINITIALIZED:
        return
    count = dev + (layout.carrier_down_count if off else layout.carrier_up_count)
    mem.write_u32(count, (mem.read_u32(count) + 1) & 0xFFFFFFFF)


@export("netif_carrier_on", "void netif_carrier_on(struct net_device *dev)", nargs=1)
def netif_carrier_on(ctx: Any, dev: int) -> None:
    _change(ctx, dev, off=False)


@export("netif_carrier_off", "void netif_carrier_off(struct net_device *dev)", nargs=1)
def netif_carrier_off(ctx: Any, dev: int) -> None:
    _change(ctx, dev, off=True)
