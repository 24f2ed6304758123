"""drivers/firmware/efi/vars.c on a machine booted without EFI: no
efivars backend ever registers, so `efivars_kobject()` is NULL (efivarfs's
init gives up with -ENODEV) and `efivar_supports_writes()` false
(efi-pstore registers nothing), as on a BIOS machine.
"""

from __future__ import annotations

from typing import Any

from ....kernel.api import export


@export("efivars_kobject", "struct kobject *efivars_kobject(void)", nargs=0, gpl=True)
def efivars_kobject(ctx: Any) -> int:
    return 0


@export("efivar_supports_writes", "bool efivar_supports_writes(void)", nargs=0, gpl=True)
def efivar_supports_writes(ctx: Any) -> int:
    return 0
