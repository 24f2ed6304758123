"""include/linux/list.h as the core kernel uses it on lists it owns
(`crypto_alg_list`, `tcp_cong_list`, …): a `struct list_head` head in
kernel memory and entries embedded in module structures, linked in guest
memory exactly as Linux links them, so a module that follows its entry's
pointers finds what it would find in Linux.

Adding and deleting go through the CONFIG_DEBUG_LIST checks of
`list_debug.py`, as Linux's do: deleting an entry that is not on a list is
"list_del corruption" and BUG().
"""

from __future__ import annotations

from typing import Any, Iterator

from . import list_debug
from .list_debug import LIST_POISON1, LIST_POISON2

# (names with two leading underscores would be mangled inside the class)
_add_valid = list_debug.__list_add_valid
_del_entry_valid = list_debug.__list_del_entry_valid

NEXT, PREV = 0, 8
LIST_HEAD_SIZE = 16
MAX_WALK = 1 << 20              # entries a walk follows at most


def init_list_head(mem: Any, entry: int) -> None:
    mem.write_u64(entry + NEXT, entry)
    mem.write_u64(entry + PREV, entry)


class GuestList:
    """A list head in kernel memory (allocated on first use from the core
    kernel's heap, or `head`: one inside a kernel object such as
    `net_namespace_list`) and the entries linked on it."""

    def __init__(self, kernel: Any, head: int = 0) -> None:
        self.kernel = kernel
        self.head = head or kernel.slab.alloc(LIST_HEAD_SIZE, None)
        if not self.head:
            raise MemoryError("no memory for a kernel list head")
        init_list_head(kernel.mem, self.head)

    def _insert(self, ctx: Any, new: int, prev: int, next_: int) -> None:
        _add_valid(ctx, new, prev, next_)
        mem = ctx.mem
        mem.write_u64(next_ + PREV, new)
        mem.write_u64(new + NEXT, next_)
        mem.write_u64(new + PREV, prev)
        mem.write_u64(prev + NEXT, new)

    def add(self, ctx: Any, entry: int) -> None:
        """list_add(): at the front."""
        self._insert(ctx, entry, self.head, ctx.mem.read_u64(self.head + NEXT))

    def insert_before(self, ctx: Any, entry: int, node: int) -> None:
        """list_add_tail(entry, node): before `node` (the head: at the back)."""
        self._insert(ctx, entry, ctx.mem.read_u64(node + PREV), node)

    def add_tail(self, ctx: Any, entry: int) -> None:
        """list_add_tail(): at the back."""
        self._insert(ctx, entry, ctx.mem.read_u64(self.head + PREV), self.head)

    @staticmethod
    def delete(ctx: Any, entry: int, *, init: bool = False, rcu: bool = False) -> None:
        """list_del() (poisoning the entry), list_del_init(), or list_del_rcu()
        (which leaves `next` for readers still walking)."""
        _del_entry_valid(ctx, entry)
        mem = ctx.mem
        next_, prev = mem.read_u64(entry + NEXT), mem.read_u64(entry + PREV)
        mem.write_u64(next_ + PREV, prev)
        mem.write_u64(prev + NEXT, next_)
        if init:
            init_list_head(mem, entry)
        else:
            if not rcu:
                mem.write_u64(entry + NEXT, LIST_POISON1)
            mem.write_u64(entry + PREV, LIST_POISON2)

    def unlink_quietly(self, entry: int) -> None:
        """Take a leftover entry off the list without the debug checks (its
        module's memory is going away): made inert."""
        mem = self.kernel.mem
        for node in list(self):
            if node == entry:
                next_, prev = mem.read_u64(entry + NEXT), mem.read_u64(entry + PREV)
                mem.write_u64(next_ + PREV, prev)
                mem.write_u64(prev + NEXT, next_)
                return

    def __iter__(self) -> Iterator[int]:
        mem, node = self.kernel.mem, self.kernel.mem.read_u64(self.head + NEXT)
        for _ in range(MAX_WALK):                # a corrupted (cyclic) list still ends
            if node == self.head:
                return
            yield node
            node = mem.read_u64(node + NEXT)
