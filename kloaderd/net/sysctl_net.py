"""net/sysctl_net.c: a namespace's sysctl files (`register_net_sysctl`,
`unregister_net_sysctl_table`), which network modules register from their
pernet init under /proc/sys/net.

As Linux 6.1: the table goes into the namespace's own set (`net->sysctls`),
checked and recorded as `register_sysctl` does (fs/proc_sysctl.py: the
same faults refused with the same lines, a name already in that set is a
"sysctl duplicate entry"), and `unregister_net_sysctl_table` is
`unregister_sysctl_table`.  A table left registered when its module goes
is reported.  Only init_net exists, so Linux's check that another
namespace's table writes no global data (`ensure_safe_net_sysctl`) has
nothing to check.
"""

from __future__ import annotations

from typing import Any

from ..fs.proc_sysctl import register, unregister_sysctl_table
from ..kernel.api import export

LAYOUTS = (6, 1)       # struct ctl_table, as fs/proc_sysctl.py reads it


@export("register_net_sysctl", "struct ctl_table_header *register_net_sysctl(struct net *net, "
        "const char *path, struct ctl_table *table)", nargs=3)
def register_net_sysctl(ctx: Any, net: int, path: int, table: int) -> int:
    name = ctx.mem.read_cstr(path, 256).decode("utf-8", "replace").strip("/")
    return register(ctx, name, table, nested=False, sysctl_set=net)


@export("unregister_net_sysctl_table",
        "void unregister_net_sysctl_table(struct ctl_table_header *header)", nargs=1)
def unregister_net_sysctl_table(ctx: Any, header: int) -> None:
    unregister_sysctl_table(ctx, header)
