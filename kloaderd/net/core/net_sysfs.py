"""net/core/net-sysfs.c: `/sys/class/net/NAME/`, where a user finds the
registered network devices and reads their attributes.

The directory lists init_net's registered devices as they are now (it is
generated on each lookup from the device tables of net_device.py), each
with Linux's read-only attributes in Linux's formats: `ifindex`, `type`,
`mtu`, `addr_len`, `addr_assign_type`, `tx_queue_len` ("%d"), `flags`
("%#x"), `address` and `broadcast` ("aa:bb:..", addr_len bytes),
`operstate` ("down" while the device is not running, as Linux says for
any device not up — no device is ever up here), `carrier` (-EINVAL while
not running, as Linux), `carrier_changes`, `carrier_up_count`,
`carrier_down_count`, and `name_assign_type` (-EINVAL when unknown).

Where kloader differs: Linux's entry is a symlink to
/sys/devices/virtual/net/NAME (or the parent device's); here it is the
directory itself, and the writable attributes (mtu, flags,
tx_queue_len, ...) are read-only.  The directory appears with the first
network device or netdevice notifier (the state is made on first use).
"""

from __future__ import annotations

import errno
from typing import Any, Callable

from ...errors import KernelError
from ...fs.tree import Content, Directory, Node, file_tree
from .net_device import NetDevices, shows_devices

LINK_STATE_START = 0
NET_NAME_UNKNOWN = 0


def _not_running(devs: NetDevices, dev: int) -> bool:
    return not devs.kernel.mem.read_u64(dev + devs.layout.state) & 1 << LINK_STATE_START


def _attributes(devs: NetDevices, dev: int) -> dict[str, Callable[[], str]]:
    mem, layout = devs.kernel.mem, devs.layout

    def u8(member: str) -> Callable[[], str]:
        return lambda: f"{mem.read_u8(dev + getattr(layout, member))}\n"

    def u32(member: str) -> Callable[[], str]:
        return lambda: f"{mem.read_u32(dev + getattr(layout, member))}\n"

    def hwaddr(address: Callable[[], int]) -> Callable[[], str]:
        return lambda: ":".join(f"{b:02x}" for b in mem.read(address(), mem.read_u8(
            dev + layout.addr_len))) + "\n"

    def carrier() -> str:
        if _not_running(devs, dev):
            raise KernelError(errno.EINVAL, "carrier: Invalid argument (the device is not up)")
        return f"{int(not mem.read_u64(dev + layout.state) & 4)}\n"

    def assign_type() -> str:
        kind = mem.read_u8(dev + layout.name_assign_type)
        if kind == NET_NAME_UNKNOWN:
            raise KernelError(errno.EINVAL, "name_assign_type: Invalid argument (unknown)")
        return f"{kind}\n"

    def changes() -> str:
        return f"{mem.read_u32(dev + layout.carrier_up_count) + mem.read_u32(dev + layout.carrier_down_count)}\n"

    return {
        "ifindex": lambda: f"{mem.read_u32(dev + layout.ifindex)}\n",
        "type": lambda: f"{mem.read_u16(dev + layout.type)}\n",
        "mtu": u32("mtu"), "tx_queue_len": u32("tx_queue_len"),
        "addr_len": u8("addr_len"), "addr_assign_type": u8("addr_assign_type"),
        "flags": lambda: f"{mem.read_u32(dev + layout.flags):#x}\n",
        "address": hwaddr(lambda: mem.read_u64(dev + layout.dev_addr)),
        "broadcast": hwaddr(lambda: dev + layout.broadcast),
        "operstate": lambda: "down\n" if _not_running(devs, dev) else "unknown\n",
        "carrier": carrier, "carrier_changes": changes,
        "carrier_up_count": u32("carrier_up_count"), "carrier_down_count": u32("carrier_down_count"),
        "name_assign_type": assign_type,
    }


def _content(show: Callable[[], str]) -> Content:
    def read(_file: Any) -> str:
        return show()
    return Content(read)


def _device_dir(devs: NetDevices, name: str, dev: int) -> Directory:
    directory = Directory(name, mode=0o755)
    for attr, show in _attributes(devs, dev).items():
        node = Node(attr, _content(show), mode=0o444, size=4096)
        node.parent = directory
        directory.children[attr] = node
    return directory


@shows_devices
def add_class(devs: NetDevices) -> None:
    """/sys/class/net, following the device tables."""
    file_tree(devs.kernel).mkdir("/sys/class/net", mode=0o755, generate=lambda: {
        name: _device_dir(devs, name, dev) for name, dev in devs.by_name.items()})


