"""net/core/dev.c: packet handlers (`dev_add_pack`), GRO/GSO offloads
(`dev_add_offload`), netdevice notifiers (`register_netdevice_notifier`)
and `synchronize_net`, the network's RCU grace period.

As Linux 6.1: a handler for ETH_P_ALL goes on `ptype_all`, any other on
its `ptype_base` hash bucket (type & 15), at the head (list_add_rcu); an
offload goes on `offload_base` before the first entry of higher priority
value.  Neither can fail.  Removing one not there is Linux's pr_warn
"dev_remove_pack: %p not found" (or dev_remove_offload's) and, either way,
a network RCU grace period (synchronize_net).  The lists are in guest
memory, so a module following `list` finds Linux's neighbours; the kernel's
own handlers (IPv4, ARP, IPv6) are not on them.

`dev_valid_name(name)` is Linux's check of an interface name: not empty,
shorter than IFNAMSIZ (16), not "." or "..", and no '/', ':' or white
space (the kernel's isspace, which counts 0xa0).

A netdevice notifier goes on `netdev_chain` (a raw chain), or on a
namespace's own `net->netdev_chain`, as any notifier block does
(`kernel/notifier.py`: priority order, -EEXIST twice, -ENOENT absent),
under `pernet_ops_rwsem` and the RTNL as Linux takes them, then replays
NETDEV_REGISTER to the new block for every device already registered
(net_device.py); a refusal sends NETDEV_UNREGISTER to those already told,
takes the block off again and is the errno.  Unregistering replays
NETDEV_UNREGISTER.  The chains are called as devices come and go
(net_device.py's call_notifiers).

`udp_tunnel_nic_ops` (`const struct udp_tunnel_nic_ops *`, NULL) is a
plain kernel variable: `udp_tunnel`'s init points it at its own table and
its exit sets it back to NULL, each under the RTNL; drivers and the
`udp_tunnel_nic_*` inlines read it (with no devices, nothing calls
through it here).

packet_type {type (__be16), list}, packet_offload {type, priority (u16),
list} and net {netdev_chain} are read at the running kernel's offsets.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.kdata import DataExport, export_data
from ...kernel.layouts import struct
from ...kernel.notifier import NB, chain_register, chain_unregister
from ...kernel.printk import KERN_WARNING, vsnprintf
from ...kernel.rcu import synchronize_rcu
from ...kernel.registry import record_listed
from ...lib.list import GuestList
from . import net_device, net_namespace
from .net_device import (IFNAMSIZ, call_notifiers, net_devices, netdev_chain_head, notifier_to_errno,
                         valid_name)
from .net_namespace import NET, pernet_ops_locked
from .rtnetlink import rtnl_locked

PACKET_TYPE = struct("struct packet_type", "linux/netdevice.h", "type", "list")
PACKET_OFFLOAD = struct("struct packet_offload", "linux/netdevice.h", "type", "priority", "list")
# what these functions read at the kernel's offsets, and the namespaces' they lock
STRUCTS = (PACKET_TYPE, PACKET_OFFLOAD, NB, *net_namespace.STRUCTS, *net_device.STRUCTS)
ETH_P_ALL = 0x0003
PTYPE_HASH_SIZE = 16


export_data("udp_tunnel_nic_ops", DataExport(lambda _profile: 8))     # a pointer, any release


class Packets:
    def __init__(self, kernel: Any) -> None:
        self.all = GuestList(kernel)
        self.base = [GuestList(kernel) for _ in range(PTYPE_HASH_SIZE)]
        self.offloads = GuestList(kernel)


def _type(mem: Any, obj: int) -> int:
    """A __be16 as the host reads it (ntohs)."""
    return int.from_bytes(mem.read(obj, 2), "big")


def _u16(mem: Any, address: int) -> int:
    return int.from_bytes(mem.read(address, 2), "little")


def _bucket(ctx: Any, pt: int) -> GuestList:
    state = ctx.kernel.subsystem(Packets)
    kind = _type(ctx.mem, pt + ctx.kernel.layouts[PACKET_TYPE].type)
    # ptype_head(): the hash is of the raw __be16, ntohs(type) & PTYPE_HASH_MASK
    return state.all if kind == ETH_P_ALL else state.base[kind & (PTYPE_HASH_SIZE - 1)]


def _not_found(ctx: Any, function: str, obj: int) -> None:
    text = vsnprintf(f"{function}: %p not found".encode(), iter([obj]), mem=ctx.mem)
    ctx.kernel.log.emit(KERN_WARNING, text.decode(), getattr(ctx.module, "name", None))


@export("dev_add_pack", "void dev_add_pack(struct packet_type *pt)", nargs=1)
def dev_add_pack(ctx: Any, pt: int) -> None:
    layout, bucket = ctx.kernel.layouts[PACKET_TYPE], _bucket(ctx, pt)
    bucket.add(ctx, pt + layout.list)
    record_listed(ctx.kernel, "packet_type", pt,
                  f"packet handler for ethertype {_type(ctx.mem, pt + layout.type):#06x}", bucket,
                  layout.list)


@export("dev_remove_pack", "void dev_remove_pack(struct packet_type *pt)", nargs=1)
def dev_remove_pack(ctx: Any, pt: int) -> Any:
    return _remove(ctx, "packet_type", "dev_remove_pack", pt, ctx.kernel.layouts[PACKET_TYPE].list)


def _remove(ctx: Any, subsystem: str, function: str, obj: int, offset: int) -> Any:
    """Unlink (list_del_rcu) or warn that it was not there; synchronize_net()."""
    entry = ctx.kernel.registrations.registry(subsystem).remove(obj)
    if entry is None:
        _not_found(ctx, function, obj)
    else:
        entry.data[0].delete(ctx, obj + offset, rcu=True)
    return synchronize_rcu(ctx)


@export("dev_add_offload", "void dev_add_offload(struct packet_offload *po)", nargs=1)
def dev_add_offload(ctx: Any, po: int) -> None:
    mem, offloads = ctx.mem, ctx.kernel.subsystem(Packets).offloads
    layout = ctx.kernel.layouts[PACKET_OFFLOAD]
    priority = _u16(mem, po + layout.priority)
    before = next((node for node in offloads
                   if _u16(mem, node - layout.list + layout.priority) > priority), offloads.head)
    offloads.insert_before(ctx, po + layout.list, before)
    record_listed(ctx.kernel, "packet_offload", po,
                  f"packet offload for ethertype {_type(mem, po + layout.type):#06x}", offloads,
                  layout.list)


@export("dev_remove_offload", "void dev_remove_offload(struct packet_offload *po)", nargs=1)
def dev_remove_offload(ctx: Any, po: int) -> Any:
    return _remove(ctx, "packet_offload", "dev_remove_offload", po,
                   ctx.kernel.layouts[PACKET_OFFLOAD].list)


async def _replay(ctx: Any, nb: int, event: str, devices: list[int]) -> int:
    """call_netdevice_register_net_notifiers() / _unregister_: `event` for
    each device, to this block only; a refusal of NETDEV_REGISTER sends
    NETDEV_UNREGISTER to the devices already told, in reverse, and is the
    errno.  (No device is ever up here: no NETDEV_UP, GOING_DOWN or DOWN.)"""
    for n, dev in enumerate(devices):
        err = notifier_to_errno(await call_notifiers(ctx, event, dev, only=nb))
        if err and event == "NETDEV_REGISTER":
            for told in reversed(devices[:n]):
                await call_notifiers(ctx, "NETDEV_UNREGISTER", told, only=nb)
            return err
    return 0


async def _register_notifier(ctx: Any, head: int, nb: int, chain: str) -> int:
    err = chain_register(ctx, head, nb, chain=chain)
    if err:
        return err
    err = await _replay(ctx, nb, "NETDEV_REGISTER", net_devices(ctx.kernel).devices())
    if err:
        chain_unregister(ctx, head, nb)
    return err


async def _unregister_notifier(ctx: Any, head: int, nb: int) -> int:
    err = chain_unregister(ctx, head, nb)
    if not err:
        await _replay(ctx, nb, "NETDEV_UNREGISTER", net_devices(ctx.kernel).devices())
    return err


@export("register_netdevice_notifier", "int register_netdevice_notifier(struct notifier_block *nb)",
        nargs=1)
def register_netdevice_notifier(ctx: Any, nb: int) -> Any:
    async def registering() -> int:
        async with pernet_ops_locked(ctx), rtnl_locked(ctx):
            return await _register_notifier(ctx, netdev_chain_head(ctx), nb, "netdev_chain")
    return registering()


@export("unregister_netdevice_notifier",
        "int unregister_netdevice_notifier(struct notifier_block *nb)", nargs=1)
def unregister_netdevice_notifier(ctx: Any, nb: int) -> Any:
    async def unregistering() -> int:
        async with pernet_ops_locked(ctx), rtnl_locked(ctx):
            return await _unregister_notifier(ctx, netdev_chain_head(ctx), nb)
    return unregistering()


@export("register_netdevice_notifier_net",
        "int register_netdevice_notifier_net(struct net *net, struct notifier_block *nb)", nargs=2)
def register_netdevice_notifier_net(ctx: Any, net: int, nb: int) -> Any:
    async def registering() -> int:
        async with rtnl_locked(ctx):
            return await _register_notifier(ctx, net + ctx.kernel.layouts[NET].netdev_chain, nb,
                                            "net->netdev_chain")
    return registering()


@export("unregister_netdevice_notifier_net",
        "int unregister_netdevice_notifier_net(struct net *net, struct notifier_block *nb)",
        nargs=2)
def unregister_netdevice_notifier_net(ctx: Any, net: int, nb: int) -> Any:
    async def unregistering() -> int:
        async with rtnl_locked(ctx):
            return await _unregister_notifier(ctx, net + ctx.kernel.layouts[NET].netdev_chain, nb)
    return unregistering()


@export("synchronize_net", "void synchronize_net(void)", nargs=0)
def synchronize_net(ctx: Any) -> Any:
    """synchronize_rcu(), expedited under the RTNL (the same wait here)."""
    return synchronize_rcu(ctx)


@export("dev_valid_name", "bool dev_valid_name(const char *name)", nargs=1)
def dev_valid_name(ctx: Any, name: int) -> int:
    return int(valid_name(ctx.mem.read_cstr(name, IFNAMSIZ)))
