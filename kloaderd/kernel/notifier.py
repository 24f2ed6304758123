"""kernel/notifier.c: notifier chains, and the kernel's named chains
modules register on (reboot, PM, IPv4/IPv6 address, netevent).

A chain is what it is in Linux: a singly linked list in guest memory, the
head pointer inside the chain's head structure (Linux 6.1 x86-64 layouts:
`raw_notifier_head.head` at 0, `atomic_notifier_head.head` at 8 after its
spinlock, `blocking_notifier_head.head` at 40 after its rw_semaphore), the
blocks linked through `notifier_block.next` (8) in descending `priority`
(16) order.  Registration walks and writes that list exactly as
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
from .memory import GuestFault
from .panic import warn

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

NB_CALL, NB_NEXT, NB_PRIORITY = 0, 8, 16
RAW_HEAD, ATOMIC_HEAD, BLOCKING_HEAD = 0, 8, 40
BLOCKING_HEAD_SIZE = 48


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _name(ctx: Any, address: int) -> str:
    return ctx.kernel.symbolize(address, False) or f"{address:#x}"


def chain_register(ctx: Any, head: int, nb: int, unique_priority: bool = False,
                   chain: str | None = None) -> int:
    """notifier_chain_register(): `head` is the address of the head pointer."""
    mem = ctx.mem
    priority = _s32(mem.read_u32(nb + NB_PRIORITY))
    link = head
    while (current := mem.read_u64(link)) != 0:
        if current == nb:
            warn(ctx, f"notifier callback {_name(ctx, mem.read_u64(nb + NB_CALL))} already "
                      "registered", "kernel/notifier.c:29", "notifier_chain_register")
            return -errno.EEXIST
        other = _s32(mem.read_u32(current + NB_PRIORITY))
        if priority > other:
            break
        if priority == other and unique_priority:
            return -errno.EBUSY
        link = current + NB_NEXT
    mem.write_u64(nb + NB_NEXT, mem.read_u64(link))
    mem.write_u64(link, nb)
    callback = mem.read_u64(nb + NB_CALL)
    regs = ctx.kernel.registrations
    owner = regs.module_at(nb) or regs.module_at(callback)
    what = f"notifier {_name(ctx, callback)} on {chain or _name(ctx, head)}"
    registry = regs.registry("notifier")
    registry.remove((head, nb))           # a stale record of a block unlinked behind our back
    registry.add((head, nb), what, owner=owner, address=nb, points_to=(callback,),
                 data=ctx.mem, on_leftover=_unlink_leftover)
    return 0


def chain_unregister(ctx: Any, head: int, nb: int) -> int:
    """notifier_chain_unregister()."""
    if not _unlink(ctx.mem, head, nb):
        return -errno.ENOENT
    ctx.kernel.registrations.registry("notifier").remove((head, nb))
    return 0


def _unlink(mem: Any, head: int, nb: int) -> bool:
    link = head
    while (current := mem.read_u64(link)) != 0:
        if current == nb:
            mem.write_u64(link, mem.read_u64(nb + NB_NEXT))
            return True
        link = current + NB_NEXT
    return False


def _unlink_leftover(entry: Any) -> None:
    """A block left on a chain by a freed module: take it off the chain (the
    chain's head may itself have been in freed memory: then it is gone)."""
    head, nb = entry.key
    try:
        _unlink(entry.data, head, nb)
    except GuestFault:
        pass


def _export_chain(kind: str, offset: int, gpl: bool = True) -> None:
    head_type = f"struct {kind}_notifier_head"

    def register(ctx: Any, nh: int, nb: int) -> int:
        return chain_register(ctx, nh + offset, nb)

    def unregister(ctx: Any, nh: int, nb: int) -> int:
        return chain_unregister(ctx, nh + offset, nb)

    for fn, verb in ((register, "register"), (unregister, "unregister")):
        name = f"{kind}_notifier_chain_{verb}"
        fn.__name__ = fn.__qualname__ = name
        export(name, f"int {name}({head_type} *nh, struct notifier_block *nb)", nargs=2,
               gpl=gpl)(fn)
    if kind != "raw":
        def register_unique(ctx: Any, nh: int, nb: int) -> int:
            return chain_register(ctx, nh + offset, nb, unique_priority=True)
        name = f"{kind}_notifier_chain_register_unique_prio"
        register_unique.__name__ = register_unique.__qualname__ = name
        export(name, f"int {name}({head_type} *nh, struct notifier_block *nb)", nargs=2,
               gpl=True)(register_unique)


_export_chain("atomic", ATOMIC_HEAD)
_export_chain("blocking", BLOCKING_HEAD)
_export_chain("raw", RAW_HEAD)


class KernelChains:
    """The heads of the kernel's own chains, in kernel memory of one kernel."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.heads: dict[str, int] = {}

    def head(self, name: str) -> int:
        address = self.heads.get(name)
        if address is None:
            address = self.kernel.slab.alloc(BLOCKING_HEAD_SIZE, None, zero=True)
            if not address:
                raise MemoryError(f"no memory for notifier chain {name}")
            self.heads[name] = address
        return address


def _export_named(register: str, unregister: str, chain: str, offset: int, gpl: bool) -> None:
    def do_register(ctx: Any, nb: int) -> int:
        head = ctx.kernel.subsystem(KernelChains).head(chain)
        return chain_register(ctx, head + offset, nb, chain=chain)

    def do_unregister(ctx: Any, nb: int) -> int:
        head = ctx.kernel.subsystem(KernelChains).head(chain)
        return chain_unregister(ctx, head + offset, nb)

    for fn, name in ((do_register, register), (do_unregister, unregister)):
        fn.__name__ = fn.__qualname__ = name
        export(name, f"int {name}(struct notifier_block *nb)", nargs=1, gpl=gpl)(fn)


# (register, unregister, Linux's chain, its kind's head offset, GPL-only)
for _reg, _unreg, _chain, _offset, _gpl in (
        ("register_reboot_notifier", "unregister_reboot_notifier", "reboot_notifier_list",
         BLOCKING_HEAD, False),
        ("register_pm_notifier", "unregister_pm_notifier", "pm_chain_head", BLOCKING_HEAD, True),
        ("register_inetaddr_notifier", "unregister_inetaddr_notifier", "inetaddr_chain",
         BLOCKING_HEAD, False),
        ("register_inet6addr_notifier", "unregister_inet6addr_notifier", "inet6addr_chain",
         ATOMIC_HEAD, False),
        ("register_netevent_notifier", "unregister_netevent_notifier", "netevent_notif_chain",
         ATOMIC_HEAD, False)):
    _export_named(_reg, _unreg, _chain, _offset, _gpl)
