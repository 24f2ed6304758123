"""net/core/dev.c: network devices — `alloc_netdev_mqs`, `register_netdevice`,
`unregister_netdevice_queue`/`_many`, `free_netdev`, `dev_alloc_name`, the
device lookups (`__dev_get_by_name`, `__dev_get_by_index`), and the calls
of the netdevice notifier chains they make.

As Linux: `alloc_netdev_mqs(sizeof_priv, name, assign_type, setup, txqs,
rxqs)` allocates the struct net_device and its private area zeroed (6.1:
the priv area follows the struct aligned to NETDEV_ALIGN, 32, and `padded`
records the alignment; 6.12: the `priv` flexible array, `priv_len`), the
per-CPU reference count (1), the device address buffer (`dev_addr`,
MAX_ADDR_LEN bytes), sets the namespace to init_net, calls `setup(dev)`,
gives a zero `tx_queue_len` DEFAULT_TX_QUEUE_LEN, allocates `txqs`
netdev_queues (each pointing back at the device, xmit_lock_owner -1) and
`rxqs` rx queues, and copies the name template.  Zero queues is Linux's
"alloc_netdev: Unable to allocate device with zero queues" and NULL.

`register_netdevice` (the caller holds the RTNL; `register_netdev` takes
it) resolves the name — a "%d" template gets the lowest free number
(`dev_alloc_name`), a bad name is -EINVAL, a name in use -EEXIST, no free
number -ENFILE — calls `ndo_init` (a positive result is -EIO), assigns the
next ifindex, sends NETDEV_POST_INIT, marks the device present, links it
on init_net's `dev_base_head` through `dev_list` (what `for_each_netdev`
walks), and sends NETDEV_REGISTER.  A notifier's refusal unregisters the
device again and returns its errno (the caller frees it).  A failed
ndo_init or POST_INIT undoes through `ndo_uninit` and `priv_destructor`.

`unregister_netdevice_queue(dev, head)` moves the device onto `head`
through `unreg_list`, or unregisters it at once; `unregister_netdevice_many
(head)` unlists every device on it, waits for a network grace period,
sends NETDEV_UNREGISTER (and, where the release has it,
NETDEV_PRE_UNINIT), calls `ndo_uninit`, takes the devices out of sysfs and
puts the registration's reference, then poisons `head` as list_del does.
The devices are then on the RTNL's todo list: `rtnl_unlock()` finishes
them (netdev_run_todo) — state NETREG_UNREGISTERED, `priv_destructor`,
and `free_netdev` for a device with `needs_free_netdev`.  A device still
holding references then (a `dev_hold` never put) is Linux's
"unregister_netdevice: waiting for NAME to become free. Usage count = N";
Linux waits for ever, kloader says so once and goes on.

`free_netdev` frees a device never registered, or unregistered; called
while it is being unregistered it only asks for the free at the end
(needs_free_netdev); any other state is Linux's BUG.

Notifiers (`register_netdevice_notifier`, dev.py) are called as
call_netdevice_notifiers does: the namespace's own chain, then the global
one, each block with (nb, event, struct netdev_notifier_info *), stopping
at NOTIFY_STOP_MASK; a refusal is notifier_to_errno's errno.

A device registered is a registration of the module that registered it: a
module freed with one of its devices still registered (its exit forgot to
unregister it) is reported ("leaked registration: network device dummy0")
and the device is taken off the namespace's list, so no walk reaches into
freed code.  Its memory is the module's allocation (reported as leaked if
never freed).

Where kloader differs: init_net is the only namespace, and it has no
loopback device, so the first device registered gets ifindex 1; no device
is ever brought up (there is no `dev_open`), so unregistering sends no
NETDEV_GOING_DOWN/DOWN, and no packet moves; no netlink message
(RTM_NEWLINK/DELLINK) is sent.  Every member is read at the running
kernel's offsets (kloaderd/kernel/layouts.py); `reg_state` is the byte
before `dismantle` in every release (a bit-field in 6.1 that offsetof
cannot measure).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any, Callable

from ...kernel.api import export
from ...kernel.callback import call_module_code, finished
from ...kernel.layouts import constants, struct
from ...kernel.notifier import NB, RAW_HEAD, KernelChains
from ...kernel.oops import KernelBug
from ...kernel.panic import warn
from ...kernel.printk import KERN_EMERG, KERN_ERR
from ...kernel.rcu import synchronize_rcu
from ...lib.list import LIST_HEAD_SIZE, NEXT, PREV, GuestList, init_list_head
from .net_namespace import NET, NetNamespaces
from .rtnetlink import RtnlMutex, rtnl_locked

NET_DEVICE = struct(
    "struct net_device", "linux/netdevice.h", "name", "state", "dev_list", "unreg_list", "flags",
    "netdev_ops", "ifindex", "mtu", "min_mtu", "max_mtu", "type", "hard_header_len", "min_header_len",
    "header_ops", "operstate", "addr_assign_type", "addr_len", "dev_addr", "dev_addr_shadow",
    "broadcast", "_rx", "num_rx_queues", "real_num_rx_queues", "_tx", "num_tx_queues",
    "real_num_tx_queues", "tx_queue_len", "pcpu_refcnt", "dismantle", "needs_free_netdev",
    "priv_destructor", "nd_net", "rtnl_link_ops", "stats", "name_assign_type",
    "carrier_up_count", "carrier_down_count", "adj_list.upper", "adj_list.lower", "dev.parent",
    # 6.1's priv_flags is a member, 6.12's a bit-field at the start of priv_flags_fast
    optional=("padded", "priv", "priv_len", "priv_flags", "priv_flags_fast"))
NETDEV_OPS = struct("struct net_device_ops", "linux/netdevice.h", "ndo_init", "ndo_uninit")
NETDEV_QUEUE = struct("struct netdev_queue", "linux/netdevice.h", "dev", "xmit_lock_owner")
# 6.12 moved it to its own header; 6.1's probe finds it in linux/netdevice.h
RX_QUEUE = struct("struct netdev_rx_queue", "net/netdev_rx_queue.h", "dev")
EVENTS = constants("enum netdev_cmd", "linux/netdevice.h", "NETDEV_REGISTER", "NETDEV_UNREGISTER",
                   "NETDEV_POST_INIT", "NETDEV_CHANGE", optional=("NETDEV_PRE_UNINIT",))
STRUCTS = (NET_DEVICE, NETDEV_OPS, NETDEV_QUEUE, RX_QUEUE, EVENTS, NB, NET)

IFNAMSIZ = 16
SPACE = frozenset(b" \t\n\v\f\r\xa0")       # lib/ctype.c's _S
MAX_ADDR_LEN = 32
NETDEV_ALIGN = 32
DEFAULT_TX_QUEUE_LEN = 1000
MAX_NETDEVICES = 8 * 4096          # __dev_alloc_name's bitmap: a page of bits
NOTIFIER_INFO_SIZE = 32            # struct netdev_notifier_info{,_ext}: dev, extack, ext
NOTIFY_OK, NOTIFY_STOP_MASK = 0x0001, 0x8000
# struct net_device's reg_state
NETREG_UNINITIALIZED, NETREG_REGISTERED, NETREG_UNREGISTERING, NETREG_UNREGISTERED, \
    NETREG_RELEASED = range(5)
# enum netdev_state_t: bits of dev->state
LINK_STATE_PRESENT, LINK_STATE_NOCARRIER = 1, 2
REG_STATE_NAMES = ("uninitialized", "registered", "unregistering", "unregistered", "released")


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _owner(ctx: Any) -> str | None:
    return getattr(ctx.module, "name", None)


@dataclass
class _Allocation:
    """What alloc_netdev_mqs allocated for one device, for free_netdev."""
    base: int           # the kvzalloc'd block (the device is `padded` bytes in)
    owner: str | None
    dev_addr: int
    tx: int
    rx: int
    refcnt: int         # the per-CPU offset of pcpu_refcnt


class NetDevices:
    """init_net's devices: the list `for_each_netdev` walks (in guest
    memory), the name and index tables, and what each device allocated."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.net = kernel.subsystem(NetNamespaces).net
        self.layout = kernel.layouts[NET_DEVICE]
        self.base = GuestList(kernel, self.net + kernel.layouts[NET].dev_base_head)
        self.by_name: dict[str, int] = {}
        self.by_index: dict[int, int] = {}
        self.ifindex = 0                     # net->ifindex: the last one given
        self.allocations: dict[int, _Allocation] = {}
        kernel.subsystem(RtnlMutex).devices = self
        for show in FILES:
            show(self)

    # -- reading a device ----------------------------------------------------------
    def name(self, dev: int) -> str:
        return self.kernel.mem.read_cstr(dev + self.layout.name, IFNAMSIZ).decode("utf-8", "replace")

    def reg_state(self, dev: int) -> int:
        return self.kernel.mem.read_u8(dev + self.layout.dismantle - 1)

    def set_reg_state(self, dev: int, state: int) -> None:
        self.kernel.mem.write_u8(dev + self.layout.dismantle - 1, state)

    def ops(self, dev: int, member: str) -> int:
        """dev->netdev_ops->member, 0 where either is NULL."""
        mem = self.kernel.mem
        ops = mem.read_u64(dev + self.layout.netdev_ops)
        return mem.read_u64(ops + getattr(self.kernel.layouts[NETDEV_OPS], member)) if ops else 0

    def refcnt(self, dev: int) -> int:
        """netdev_refcnt_read(): the per-CPU count (kloader has one CPU)."""
        offset = self.kernel.mem.read_u64(dev + self.layout.pcpu_refcnt)
        return _s32(self.kernel.mem.read_u32(self.kernel.percpu.base + offset)) if offset else 0

    def devices(self) -> list[int]:
        """The registered devices in for_each_netdev's order."""
        return [node - self.layout.dev_list for node in self.base]

    # -- what the RTNL's users call (rtnetlink.Devices) ----------------------------
    async def run_todo(self, ctx: Any, devices: list[int]) -> None:
        await run_todo(ctx, devices)

    async def kill_links(self, ctx: Any, ops: int, dellink: int) -> None:
        await kill_links(ctx, ops, dellink)

    async def unregister_list(self, ctx: Any, head: int) -> None:
        await _unregister_head(ctx, head)

    def new_index(self) -> int:
        """dev_new_index(): the next unused index after the last one given."""
        ifindex = self.ifindex
        while True:
            ifindex = ifindex + 1 if ifindex < 0x7FFFFFFF else 1
            if ifindex not in self.by_index:
                self.ifindex = ifindex
                return ifindex


def net_devices(kernel: Any) -> NetDevices:
    return kernel.subsystem(NetDevices)


# What shows the devices to users (/sys/class/net, /proc/net/dev): each
# `fn(devices)` makes its files when the kernel's devices are first made.
FILES: list[Callable[[NetDevices], None]] = []


def shows_devices(fn: Callable[[NetDevices], None]) -> Callable[[NetDevices], None]:
    if fn not in FILES:
        FILES.append(fn)
    return fn


# -- notifiers ---------------------------------------------------------------------------

def netdev_chain_head(ctx: Any) -> int:
    """The global netdev_chain's head pointer."""
    return ctx.kernel.subsystem(KernelChains).head("netdev_chain") + RAW_HEAD


def notifier_to_errno(ret: int) -> int:
    ret = _s32(ret) & ~NOTIFY_STOP_MASK
    return NOTIFY_OK - ret if ret > NOTIFY_OK else 0


async def _call_chain(ctx: Any, head: int, event: int, info: int, only: int = 0) -> int:
    """raw_notifier_call_chain() (or one block, `only`): the last result."""
    mem, block = ctx.mem, ctx.kernel.layouts[NB]
    ret = 0
    nb = only or mem.read_u64(head)
    while nb:
        next_nb = mem.read_u64(nb + block.next)
        ret = _s32(await call_module_code(ctx, mem.read_u64(nb + block.notifier_call), nb, event, info))
        if only or ret & NOTIFY_STOP_MASK:
            break
        nb = next_nb
    return ret


async def call_notifiers(ctx: Any, event_name: str, dev: int, only: int = 0) -> int:
    """call_netdevice_notifiers(event, dev) — or call_netdevice_notifier(nb,
    ...) for one block `only` — with a struct netdev_notifier_info; the
    chains' result.  An event this release does not have is not sent."""
    event = getattr(ctx.kernel.layouts[EVENTS], event_name)
    if event is None:
        return 0
    info = ctx.kernel.slab.alloc(NOTIFIER_INFO_SIZE, None, zero=True)
    if not info:
        return NOTIFY_STOP_MASK | (NOTIFY_OK + errno.ENOMEM)
    try:
        ctx.mem.write_u64(info, dev)
        if only:
            return await _call_chain(ctx, 0, event, info, only)
        net = ctx.kernel.subsystem(NetNamespaces).net
        ret = await _call_chain(ctx, net + ctx.kernel.layouts[NET].netdev_chain, event, info)
        if ret & NOTIFY_STOP_MASK:
            return ret
        return await _call_chain(ctx, netdev_chain_head(ctx), event, info)
    finally:
        ctx.kernel.slab.free(info, None)


# -- alloc_netdev_mqs / free_netdev ----------------------------------------------------------

def _alloc_queues(ctx: Any, devs: NetDevices, dev: int, count: int, layout: Any,
                  owner: str | None, xmit: bool) -> int:
    """netif_alloc_netdev_queues() / netif_alloc_rx_queues(): `count`
    zeroed queues, each pointing back at the device."""
    mem = ctx.mem
    queues = ctx.kernel.slab.alloc(count * layout.size, owner, zero=True)
    for i in range(count if queues else 0):
        mem.write_u64(queues + i * layout.size + layout.dev, dev)
        if xmit:
            mem.write_u32(queues + i * layout.size + layout.xmit_lock_owner, 0xFFFFFFFF)
    return queues


def _free_memory(ctx: Any, devs: NetDevices, dev: int) -> None:
    """netif_free_tx_queues(), netif_free_rx_queues(), dev_addr_flush(),
    free_percpu(pcpu_refcnt) and the device itself (netdev_freemem)."""
    alloc = devs.allocations.pop(dev)
    slab = ctx.kernel.slab
    for block in (alloc.tx, alloc.rx, alloc.dev_addr):
        if block:
            slab.free(block, alloc.owner)
    if alloc.refcnt:
        ctx.kernel.percpu.dynamic_free(alloc.refcnt)
    slab.free(alloc.base, alloc.owner)


async def _alloc_netdev(ctx: Any, sizeof_priv: int, name: int, assign_type: int, setup: int,
                        txqs: int, rxqs: int) -> int:
    devs = net_devices(ctx.kernel)
    mem, layout, owner = ctx.mem, devs.layout, _owner(ctx)
    template = mem.read_cstr(name, IFNAMSIZ + 1)
    if len(template) >= IFNAMSIZ:
        ctx.kernel.log.emit(KERN_ERR, "alloc_netdev: the name template is IFNAMSIZ (16) bytes or "
                                      "longer", owner)
        raise KernelBug("net/core/dev.c")          # BUG_ON(strlen(name) >= sizeof(dev->name))
    for count, what in ((txqs, "queues"), (rxqs, "RX queues")):
        if count < 1:
            ctx.kernel.log.emit(KERN_ERR, f"alloc_netdev: Unable to allocate device with zero {what}",
                                owner)
            return 0
    if layout.priv is not None:          # 6.12: struct_size(dev, priv, sizeof_priv)
        size, priv = max(layout.size, layout.priv + sizeof_priv), layout.priv
    else:                                # 6.1: the priv area after the aligned struct
        priv = -(-layout.size // NETDEV_ALIGN) * NETDEV_ALIGN
        size = priv + sizeof_priv if sizeof_priv else layout.size
    base = ctx.kernel.slab.alloc(size + NETDEV_ALIGN - 1, owner, zero=True)
    if not base:
        return 0
    dev = -(-base // NETDEV_ALIGN) * NETDEV_ALIGN
    refcnt = ctx.kernel.percpu.dynamic_alloc(4)
    dev_addr = ctx.kernel.slab.alloc(MAX_ADDR_LEN, owner, zero=True)
    devs.allocations[dev] = _Allocation(base, owner, dev_addr, 0, 0, refcnt or 0)
    if refcnt is None or not dev_addr:
        _free_memory(ctx, devs, dev)
        return 0
    if layout.padded is not None:
        mem.write_u16(dev + layout.padded, dev - base)
    if layout.priv_len is not None:
        mem.write_u32(dev + layout.priv_len, sizeof_priv)
    mem.write_u32(ctx.kernel.percpu.base + refcnt, 1)              # __dev_hold(): the device's own
    mem.write_u64(dev + layout.pcpu_refcnt, refcnt)
    mem.write_u64(dev + layout.dev_addr, dev_addr)
    mem.write_u64(dev + layout.nd_net, devs.net)                    # dev_net_set(dev, &init_net)
    for head in (layout.dev_list, layout.unreg_list, layout.adj_list_upper, layout.adj_list_lower):
        init_list_head(mem, dev + head)
    try:
        await call_module_code(ctx, setup, dev)
    except BaseException:
        _free_memory(ctx, devs, dev)
        raise
    if not mem.read_u32(dev + layout.tx_queue_len):
        mem.write_u32(dev + layout.tx_queue_len, DEFAULT_TX_QUEUE_LEN)
    alloc = devs.allocations[dev]
    alloc.tx = _alloc_queues(ctx, devs, dev, txqs, ctx.kernel.layouts[NETDEV_QUEUE], owner, True)
    alloc.rx = _alloc_queues(ctx, devs, dev, rxqs, ctx.kernel.layouts[RX_QUEUE], owner, False)
    if not alloc.tx or not alloc.rx:
        _free_memory(ctx, devs, dev)
        return 0
    for member, value in (("_tx", alloc.tx), ("_rx", alloc.rx)):
        mem.write_u64(dev + getattr(layout, member), value)
    for member, value in (("num_tx_queues", txqs), ("real_num_tx_queues", txqs),
                          ("num_rx_queues", rxqs), ("real_num_rx_queues", rxqs)):
        mem.write_u32(dev + getattr(layout, member), value)
    mem.write(dev + layout.name, template.ljust(IFNAMSIZ, b"\0"))
    mem.write_u8(dev + layout.name_assign_type, assign_type & 0xFF)
    return dev


@export("alloc_netdev_mqs", "struct net_device *alloc_netdev_mqs(int sizeof_priv, const char *name, "
        "unsigned char name_assign_type, void (*setup)(struct net_device *), unsigned int txqs, "
        "unsigned int rxqs)", nargs=6)
def alloc_netdev_mqs(ctx: Any, sizeof_priv: int, name: int, name_assign_type: int, setup: int,
                     txqs: int, rxqs: int) -> Any:
    return _alloc_netdev(ctx, sizeof_priv & 0x7FFFFFFF, name, name_assign_type, setup,
                         txqs & 0xFFFFFFFF, rxqs & 0xFFFFFFFF)


def _free_netdev(ctx: Any, dev: int) -> None:
    devs = net_devices(ctx.kernel)
    mem, layout = ctx.mem, devs.layout
    if dev not in devs.allocations:
        ctx.kernel.slab.free(dev, _owner(ctx))          # the allocator's bad-free report
        return
    state = devs.reg_state(dev)
    if state == NETREG_UNREGISTERING:                   # register_netdevice's unwind is under way
        mem.write_u8(dev + layout.needs_free_netdev, 1)
        return
    if state not in (NETREG_UNINITIALIZED, NETREG_UNREGISTERED):
        ctx.kernel.log.emit(KERN_ERR, f"free_netdev: {devs.name(dev)} is still "
                                      f"{REG_STATE_NAMES[state] if state < 5 else state}", _owner(ctx))
        raise KernelBug("net/core/dev.c")       # BUG_ON(dev->reg_state != NETREG_UNREGISTERED)
    _free_memory(ctx, devs, dev)


@export("free_netdev", "void free_netdev(struct net_device *dev)", nargs=1)
def free_netdev(ctx: Any, dev: int) -> None:
    _free_netdev(ctx, dev)


# -- names ---------------------------------------------------------------------------------------

def valid_name(name: bytes) -> bool:
    """dev_valid_name(): not empty, shorter than IFNAMSIZ, not "." or "..",
    no '/', ':' or white space (the kernel's isspace, which counts 0xa0)."""
    return bool(name) and len(name) < IFNAMSIZ and name not in (b".", b"..") and not any(
        c in b"/:" or c in SPACE for c in name)


def alloc_name(devs: NetDevices, template: bytes) -> tuple[int, bytes]:
    """__dev_alloc_name(): (the number, the name) for a "%d" template, or
    (-errno, b"")."""
    if not valid_name(template):
        return -errno.EINVAL, b""
    percent = template.find(b"%")
    if percent < 0:
        return (-errno.EEXIST, b"") if template.decode("utf-8", "replace") in devs.by_name else (0, template)
    if template[percent + 1:percent + 2] != b"d" or b"%" in template[percent + 2:]:
        return -errno.EINVAL, b""
    prefix, suffix = template[:percent], template[percent + 2:]
    used: set[int] = set()
    for name in devs.by_name:
        raw = name.encode()
        if raw.startswith(prefix) and raw.endswith(suffix) and len(raw) > len(prefix) + len(suffix):
            digits = raw[len(prefix):len(raw) - len(suffix)]
            if digits.isdigit() and str(int(digits)).encode() == digits:   # snprintf gives it back
                used.add(int(digits))
    for number in range(MAX_NETDEVICES):
        if number not in used:
            made = prefix + str(number).encode() + suffix
            if len(made) < IFNAMSIZ and made.decode("utf-8", "replace") not in devs.by_name:
                return number, made
            break
    return -errno.ENFILE, b""


@export("dev_alloc_name", "int dev_alloc_name(struct net_device *dev, const char *name)", nargs=2)
def dev_alloc_name(ctx: Any, dev: int, name: int) -> int:
    devs = net_devices(ctx.kernel)
    number, made = alloc_name(devs, ctx.mem.read_cstr(name, IFNAMSIZ + 1))
    if number >= 0:
        ctx.mem.write(dev + devs.layout.name, made.ljust(IFNAMSIZ, b"\0"))
    return number


# -- register ---------------------------------------------------------------------------------------

def _forget(entry: Any) -> None:
    """on_leftover: a device still registered when its module is freed is
    taken off the namespace's list and tables (its module's code is gone)."""
    devs, dev = entry.data
    devs.base.unlink_quietly(dev + devs.layout.dev_list)
    _unlist(devs, dev)


def _unlist(devs: NetDevices, dev: int) -> None:
    name, ifindex = devs.name(dev), _s32(devs.kernel.mem.read_u32(dev + devs.layout.ifindex))
    if devs.by_name.get(name) == dev:
        del devs.by_name[name]
    if devs.by_index.get(ifindex) == dev:
        del devs.by_index[ifindex]


async def _uninit(ctx: Any, devs: NetDevices, dev: int, destructor: bool) -> None:
    uninit = devs.ops(dev, "ndo_uninit")
    if uninit:
        await call_module_code(ctx, uninit, dev)
    destroy = ctx.mem.read_u64(dev + devs.layout.priv_destructor) if destructor else 0
    if destroy:
        await call_module_code(ctx, destroy, dev)


async def _register(ctx: Any, dev: int) -> int:
    devs = net_devices(ctx.kernel)
    mem, layout = ctx.mem, devs.layout
    if devs.reg_state(dev) != NETREG_UNINITIALIZED:
        raise KernelBug("net/core/dev.c")       # BUG_ON(dev->reg_state != NETREG_UNINITIALIZED)
    number, name = alloc_name(devs, mem.read_cstr(dev + layout.name, IFNAMSIZ))
    if number < 0:
        return number
    mem.write(dev + layout.name, name.ljust(IFNAMSIZ, b"\0"))
    init = devs.ops(dev, "ndo_init")
    if init:
        err = _s32(await call_module_code(ctx, init, dev))
        if err:
            return -errno.EIO if err > 0 else err
    ifindex = _s32(mem.read_u32(dev + layout.ifindex))
    if not ifindex:
        ifindex = devs.new_index()
        mem.write_u32(dev + layout.ifindex, ifindex)
    elif ifindex in devs.by_index:
        await _uninit(ctx, devs, dev, destructor=True)
        return -errno.EBUSY
    err = notifier_to_errno(await call_notifiers(ctx, "NETDEV_POST_INIT", dev))
    if err:
        await _uninit(ctx, devs, dev, destructor=True)
        return err
    devs.set_reg_state(dev, NETREG_REGISTERED)
    mem.write_u64(dev + layout.state, mem.read_u64(dev + layout.state) | 1 << LINK_STATE_PRESENT)
    _hold(ctx, devs, dev, 1)                       # the registration's reference
    devs.base.add_tail(ctx, dev + layout.dev_list)     # list_netdevice()
    devs.by_name[name.decode("utf-8", "replace")] = dev
    devs.by_index[ifindex] = dev
    registered = ctx.kernel.registrations.registry("netdev")
    ops = mem.read_u64(dev + layout.netdev_ops)
    registered.add(dev, f"network device {name.decode('utf-8', 'replace')}", owner=ctx.module,
                   address=dev, points_to=(ops, mem.read_u64(dev + layout.rtnl_link_ops),
                                           mem.read_u64(dev + layout.priv_destructor)),
                   data=(devs, dev), on_leftover=_forget)
    err = notifier_to_errno(await call_notifiers(ctx, "NETDEV_REGISTER", dev))
    if err:
        mem.write_u8(dev + layout.needs_free_netdev, 0)      # the caller frees it
        await unregister_many(ctx, [dev])
        return err
    return 0


def _hold(ctx: Any, devs: NetDevices, dev: int, delta: int) -> None:
    """netdev_hold() / netdev_put() on the per-CPU count."""
    offset = ctx.mem.read_u64(dev + devs.layout.pcpu_refcnt)
    address = ctx.kernel.percpu.base + offset
    ctx.mem.write_u32(address, (ctx.mem.read_u32(address) + delta) & 0xFFFFFFFF)


@export("register_netdevice", "int register_netdevice(struct net_device *dev)", nargs=1)
def register_netdevice(ctx: Any, dev: int) -> Any:
    return _register(ctx, dev)


async def _register_locked(ctx: Any, dev: int) -> int:
    async with rtnl_locked(ctx):
        return await _register(ctx, dev)


@export("register_netdev", "int register_netdev(struct net_device *dev)", nargs=1)
def register_netdev(ctx: Any, dev: int) -> Any:
    return _register_locked(ctx, dev)


# -- unregister ---------------------------------------------------------------------------------

async def unregister_many(ctx: Any, devices: list[int]) -> None:
    """unregister_netdevice_many() of `devices` (the RTNL held): the
    devices are then on the RTNL's todo list, finished at rtnl_unlock."""
    devs = net_devices(ctx.kernel)
    mem, layout = ctx.mem, devs.layout
    going = []
    for dev in devices:
        if devs.reg_state(dev) == NETREG_UNINITIALIZED:
            warn(ctx, "", "net/core/dev.c", "unregister_netdevice_many")   # never registered
            continue
        if devs.reg_state(dev) != NETREG_REGISTERED:
            raise KernelBug("net/core/dev.c")   # BUG_ON(dev->reg_state != NETREG_REGISTERED)
        mem.write_u8(dev + layout.dismantle, 1)
        going.append(dev)
    for dev in going:
        devs.base.delete(ctx, dev + layout.dev_list, rcu=True)     # unlist_netdevice()
        _unlist(devs, dev)
        devs.set_reg_state(dev, NETREG_UNREGISTERING)
    await finished(synchronize_rcu(ctx))
    for dev in going:
        await call_notifiers(ctx, "NETDEV_UNREGISTER", dev)
        await call_notifiers(ctx, "NETDEV_PRE_UNINIT", dev)
        await _uninit(ctx, devs, dev, destructor=False)
    await finished(synchronize_rcu(ctx))
    todo = ctx.kernel.subsystem(RtnlMutex).todo
    for dev in going:
        ctx.kernel.registrations.registry("netdev").remove(dev)
        _hold(ctx, devs, dev, -1)
        todo.append(dev)


async def run_todo(ctx: Any, devices: list[int]) -> None:
    """netdev_run_todo(), after the RTNL is given back."""
    devs = net_devices(ctx.kernel)
    mem, layout = ctx.mem, devs.layout
    for dev in devices:
        devs.set_reg_state(dev, NETREG_UNREGISTERED)
    for dev in devices:
        count = devs.refcnt(dev)
        if count != 1:
            ctx.kernel.log.emit(KERN_EMERG, f"unregister_netdevice: waiting for {devs.name(dev)} to "
                                            f"become free. Usage count = {count}", _owner(ctx))
        destroy = mem.read_u64(dev + layout.priv_destructor)
        if destroy:
            await call_module_code(ctx, destroy, dev)
        if mem.read_u8(dev + layout.needs_free_netdev):
            _free_netdev(ctx, dev)


def _walk(ctx: Any, head: int) -> list[int]:
    """The entries of a list the caller owns (its head on the caller's stack)."""
    mem, node = ctx.mem, ctx.mem.read_u64(head)
    nodes: list[int] = []
    while node != head and len(nodes) < MAX_NETDEVICES:
        nodes.append(node)
        node = mem.read_u64(node)
    return nodes


async def _unregister_head(ctx: Any, head: int) -> int:
    offset = net_devices(ctx.kernel).layout.unreg_list
    devices = [node - offset for node in _walk(ctx, head)]
    if devices:
        await unregister_many(ctx, devices)
        GuestList.delete(ctx, head)             # list_del(head)
    return 0


@export("unregister_netdevice_many", "void unregister_netdevice_many(struct list_head *head)",
        nargs=1)
def unregister_netdevice_many(ctx: Any, head: int) -> Any:
    return _unregister_head(ctx, head)


async def _unregister_one(ctx: Any, dev: int) -> int:
    await unregister_many(ctx, [dev])
    return 0


@export("unregister_netdevice_queue",
        "void unregister_netdevice_queue(struct net_device *dev, struct list_head *head)", nargs=2)
def unregister_netdevice_queue(ctx: Any, dev: int, head: int) -> Any:
    if head:
        entry = dev + net_devices(ctx.kernel).layout.unreg_list
        GuestList.delete(ctx, entry)             # list_move_tail(): off, then at the back
        mem = ctx.mem
        prev = mem.read_u64(head + PREV)
        for link, value in ((head + PREV, entry), (entry + NEXT, head), (entry + PREV, prev),
                            (prev + NEXT, entry)):
            mem.write_u64(link, value)
        return 0
    return _unregister_one(ctx, dev)


async def _unregister_locked(ctx: Any, dev: int) -> int:
    async with rtnl_locked(ctx):
        await unregister_many(ctx, [dev])
    return 0


@export("unregister_netdev", "void unregister_netdev(struct net_device *dev)", nargs=1)
def unregister_netdev(ctx: Any, dev: int) -> Any:
    return _unregister_locked(ctx, dev)


async def kill_links(ctx: Any, ops: int, dellink: int) -> None:
    """__rtnl_kill_links(): every device of a link kind through its
    `dellink` onto a list, then unregister_netdevice_many (the RTNL held)."""
    devs = net_devices(ctx.kernel)
    ofs = devs.layout.rtnl_link_ops
    head = ctx.kernel.slab.alloc(LIST_HEAD_SIZE, None)
    if not head:
        return
    init_list_head(ctx.mem, head)
    try:
        for dev in devs.devices():
            if ctx.mem.read_u64(dev + ofs) == ops and dellink:
                await call_module_code(ctx, dellink, dev, head)
        await _unregister_head(ctx, head)
    finally:
        ctx.kernel.slab.free(head, None)


# -- lookups ------------------------------------------------------------------------------------------

def _by_name(ctx: Any, net: int, name: int) -> int:
    devs = net_devices(ctx.kernel)
    if net != devs.net:
        return 0
    return devs.by_name.get(ctx.mem.read_cstr(name, IFNAMSIZ).decode("utf-8", "replace"), 0)


def _by_index(ctx: Any, net: int, ifindex: int) -> int:
    devs = net_devices(ctx.kernel)
    return devs.by_index.get(_s32(ifindex), 0) if net == devs.net else 0


@export("__dev_get_by_name", "struct net_device *__dev_get_by_name(struct net *net, const char *name)",
        nargs=2)
def __dev_get_by_name(ctx: Any, net: int, name: int) -> int:
    return _by_name(ctx, net, name)


@export("dev_get_by_name_rcu",
        "struct net_device *dev_get_by_name_rcu(struct net *net, const char *name)", nargs=2)
def dev_get_by_name_rcu(ctx: Any, net: int, name: int) -> int:
    return _by_name(ctx, net, name)


@export("__dev_get_by_index", "struct net_device *__dev_get_by_index(struct net *net, int ifindex)",
        nargs=2)
def __dev_get_by_index(ctx: Any, net: int, ifindex: int) -> int:
    return _by_index(ctx, net, ifindex)


@export("dev_get_by_index_rcu", "struct net_device *dev_get_by_index_rcu(struct net *net, int ifindex)",
        nargs=2)
def dev_get_by_index_rcu(ctx: Any, net: int, ifindex: int) -> int:
    return _by_index(ctx, net, ifindex)
