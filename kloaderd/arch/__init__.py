"""Per-architecture relocation, as Linux's arch/*/kernel/module.c (x86-64 only so far)."""
