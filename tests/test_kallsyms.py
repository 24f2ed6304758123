"""kallsyms with many modules: per-region tables kept in address order (issue 14).

A load or removal inserts or deletes its module's regions instead of
re-sorting every symbol; these tests check that what `kallsyms` lists and
what `%pS` and oopses resolve stay exactly what one global sort gave."""

from __future__ import annotations

import bisect

import pytest

from bench.common import renamed
from kloaderd.kernel.kallsyms import module_symbols
from lifecycle_helpers import ko, new_kernel


def _reference(kernel) -> list:
    """What the old implementation built: every symbol, one stable sort."""
    merged = list(kernel.ksyms._core.syms)
    for mod in kernel.loaded.values():
        if mod.linked is not None:
            merged.extend(module_symbols(mod))
    return sorted(merged, key=lambda s: s.address)


@pytest.mark.trio
async def test_listing_and_lookups_match_one_global_sort_as_modules_come_and_go():
    kernel = new_kernel()
    hello = ko("hello")
    names = [f"m{i:03d}" for i in range(40)]
    for name in names:
        await kernel.init_module(renamed(hello, name.ljust(5, "x")[:5]))
    for name in names[::3]:
        await kernel.delete_module(name.ljust(5, "x")[:5])
    await kernel.init_module(ko("printfmt"))
    listed = kernel.ksyms.all()
    reference = _reference(kernel)
    assert [(s.address, s.name, s.module) for s in listed] == \
        [(s.address, s.name, s.module) for s in reference]
    starts = [s.address for s in reference]
    for sym in reference:
        for address in (sym.address, sym.address + max(sym.size - 1, 0)):
            found = kernel.ksyms.lookup(address)
            assert found is not None
            first = reference[bisect.bisect_left(starts, bisect_start(starts, address))]
            assert found[0].address == first.address and found[0].name == first.name
    gone = names[0].ljust(5, "x")[:5]
    assert not [s for s in listed if s.module == gone]


def bisect_start(starts: list[int], address: int) -> int:
    return starts[bisect.bisect_right(starts, address) - 1]
