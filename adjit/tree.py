"""Pytrees: nested tuples, lists, dicts and namedtuples of arrays, flattened to a list of leaves
and a hashable description of the structure (``TreeDef``) to rebuild them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class TreeDef(NamedTuple):
    kind: Any          # None for a leaf, else the container type
    aux: Any           # dict keys (sorted) or namedtuple type; None otherwise
    children: tuple    # TreeDefs of the children

    @property
    def num_leaves(self) -> int:
        return 1 if self.kind is None else sum(c.num_leaves for c in self.children)


LEAF = TreeDef(None, None, ())


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def flatten(tree) -> tuple[list, TreeDef]:
    leaves: list = []

    def walk(node) -> TreeDef:
        if node is None:
            return TreeDef(type(None), None, ())
        if _is_namedtuple(node):
            return TreeDef(tuple, type(node), tuple(walk(c) for c in node))
        if isinstance(node, (tuple, list)):
            return TreeDef(type(node), None, tuple(walk(c) for c in node))
        if isinstance(node, dict):
            keys = sorted(node)
            return TreeDef(dict, tuple(keys), tuple(walk(node[k]) for k in keys))
        leaves.append(node)
        return LEAF

    return leaves, walk(tree)


def unflatten(treedef: TreeDef, leaves) -> Any:
    it = iter(leaves)

    def build(td: TreeDef):
        if td.kind is None:
            return next(it)
        if td.kind is type(None):
            return None
        children = [build(c) for c in td.children]
        if td.kind is dict:
            return dict(zip(td.aux, children))
        if td.aux is not None:
            return td.aux(*children)
        return td.kind(children)

    return build(treedef)


def tree_map(fn: Callable, tree, *rest):
    leaves, treedef = flatten(tree)
    others = [flatten(r)[0] for r in rest]
    return unflatten(treedef, [fn(*xs) for xs in zip(leaves, *others)])


def leaves(tree) -> list:
    return flatten(tree)[0]


map = tree_map
