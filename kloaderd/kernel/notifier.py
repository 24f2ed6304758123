"""kernel/notifier.c: notifier chains, and the kernel's named chains
modules register on (reboot, PM, IPv4/IPv6 address, netevent, and
netlink's, which hears of user netlink sockets released).

A chain is what it is in Linux: a singly linked list in guest memory, the
head pointer inside the chain's head structure (`raw_notifier_head.head`
first, `atomic_notifier_head.head` after its spinlock,
`blocking_notifier_head.head` after its rw_semaphore: each kernel's offsets,
kloaderd/kernel/layouts.py), the blocks linked through `notifier_block.next`
in descending `priority` order.  Registration walks and writes that list exactly as
notifier_chain_register() does, so a module that walks its own chain sees
Linux's order; each block is also recorded in the "notifier" registry, so a
block left registered when its module goes is reported and unlinked.

Errors are Linux's: registering a block twice is a WARN ("notifier callback
%ps already registered") and -EEXIST; unregistering an absent one -ENOENT.

Not emulated here: calling a chain (`*_notifier_call_chain`), which enters
module code from a kernel function; the kernel's own chains are never
called, as no event (reboot, suspend, address change) happens in kloader.
Netdevice notifiers are the network core's (`kloaderd/net/core/dev.py`).
"""

from __future__ import annotations

import errno
from typing import Any

from .api import export
from .layouts import Struct, struct
from .memory import GuestFault
from .panic import warn

NB = struct("struct notifier_block", "linux/notifier.h", "notifier_call", "next", "priority")
ATOMIC = struct("struct atomic_notifier_head", "linux/notifier.h", "head")
BLOCKING = struct("struct blocking_notifier_head", "linux/notifier.h", "head")
STRUCTS = (NB, ATOMIC, BLOCKING)   # what these functions read at the kernel's offsets
RAW_HEAD = 0                 # struct raw_notifier_head is its head pointer alone


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _name(ctx: Any, address: int) -> str:
    return ctx.kernel.symbolize(address, False) or f"{address:#x}"


def chain_register(ctx: Any, head: int, nb: int, unique_priority: bool = False,
                   chain: str | None = None) -> int:
    """notifier_chain_register(): `head` is the address of the head pointer."""
    mem, block = ctx.mem, ctx.kernel.layouts[NB]
    priority = _s32(mem.read_u32(nb + block.priority))
    link = head
    while (current := mem.read_u64(link)) != 0:
        if current == nb:
            warn(ctx, f"notifier callback {_name(ctx, mem.read_u64(nb + block.notifier_call))} already "
                      "registered", "kernel/notifier.c:29", "notifier_chain_register")
            return -errno.EEXIST
        other = _s32(mem.read_u32(current + block.priority))
        if priority > other:
            break
        if priority == other and unique_priority:
            return -errno.EBUSY
        link = current + block.next
    mem.write_u64(nb + block.next, mem.read_u64(link))
    mem.write_u64(link, nb)
    callback = mem.read_u64(nb + block.notifier_call)
    regs = ctx.kernel.registrations
    owner = regs.module_at(nb) or regs.module_at(callback)
    what = f"notifier {_name(ctx, callback)} on {chain or _name(ctx, head)}"
    registry = regs.registry("notifier")
    registry.remove((head, nb))           # a stale record of a block unlinked behind our back
    registry.add((head, nb), what, owner=owner, address=nb, points_to=(callback,),
                 data=(ctx.mem, block.next), on_leftover=_unlink_leftover)
    return 0


def chain_unregister(ctx: Any, head: int, nb: int) -> int:
    """notifier_chain_unregister()."""
    if not _unlink(ctx.mem, head, nb, ctx.kernel.layouts[NB].next):
        return -errno.ENOENT
    ctx.kernel.registrations.registry("notifier").remove((head, nb))
    return 0


def _unlink(mem: Any, head: int, nb: int, next_: int) -> bool:
    link = head
    while (current := mem.read_u64(link)) != 0:
        if current == nb:
            mem.write_u64(link, mem.read_u64(nb + next_))
            return True
        link = current + next_
    return False


def _unlink_leftover(entry: Any) -> None:
    """A block left on a chain by a freed module: take it off the chain (the
    chain's head may itself have been in freed memory: then it is gone)."""
    head, nb = entry.key
    mem, next_ = entry.data
    try:
        _unlink(mem, head, nb, next_)
    except GuestFault:
        pass


def _head(ctx: Any, nh: int, kind: Struct | None) -> int:
    """The address of a chain head's `head` pointer (a raw head is nothing else)."""
    return nh + (ctx.kernel.layouts[kind].head if kind is not None else RAW_HEAD)


def _export_chain(kind: str, head: Struct | None, gpl: bool = True) -> None:
    head_type = f"struct {kind}_notifier_head"

    def register(ctx: Any, nh: int, nb: int) -> int:
        return chain_register(ctx, _head(ctx, nh, head), nb)

    def unregister(ctx: Any, nh: int, nb: int) -> int:
        return chain_unregister(ctx, _head(ctx, nh, head), nb)

    for fn, verb in ((register, "register"), (unregister, "unregister")):
        name = f"{kind}_notifier_chain_{verb}"
        fn.__name__ = fn.__qualname__ = name
        export(name, f"int {name}({head_type} *nh, struct notifier_block *nb)", nargs=2,
               gpl=gpl)(fn)
    if kind != "raw":
        def register_unique(ctx: Any, nh: int, nb: int) -> int:
            return chain_register(ctx, _head(ctx, nh, head), nb, unique_priority=True)
        name = f"{kind}_notifier_chain_register_unique_prio"
        register_unique.__name__ = register_unique.__qualname__ = name
        export(name, f"int {name}({head_type} *nh, struct notifier_block *nb)", nargs=2,
               gpl=True)(register_unique)


_export_chain("atomic", ATOMIC)
_export_chain("blocking", BLOCKING)
_export_chain("raw", None)


class KernelChains:
    """The heads of the kernel's own chains, in kernel memory of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.heads: dict[str, int] = {}

    def head(self, name: str) -> int:
        address = self.heads.get(name)
        if address is None:
            size = max(self.kernel.layouts[kind].size for kind in (ATOMIC, BLOCKING))
            address = self.kernel.slab.alloc(size, None, zero=True)
            if not address:
                raise MemoryError(f"no memory for notifier chain {name}")
            self.heads[name] = address
        return address


def _export_named(register: str, unregister: str, chain: str, kind: Struct, gpl: bool) -> None:
    def do_register(ctx: Any, nb: int) -> int:
        head = ctx.kernel.subsystem(KernelChains).head(chain)
        return chain_register(ctx, _head(ctx, head, kind), nb, chain=chain)

    def do_unregister(ctx: Any, nb: int) -> int:
        head = ctx.kernel.subsystem(KernelChains).head(chain)
        return chain_unregister(ctx, _head(ctx, head, kind), nb)

    for fn, name in ((do_register, register), (do_unregister, unregister)):
        fn.__name__ = fn.__qualname__ = name
        export(name, f"int {name}(struct notifier_block *nb)", nargs=1, gpl=gpl)(fn)


# (register, unregister, Linux's chain, its kind of head, GPL-only)
for _reg, _unreg, _chain, _kind, _gpl in (
        ("register_reboot_notifier", "unregister_reboot_notifier", "reboot_notifier_list",
         BLOCKING, False),
        ("register_pm_notifier", "unregister_pm_notifier", "pm_chain_head", BLOCKING, True),
        ("register_blocking_lsm_notifier", "unregister_blocking_lsm_notifier",
         "blocking_lsm_notifier_chain", BLOCKING, False),
        ("register_inetaddr_notifier", "unregister_inetaddr_notifier", "inetaddr_chain",
         BLOCKING, False),
        ("register_inet6addr_notifier", "unregister_inet6addr_notifier", "inet6addr_chain",
         ATOMIC, False),
        ("register_inetaddr_validator_notifier", "unregister_inetaddr_validator_notifier",
         "inetaddr_validator_chain", BLOCKING, False),
        ("register_inet6addr_validator_notifier", "unregister_inet6addr_validator_notifier",
         "inet6addr_validator_chain", BLOCKING, False),
        ("register_netevent_notifier", "unregister_netevent_notifier", "netevent_notif_chain",
         ATOMIC, False),
        ("netlink_register_notifier", "netlink_unregister_notifier", "netlink_chain",
         BLOCKING, False)):
    _export_named(_reg, _unreg, _chain, _kind, _gpl)
