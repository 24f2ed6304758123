"""Per-architecture relocation, as Linux's arch/*/kernel/module.c (x86-64 only so far).

This package's own module holds the per-architecture rules Linux keeps in
generic code keyed on `e_machine`; it imports nothing, so the ELF reader can
use them without importing a relocator.
"""


def ignore_undef_symbol(name: str) -> bool:
    """Whether an undefined symbol may stay unresolved (`ignore_undef_symbol`
    in kernel/module/main.c, for EM_X86_64): GNU as before 2.37 emits an
    unreferenced `_GLOBAL_OFFSET_TABLE_`.  The ELF reader leaves it out of
    the names to resolve, and the linker gives it its own st_value."""
    return name == "_GLOBAL_OFFSET_TABLE_"
