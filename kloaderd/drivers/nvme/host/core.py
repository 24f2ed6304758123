"""drivers/nvme/host/core.c, built in: Debian's cloud kernels boot from
NVMe, so `nvme-core` is part of vmlinux (CONFIG_NVME_CORE=y) and the
fabrics transports (nvme-tcp, nvme-rdma, nvme-fc) link against it there.

What they read of it first are the three workqueues `nvme_core_init()`
allocates and exports: `nvme_wq` ("nvme-wq"), `nvme_reset_wq`
("nvme-reset-wq") and `nvme_delete_wq` ("nvme-delete-wq"), each a
`struct workqueue_struct *` the transports queue controller work on and
flush at exit.  Under a profile that exports them they point at kloader
workqueues made at boot (kloaderd/workqueue/), with Linux's names and
`max_active` 0 (WQ_DFL_ACTIVE).  No NVMe controller exists, so no other
part of the core runs here; kloader's own kernel has no NVMe core.
"""

from __future__ import annotations

from typing import Any

from ....kernel.api import at_boot
from ....kernel.kdata import DataExport, export_data
from ....workqueue.workqueue import WQ_DFL_ACTIVE, workqueues

WORKQUEUES = (("nvme_wq", "nvme-wq"), ("nvme_reset_wq", "nvme-reset-wq"),
              ("nvme_delete_wq", "nvme-delete-wq"))

for _variable, _name in WORKQUEUES:
    export_data(_variable, DataExport(lambda _profile: 8))      # a pointer, any release


@at_boot
def nvme_core_init(kernel: Any) -> None:
    if kernel.profile is None:
        return
    for variable, name in WORKQUEUES:
        if variable in kernel.profile.exports:
            wq = workqueues(kernel).create(name, None, WQ_DFL_ACTIVE)
            kernel.mem.write_u64(kernel.symbols.get(variable).address, wq.address)
