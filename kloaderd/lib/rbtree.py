"""Red-black trees (Linux's lib/rbtree.c): the balancing behind the
`struct rb_node`s modules embed in their objects and search inline.

A module links a node itself (`rb_link_node`, inline) and calls
`rb_insert_color` to rebalance; `rb_erase` unlinks and rebalances;
`rb_first`/`rb_last`/`rb_next`/`rb_prev` and the postorder walk follow
the pointers.  Everything is done in guest memory, case for case as
Linux's code does it (the same rotations and recolourings), so the tree a
module walks has the shape Linux would give it.  The augmented variants
(`__rb_insert_augmented`, callbacks per rotation) are not emulated.

Layout (every release): rb_node {__rb_parent_color@0 (the parent, colour in
bit 0: 0 red, 1 black), rb_right@8, rb_left@16} 24 bytes; rb_root
{rb_node@0}.
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export

PARENT_COLOR, RIGHT, LEFT = 0, 8, 16
NODE_SIZE = 24
RED, BLACK = 0, 1


class Tree:
    """The rbtree operations on one root, in guest memory."""

    def __init__(self, mem: Any, root: int) -> None:
        self.mem, self.root = mem, root

    def get(self, node: int, field: int) -> int:
        return self.mem.read_u64(node + field)

    def put(self, node: int, field: int, value: int) -> None:
        self.mem.write_u64(node + field, value)

    def parent(self, node: int) -> int:
        return self.get(node, PARENT_COLOR) & ~3

    def is_black(self, node: int) -> bool:
        return bool(self.get(node, PARENT_COLOR) & BLACK)

    def set_parent_color(self, node: int, parent: int, color: int) -> None:
        self.put(node, PARENT_COLOR, parent | color)

    def set_parent(self, node: int, parent: int) -> None:
        self.put(node, PARENT_COLOR, (self.get(node, PARENT_COLOR) & BLACK) | parent)

    def change_child(self, old: int, new: int, parent: int) -> None:
        if parent:
            self.put(parent, LEFT if self.get(parent, LEFT) == old else RIGHT, new)
        else:
            self.put(self.root, 0, new)

    def rotate_set_parents(self, old: int, new: int, color: int) -> None:
        parent = self.parent(old)
        self.put(new, PARENT_COLOR, self.get(old, PARENT_COLOR))
        self.set_parent_color(old, new, color)
        self.change_child(old, new, parent)

    def insert_color(self, node: int) -> None:
        """__rb_insert: `node` is linked red below its parent."""
        parent = self.get(node, PARENT_COLOR)          # red: the colour bit is 0
        while True:
            if not parent:
                self.set_parent_color(node, 0, BLACK)
                return
            if self.is_black(parent):
                return
            gparent = self.get(parent, PARENT_COLOR)
            near, far = (LEFT, RIGHT) if self.get(gparent, RIGHT) != parent else (RIGHT, LEFT)
            uncle = self.get(gparent, far)
            if uncle and not self.is_black(uncle):
                self.set_parent_color(uncle, gparent, BLACK)      # case 1: recolour
                self.set_parent_color(parent, gparent, BLACK)
                node = gparent
                parent = self.parent(node)
                self.set_parent_color(node, parent, RED)
                continue
            tmp = self.get(parent, far)
            if node == tmp:                                   # case 2: rotate at parent
                tmp = self.get(node, near)
                self.put(parent, far, tmp)
                self.put(node, near, parent)
                if tmp:
                    self.set_parent_color(tmp, parent, BLACK)
                self.set_parent_color(parent, node, RED)
                parent = node
                tmp = self.get(node, far)
            self.put(gparent, near, tmp)                      # case 3: rotate at grandparent
            self.put(parent, far, gparent)
            if tmp:
                self.set_parent_color(tmp, gparent, BLACK)
            self.rotate_set_parents(gparent, parent, RED)
            return

    def erase(self, node: int) -> None:
        """__rb_erase_augmented, then ____rb_erase_color where needed."""
        child, tmp = self.get(node, RIGHT), self.get(node, LEFT)
        if not tmp:
            pc = self.get(node, PARENT_COLOR)
            parent = pc & ~3
            self.change_child(node, child, parent)
            if child:
                self.put(child, PARENT_COLOR, pc)
                rebalance = 0
            else:
                rebalance = parent if pc & BLACK else 0
        elif not child:
            pc = self.get(node, PARENT_COLOR)
            self.put(tmp, PARENT_COLOR, pc)
            self.change_child(node, tmp, pc & ~3)
            rebalance = 0
        else:
            successor = child
            tmp = self.get(child, LEFT)
            if not tmp:
                parent, child2 = successor, self.get(successor, RIGHT)
            else:
                while tmp:
                    parent, successor, tmp = successor, tmp, self.get(tmp, LEFT)
                child2 = self.get(successor, RIGHT)
                self.put(parent, LEFT, child2)
                self.put(successor, RIGHT, child)
                self.set_parent(child, successor)
            tmp = self.get(node, LEFT)
            self.put(successor, LEFT, tmp)
            self.set_parent(tmp, successor)
            pc = self.get(node, PARENT_COLOR)
            self.change_child(node, successor, pc & ~3)
            if child2:
                self.set_parent_color(child2, parent, BLACK)
                rebalance = 0
            else:
                rebalance = parent if self.is_black(successor) else 0
            self.put(successor, PARENT_COLOR, pc)
        if rebalance:
            self.erase_color(rebalance)

    def erase_color(self, parent: int) -> None:
        node = 0
        while True:
            sibling = self.get(parent, RIGHT)
            near, far = (LEFT, RIGHT) if node != sibling else (RIGHT, LEFT)
            if near == RIGHT:
                sibling = self.get(parent, LEFT)
            if not self.is_black(sibling):                    # case 1: rotate at parent
                tmp1 = self.get(sibling, near)
                self.put(parent, far, tmp1)
                self.put(sibling, near, parent)
                self.set_parent_color(tmp1, parent, BLACK)
                self.rotate_set_parents(parent, sibling, RED)
                sibling = tmp1
            tmp1 = self.get(sibling, far)
            if not tmp1 or self.is_black(tmp1):
                tmp2 = self.get(sibling, near)
                if not tmp2 or self.is_black(tmp2):           # case 2: recolour the sibling
                    self.set_parent_color(sibling, parent, RED)
                    if not self.is_black(parent):
                        self.put(parent, PARENT_COLOR, self.get(parent, PARENT_COLOR) | BLACK)
                    else:
                        node = parent
                        parent = self.parent(node)
                        if parent:
                            continue
                    return
                tmp1 = self.get(tmp2, far)                    # case 3: rotate at sibling
                self.put(sibling, near, tmp1)
                self.put(tmp2, far, sibling)
                self.put(parent, far, tmp2)
                if tmp1:
                    self.set_parent_color(tmp1, sibling, BLACK)
                tmp1 = sibling
                sibling = tmp2
            tmp2 = self.get(sibling, near)                    # case 4: rotate at parent
            self.put(parent, far, tmp2)
            self.put(sibling, near, parent)
            self.set_parent_color(tmp1, sibling, BLACK)
            if tmp2:
                self.set_parent(tmp2, parent)
            self.rotate_set_parents(parent, sibling, BLACK)
            return


@export("rb_insert_color", "void rb_insert_color(struct rb_node *node, struct rb_root *root)", nargs=2)
def rb_insert_color(ctx: Any, node: int, root: int) -> None:
    Tree(ctx.mem, root).insert_color(node)


@export("rb_erase", "void rb_erase(struct rb_node *node, struct rb_root *root)", nargs=2)
def rb_erase(ctx: Any, node: int, root: int) -> None:
    Tree(ctx.mem, root).erase(node)


def _extreme(ctx: Any, root: int, field: int) -> int:
    node = ctx.mem.read_u64(root)
    if not node:
        return 0
    while (child := ctx.mem.read_u64(node + field)):
        node = child
    return node


@export("rb_first", "struct rb_node *rb_first(const struct rb_root *root)", nargs=1)
def rb_first(ctx: Any, root: int) -> int:
    return _extreme(ctx, root, LEFT)


@export("rb_last", "struct rb_node *rb_last(const struct rb_root *root)", nargs=1)
def rb_last(ctx: Any, root: int) -> int:
    return _extreme(ctx, root, RIGHT)


def _step(ctx: Any, node: int, toward: int, back: int) -> int:
    """rb_next (toward RIGHT) or rb_prev (toward LEFT)."""
    mem = ctx.mem
    if mem.read_u64(node + PARENT_COLOR) == node:       # RB_EMPTY_NODE
        return 0
    child = mem.read_u64(node + toward)
    if child:
        node = child
        while (child := mem.read_u64(node + back)):
            node = child
        return node
    while True:
        parent = mem.read_u64(node + PARENT_COLOR) & ~3
        if not parent or node != mem.read_u64(parent + toward):
            return parent
        node = parent


@export("rb_next", "struct rb_node *rb_next(const struct rb_node *node)", nargs=1)
def rb_next(ctx: Any, node: int) -> int:
    return _step(ctx, node, RIGHT, LEFT)


@export("rb_prev", "struct rb_node *rb_prev(const struct rb_node *node)", nargs=1)
def rb_prev(ctx: Any, node: int) -> int:
    return _step(ctx, node, LEFT, RIGHT)


@export("rb_replace_node", "void rb_replace_node(struct rb_node *victim, struct rb_node *new, "
        "struct rb_root *root)", nargs=3)
def rb_replace_node(ctx: Any, victim: int, new: int, root: int) -> None:
    tree = Tree(ctx.mem, root)
    parent = tree.parent(victim)
    ctx.mem.write(new, ctx.mem.read(victim, NODE_SIZE))
    for field in (LEFT, RIGHT):
        child = tree.get(victim, field)
        if child:
            tree.set_parent(child, new)
    tree.change_child(victim, new, parent)


def _left_deepest(ctx: Any, node: int) -> int:
    mem = ctx.mem
    while True:
        child = mem.read_u64(node + LEFT) or mem.read_u64(node + RIGHT)
        if not child:
            return node
        node = child


@export("rb_first_postorder", "struct rb_node *rb_first_postorder(const struct rb_root *root)", nargs=1)
def rb_first_postorder(ctx: Any, root: int) -> int:
    node = ctx.mem.read_u64(root)
    return _left_deepest(ctx, node) if node else 0


@export("rb_next_postorder", "struct rb_node *rb_next_postorder(const struct rb_node *node)", nargs=1)
def rb_next_postorder(ctx: Any, node: int) -> int:
    if not node:
        return 0
    mem = ctx.mem
    parent = mem.read_u64(node + PARENT_COLOR) & ~3
    if parent and node == mem.read_u64(parent + LEFT) and mem.read_u64(parent + RIGHT):
        return _left_deepest(ctx, mem.read_u64(parent + RIGHT))
    return parent
