"""mm/swap.c: `__folio_put`, where `put_page()`/`folio_put()` go once their
inline `folio_put_testzero()` has dropped the last reference (kTLS's exit
puts the page it took with `alloc_page` so).

The page's block goes back to the heap it came from (`mm/page_alloc.py`'s
memmap gives its address).  Where kloader differs: pages are never marked
compound, so the whole block `alloc_pages` gave is freed, where Linux would
free a non-compound higher-order block's first page only; and a page put
while its `_refcount` is not 0 is freed all the same, where Linux reports
"BUG: Bad page state".
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from .page_alloc import PAGE, free_pages, memmap


@export("__folio_put", "void __folio_put(struct folio *folio)", nargs=1, structs=(PAGE,))
def __folio_put(ctx: Any, folio: int) -> None:
    free_pages(ctx, memmap(ctx).address_of(folio), 0)
