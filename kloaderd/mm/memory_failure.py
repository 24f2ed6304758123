"""mm/memory-failure.c's filter switch for hwpoison-inject (6.12 exports
it): `hwpoison_filter_enable`, a u32 the module sets and clears through
debugfs and its exit, 0 at boot.  No page is ever poisoned here.
"""

from __future__ import annotations

from ..kernel.kdata import DataExport, export_data

export_data("hwpoison_filter_enable", DataExport(lambda _profile: 4))
