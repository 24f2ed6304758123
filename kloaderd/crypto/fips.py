"""crypto/fips.c: `fips_enabled`, the int that says the kernel runs in
FIPS 140 mode (the `fips=1` boot parameter).  kloader's kernels boot
without it: 0, so drbg and the other algorithms register their whole set
rather than the approved subset, as on a Debian machine booted normally.
"""

from __future__ import annotations

from ..kernel.kdata import DataExport, export_data

export_data("fips_enabled", DataExport(lambda _profile: 4))        # an int, 0
