"""net/core/net-procfs.c: `/proc/net/dev`, the table of init_net's devices
and their counters that `ifconfig` and `ip -s link` users read.

As Linux's dev_seq_show: two header lines, then a line per registered
device in for_each_netdev's order, its name right-aligned in 6 columns
and its receive and transmit counters in Linux's widths (errors, drops,
fifo, frame as Linux sums them).

Where kloader differs: the counters are the device's `stats` (struct
net_device_stats), not what a driver's ndo_get_stats64 would add up from
its per-CPU counters — kloader moves no packet, so every counter a driver
keeps is zero either way and no driver code runs for a read.  The file
appears with the first network device or netdevice notifier (the state is
made on first use).
"""

from __future__ import annotations

from typing import Any

from ...fs.proc_net import ProcNet
from ...fs.tree import PROCFS, Content, file_tree
from .net_device import NetDevices, shows_devices

HEADER = ("Inter-|   Receive                                                |  Transmit\n"
          " face |bytes    packets errs drop fifo frame compressed multicast|"
          "bytes    packets errs drop fifo colls carrier compressed\n")
# struct net_device_stats, in order (unsigned long each, in every release)
STATS = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors", "rx_dropped",
         "tx_dropped", "multicast", "collisions", "rx_length_errors", "rx_over_errors",
         "rx_crc_errors", "rx_frame_errors", "rx_fifo_errors", "rx_missed_errors",
         "tx_aborted_errors", "tx_carrier_errors", "tx_fifo_errors", "tx_heartbeat_errors",
         "tx_window_errors", "rx_compressed", "tx_compressed")


def _line(devs: NetDevices, dev: int) -> str:
    mem = devs.kernel.mem
    raw = mem.read(dev + devs.layout.stats, 8 * len(STATS))
    s = {name: int.from_bytes(raw[8 * i:8 * i + 8], "little") for i, name in enumerate(STATS)}
    return (f"{devs.name(dev):>6}: {s['rx_bytes']:7} {s['rx_packets']:7} {s['rx_errors']:4} "
            f"{s['rx_dropped'] + s['rx_missed_errors']:4} {s['rx_fifo_errors']:4} "
            f"{s['rx_length_errors'] + s['rx_over_errors'] + s['rx_crc_errors'] + s['rx_frame_errors']:5} "
            f"{s['rx_compressed']:10} {s['multicast']:9} {s['tx_bytes']:8} {s['tx_packets']:7} "
            f"{s['tx_errors']:4} {s['tx_dropped']:4} {s['tx_fifo_errors']:4} {s['collisions']:5} "
            f"{s['tx_carrier_errors'] + s['tx_aborted_errors'] + s['tx_window_errors'] + s['tx_heartbeat_errors']:7} "
            f"{s['tx_compressed']:10}\n")


@shows_devices
def add_dev(devs: NetDevices) -> None:
    """/proc/net/dev in init_net's /proc/net."""
    devs.kernel.subsystem(ProcNet)

    def show(_file: Any) -> str:
        return HEADER + "".join(_line(devs, dev) for dev in devs.devices())
    file_tree(devs.kernel).add("/proc/net", "dev", Content(show), mode=0o444, removal=PROCFS)
