"""lib/rbtree.c's balancing, on nodes in memory as modules embed them:
random insertions (linked as rb_link_node links them) and erasures keep a
valid red-black tree — in order, parents right, the root black, no red
node under a red one, every path as black as every other — and the walks
(rb_first/next/prev/last, postorder) visit what is there."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from kloaderd.lib import rbtree
from kloaderd.lib.rbtree import BLACK, LEFT, PARENT_COLOR, RIGHT, Tree


class Memory:
    """Little-endian words at addresses: all the tree code reads and writes."""

    def __init__(self) -> None:
        self.words: dict[int, int] = {}

    def read_u64(self, addr: int) -> int:
        return self.words.get(addr, 0)

    def write_u64(self, addr: int, value: int) -> None:
        self.words[addr] = value

    def read(self, addr: int, size: int) -> bytes:
        return b"".join(self.read_u64(addr + i).to_bytes(8, "little") for i in range(0, size, 8))

    def write(self, addr: int, data: bytes) -> None:
        for i in range(0, len(data), 8):
            self.write_u64(addr + i, int.from_bytes(data[i:i + 8], "little"))


ROOT = 0x1000
KEY = 24                     # the key, after the embedded rb_node


def node_at(key: int) -> int:
    return 0x10000 + key * 64


def link(mem: Memory, key: int) -> int:
    """rb_link_node after the module's inline search."""
    parent, where = 0, ROOT
    node = mem.read_u64(ROOT)
    while node:
        parent = node
        where = node + (LEFT if key < mem.read_u64(node + KEY) else RIGHT)
        node = mem.read_u64(where)
    new = node_at(key)
    mem.write_u64(new + KEY, key)
    mem.write_u64(new + PARENT_COLOR, parent)
    mem.write_u64(new + LEFT, 0)
    mem.write_u64(new + RIGHT, 0)
    mem.write_u64(where, new)
    return new


def check(mem: Memory) -> list[int]:
    """The keys in order, after checking every red-black property."""
    keys: list[int] = []

    def walk(node: int, parent: int) -> int:
        if not node:
            return 1
        assert mem.read_u64(node + PARENT_COLOR) & ~3 == parent
        black = mem.read_u64(node + PARENT_COLOR) & BLACK
        for child in (mem.read_u64(node + LEFT), mem.read_u64(node + RIGHT)):
            if child and not black:
                assert mem.read_u64(child + PARENT_COLOR) & BLACK, "red under red"
        left = walk(mem.read_u64(node + LEFT), node)
        keys.append(mem.read_u64(node + KEY))
        right = walk(mem.read_u64(node + RIGHT), node)
        assert left == right, "black heights differ"
        return left + black
    root = mem.read_u64(ROOT)
    if root:
        assert mem.read_u64(root + PARENT_COLOR) & BLACK
    walk(root, 0)
    assert keys == sorted(keys)
    return keys


@pytest.mark.parametrize("seed", range(20))
def test_random_insertions_and_erasures_keep_a_red_black_tree(seed):
    rng = random.Random(seed)
    mem = Memory()
    tree = Tree(mem, ROOT)
    ctx = SimpleNamespace(mem=mem)
    present: set[int] = set()
    for _ in range(400):
        key = rng.randrange(200)
        if key in present and rng.random() < 0.6:
            tree.erase(node_at(key))
            present.discard(key)
        elif key not in present:
            tree.insert_color(link(mem, key))
            present.add(key)
        assert check(mem) == sorted(present)
    walked, node = [], rbtree.rb_first(ctx, ROOT)
    while node:
        walked.append(mem.read_u64(node + KEY))
        node = rbtree.rb_next(ctx, node)
    assert walked == sorted(present)
    backwards, node = [], rbtree.rb_last(ctx, ROOT)
    while node:
        backwards.append(mem.read_u64(node + KEY))
        node = rbtree.rb_prev(ctx, node)
    assert backwards == sorted(present, reverse=True)
    post, node = [], rbtree.rb_first_postorder(ctx, ROOT)
    while node:
        post.append(mem.read_u64(node + KEY))
        node = rbtree.rb_next_postorder(ctx, node)
    assert sorted(post) == sorted(present) and (not post or post[-1] == mem.read_u64(mem.read_u64(ROOT) + KEY))


def test_replacing_a_node_keeps_its_place():
    mem = Memory()
    tree = Tree(mem, ROOT)
    for key in (5, 3, 8, 1, 4):
        tree.insert_color(link(mem, key))
    new = 0x90000
    mem.write_u64(new + KEY, 3)
    rbtree.rb_replace_node(SimpleNamespace(mem=mem), node_at(3), new, ROOT)
    assert check(mem) == [1, 3, 4, 5, 8]
    assert mem.read_u64(mem.read_u64(ROOT) + LEFT) in (new, node_at(1), node_at(4))
