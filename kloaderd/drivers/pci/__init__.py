"""drivers/pci: the PCI bus of a machine that has no PCI devices."""
