"""The hypervisor the machine runs on: none.  CPUID leaf 0x40000000 names
no hypervisor, so `x86_hyper_type` is X86_HYPER_NATIVE and
`xen_domain_type` XEN_NATIVE (kernel/kdata.py), and Hyper-V's
arch/x86/hyperv/hv_init.c was never initialised, and no KVM signature
("KVMKVMKVM") is found: `kvm_para_available()` is false."""

from __future__ import annotations

from typing import Any

from ...kernel.api import export


@export("hv_is_hyperv_initialized", "bool hv_is_hyperv_initialized(void)", nargs=0, gpl=True)
def hv_is_hyperv_initialized(ctx: Any) -> int:
    return 0


@export("kvm_para_available", "bool kvm_para_available(void)", nargs=0, gpl=True)
def kvm_para_available(ctx: Any) -> int:
    return 0
