"""The `.bin` index files libkmod reads (libkmod-index.c's format, as depmod writes it).

A radix trie of 7-bit ASCII keys, big-endian throughout:

    u32 magic 0xB007F457, u32 version 0x00020001, u32 root offset
    node:  [prefix\\0]                      when INDEX_NODE_PREFIX
           [u8 first, u8 last, u32 child[last-first+1]]   when INDEX_NODE_CHILDS
           [u32 count, (u32 priority, value\\0) * count]   when INDEX_NODE_VALUES

A node's offset carries its flags in the high nibble.  Children are written
before their parent (post-order), so offsets are known when the parent is.
Values at a key are kept sorted by priority, a new value going before
existing ones of equal priority, as depmod's `index_add_value` does: that
is what makes our files byte-identical to depmod's.
"""

from __future__ import annotations

import bisect
import os
import struct

INDEX_MAGIC = 0xB007F457
INDEX_VERSION = 0x00020001
INDEX_CHILDMAX = 128
NODE_PREFIX = 0x80000000
NODE_VALUES = 0x40000000
NODE_CHILDS = 0x20000000
NODE_MASK = 0x0FFFFFFF


class Index:
    """Keys and their values; `write` lays out the trie.

    depmod builds its trie by inserting keys one by one, splitting nodes where
    keys diverge.  The result is the unique compressed trie of the key set
    (the root never has a prefix; every other node's prefix is the longest
    common one of its keys), so kloader builds that trie directly from the
    sorted keys, which costs a sort and a few bisections instead of a walk
    per character.
    """

    def __init__(self) -> None:
        self.entries: dict[bytes, list[tuple[int, bytes]]] = {}

    def insert(self, key: str, value: str, priority: int) -> bool:
        """Add a value under `key`; True when that exact value was already there."""
        if not (key.isascii() and value.isascii()):
            raise ValueError(f"Module index: bad character in {key!r} {value!r}: only 7-bit ASCII is supported")
        values = self.entries.setdefault(key.encode(), [])
        v = value.encode()
        duplicate = any(old == v for _, old in values)
        values.append((priority, v))
        return duplicate

    def write(self) -> bytes:
        out = bytearray(struct.pack(">III", INDEX_MAGIC, INDEX_VERSION, 0))
        keys = sorted(self.entries)
        root = _write_node(self.entries, keys, 0, len(keys), 0, True, out)
        struct.pack_into(">I", out, 8, root)
        return bytes(out)


def _ordered(values: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """index_add_value's order: by priority, the latest first among equals."""
    return sorted(reversed(values), key=lambda pv: pv[0])


def _write_node(entries: dict[bytes, list[tuple[int, bytes]]], keys: list[bytes], lo: int, hi: int,
                depth: int, root: bool, out: bytearray) -> int:
    """Write the node holding keys[lo:hi] (which share keys[lo][:depth]) after its children."""
    first = keys[lo] if lo < hi else b""
    if root or lo == hi:
        prefix = b""
    else:
        prefix = os.path.commonprefix([first[depth:], keys[hi - 1][depth:]])
    depth += len(prefix)
    values = None
    if lo < hi and len(first) == depth:
        values = _ordered(entries[first])
        lo += 1
    children: list[tuple[int, int]] = []
    while lo < hi:
        ch = keys[lo][depth]
        end = bisect.bisect_left(keys, keys[lo][:depth] + bytes((ch + 1,)), lo, hi)
        children.append((ch, _write_node(entries, keys, lo, end, depth + 1, False, out)))
        lo = end
    offset = len(out)
    if prefix:
        out += prefix + b"\0"
        offset |= NODE_PREFIX
    if children:
        c_first, c_last = children[0][0], children[-1][0]
        table = [0] * (c_last - c_first + 1)
        for ch, off in children:
            table[ch - c_first] = off
        out += bytes((c_first, c_last))
        out += struct.pack(f">{len(table)}I", *table)
        offset |= NODE_CHILDS
    if values:
        out += struct.pack(">I", len(values))
        for priority, value in values:
            out += struct.pack(">I", priority) + value + b"\0"
        offset |= NODE_VALUES
    return offset
