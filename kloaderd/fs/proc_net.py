"""fs/proc/proc_net.c: a network namespace's /proc/net, where network
modules put their tables (`/proc/net/nf_conntrack`, `/proc/net/stat/...`).

`init_net.proc_net` and `init_net.proc_net_stat` point at the entries of
/proc/net and /proc/net/stat, made at boot with init_net as their data (the
namespace a file under them belongs to), so a module's pernet init finds
them where Linux's does and passes them as the parent.

- `proc_create_net_data(name, mode, parent, ops, state_size, data)`: a
  seq_file entry as `proc_create_seq_private`, whose open (seq_open_net)
  also writes the namespace into the private state's `struct
  seq_net_private` (its first field: `state_size` is at least 8).
- `proc_create_net_single(name, mode, parent, show, data)`: a
  `single_open` entry whose show() gets the namespace as `m->private`
  (single_open_net).

The namespace is the parent directory's data, as `PDE_NET()` reads it.
The entries are procfs entries like any other (fs/procfs.py): removed by
`remove_proc_entry` in the module's pernet exit, reported if left behind.

Where kloader differs: only init_net exists, so /proc/net is that
namespace's, not a link to /proc/self/net; the `_write` variants
(`proc_create_net_data_write`, `proc_create_net_single_write`) are not
emulated; a `state_size` below sizeof(struct seq_net_private) is given that (Linux warns at open and
writes past it).  net {proc_net, proc_net_stat} and sizeof(struct
seq_net_private) are the running kernel's (its `net` is the first member
in every release, where fs/procfs.py writes it).
"""

from __future__ import annotations

from typing import Any

from ..kernel import api
from ..kernel.api import at_boot, export
from ..kernel.layouts import struct
from ..net.core.net_namespace import NET, NetNamespaces
from .procfs import PDE_SIZE, SEQ_OPS, ProcEntry, _create, procfs

SEQ_NET_PRIVATE = struct("struct seq_net_private", "linux/seq_file_net.h", "net")
STRUCTS = (NET, SEQ_NET_PRIVATE)     # what these functions read at the kernel's offsets


class ProcNet:
    """init_net's /proc/net and /proc/net/stat (proc_net_ns_init)."""

    def __init__(self, kernel: Any) -> None:
        net = kernel.subsystem(NetNamespaces).net
        entries = procfs(kernel)
        mem = kernel.mem
        parent = entries.root
        layout = kernel.layouts[NET]
        for field, name in ((layout.proc_net, "net"), (layout.proc_net_stat, "stat")):
            node = entries.tree.mkdir(parent, name, mode=0o555)
            address = kernel.slab.alloc(PDE_SIZE, None, zero=True)
            if not address:
                raise MemoryError(f"no memory for the proc_dir_entry of /proc/{name}")
            entry = ProcEntry(address, node, None, data=net)
            node.data = entry
            node.i_private = net
            entries.entries[address] = entry
            mem.write_u64(net + field, address)
            parent = node


@at_boot
def _boot(kernel: Any) -> None:
    """Under a profile whose layouts these are, before any pernet init reads them."""
    if kernel.profile is not None and api.emulated_for("proc_create_net_data",
                                                       kernel.profile.version, kernel.layouts):
        kernel.subsystem(ProcNet)


def _net_of(ctx: Any, parent: int) -> int:
    """PDE_NET(): the namespace is the parent directory's data."""
    ctx.kernel.subsystem(ProcNet)
    entry = procfs(ctx.kernel).entries.get(parent)
    return entry.data if entry is not None else 0


@export("proc_create_net_data", "struct proc_dir_entry *proc_create_net_data(const char *name, "
        "umode_t mode, struct proc_dir_entry *parent, const struct seq_operations *ops, "
        "unsigned int state_size, void *data)", nargs=6, gpl=True)
def proc_create_net_data(ctx: Any, name: int, mode: int, parent: int, ops: int, state_size: int,
                         data: int) -> int:
    state_size = max(state_size & 0xFFFFFFFF, ctx.kernel.layouts[SEQ_NET_PRIVATE].size)   # room for p->net
    return _create(ctx, name, mode, parent, SEQ_OPS, seq_ops=ops, state_size=state_size,
                   data=data, net=_net_of(ctx, parent))


@export("proc_create_net_single", "struct proc_dir_entry *proc_create_net_single(const char *name, "
        "umode_t mode, struct proc_dir_entry *parent, int (*show)(struct seq_file *, void *), "
        "void *data)", nargs=5, gpl=True)
def proc_create_net_single(ctx: Any, name: int, mode: int, parent: int, show: int,
                           data: int) -> int:
    return _create(ctx, name, mode, parent, SEQ_OPS, show=show, data=data,
                   net=_net_of(ctx, parent))
