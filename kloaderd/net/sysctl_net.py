"""net/sysctl_net.c: a namespace's sysctl files (`register_net_sysctl`,
6.6's `register_net_sysctl_sz`, `unregister_net_sysctl_table`), which
network modules register from their pernet init under /proc/sys/net.

As Linux 6.1: the table goes into the namespace's own set (`net->sysctls`),
checked and recorded as `register_sysctl` does (fs/proc_sysctl.py: the
same faults refused with the same lines, a name already in that set is a
"sysctl duplicate entry"; `register_net_sysctl_sz` takes the table's first
`table_size` entries, as `register_sysctl_sz`), and
`unregister_net_sysctl_table` is `unregister_sysctl_table`.  A table left registered when its module goes
is reported.  Only init_net exists, so Linux's check that another
namespace's table writes no global data (`ensure_safe_net_sysctl`) has
nothing to check.
"""

from __future__ import annotations

from typing import Any

from ..fs import proc_sysctl
from ..fs.proc_sysctl import register, sysctl_path, unregister_sysctl_table
from ..kernel.api import export

STRUCTS = proc_sysctl.STRUCTS      # struct ctl_table and its header, as fs/proc_sysctl.py reads them


@export("register_net_sysctl", "struct ctl_table_header *register_net_sysctl(struct net *net, "
        "const char *path, struct ctl_table *table)", nargs=3)
def register_net_sysctl(ctx: Any, net: int, path: int, table: int) -> int:
    return register(ctx, sysctl_path(ctx, path), table, nested=False, sysctl_set=net)


@export("register_net_sysctl_sz", "struct ctl_table_header *register_net_sysctl_sz(struct net *net, "
        "const char *path, struct ctl_table *table, size_t table_size)", nargs=4)
def register_net_sysctl_sz(ctx: Any, net: int, path: int, table: int, table_size: int) -> int:
    return register(ctx, sysctl_path(ctx, path), table, nested=False, sysctl_set=net,
                    count=table_size)


@export("unregister_net_sysctl_table",
        "void unregister_net_sysctl_table(struct ctl_table_header *header)", nargs=1)
def unregister_net_sysctl_table(ctx: Any, header: int) -> None:
    unregister_sysctl_table(ctx, header)
