"""drivers/pci/search.c: looking up PCI devices, on a machine with none.

The emulated machine has no PCI bus devices (drivers bind to nothing,
kloaderd/drivers/base/driver.py), so every search finds nothing:
`pci_get_device`, `pci_get_subsys`, `pci_get_class` and
`pci_get_domain_bus_and_slot` return NULL and `pci_dev_present` 0, as
Linux's do on such a machine; a driver that looks for its hardware this
way returns -ENODEV.  `pci_dev_put(NULL)` and `pci_dev_get(NULL)` do
nothing, as Linux's; a non-NULL device cannot have come from this kernel,
so putting or getting one is not emulated (an oops naming the function)
rather than a silent success.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.oops import NotEmulated


def _no_device(ctx: Any, name: str, dev: int) -> int:
    if dev:
        raise NotEmulated(name)
    return 0


@export("pci_dev_put", "void pci_dev_put(struct pci_dev *dev)", nargs=1)
def pci_dev_put(ctx: Any, dev: int) -> int:
    return _no_device(ctx, "pci_dev_put", dev)


@export("pci_dev_get", "struct pci_dev *pci_dev_get(struct pci_dev *dev)", nargs=1)
def pci_dev_get(ctx: Any, dev: int) -> int:
    return _no_device(ctx, "pci_dev_get", dev)


@export("pci_get_device", "struct pci_dev *pci_get_device(unsigned int vendor, unsigned int device, "
        "struct pci_dev *from)", nargs=3)
def pci_get_device(ctx: Any, vendor: int, device: int, from_: int) -> int:
    return _no_device(ctx, "pci_get_device", from_)


@export("pci_get_subsys", "struct pci_dev *pci_get_subsys(unsigned int vendor, unsigned int device, "
        "unsigned int ss_vendor, unsigned int ss_device, struct pci_dev *from)", nargs=5)
def pci_get_subsys(ctx: Any, vendor: int, device: int, ss_vendor: int, ss_device: int,
                   from_: int) -> int:
    return _no_device(ctx, "pci_get_subsys", from_)


@export("pci_get_class", "struct pci_dev *pci_get_class(unsigned int class, struct pci_dev *from)",
        nargs=2)
def pci_get_class(ctx: Any, class_: int, from_: int) -> int:
    return _no_device(ctx, "pci_get_class", from_)


@export("pci_get_domain_bus_and_slot", "struct pci_dev *pci_get_domain_bus_and_slot(int domain, "
        "unsigned int bus, unsigned int devfn)", nargs=3)
def pci_get_domain_bus_and_slot(ctx: Any, domain: int, bus: int, devfn: int) -> int:
    return 0


@export("pci_dev_present", "int pci_dev_present(const struct pci_device_id *ids)", nargs=1)
def pci_dev_present(ctx: Any, ids: int) -> int:
    return 0
