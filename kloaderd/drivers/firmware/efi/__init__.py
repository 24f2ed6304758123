"""EFI (drivers/firmware/efi/): a machine booted by BIOS has none."""
