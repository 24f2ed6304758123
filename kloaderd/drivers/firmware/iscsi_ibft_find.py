"""drivers/firmware/iscsi_ibft_find.c: where the boot firmware's iSCSI Boot
Firmware Table was found at boot (`ibft_phys_addr`).  The machine's
firmware has none: 0, and iscsi_ibft finds no table to show.
"""

from __future__ import annotations

from ...kernel.kdata import DataExport, export_data

export_data("ibft_phys_addr", DataExport(lambda _profile: 8))      # phys_addr_t, 0
