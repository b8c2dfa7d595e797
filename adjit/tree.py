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


# The recursive helpers are module functions, not closures: a recursive closure is a reference
# cycle, which would keep the arrays it saw alive until the garbage collector runs (a fresh
# 8 MB output per call then costs page faults instead of reusing freed memory).


def _walk(node, leaves: list) -> TreeDef:
    if node is None:
        return TreeDef(type(None), None, ())
    if _is_namedtuple(node):
        return TreeDef(tuple, type(node), tuple(_walk(c, leaves) for c in node))
    if isinstance(node, (tuple, list)):
        return TreeDef(type(node), None, tuple(_walk(c, leaves) for c in node))
    if isinstance(node, dict):
        keys = sorted(node)
        return TreeDef(dict, tuple(keys), tuple(_walk(node[k], leaves) for k in keys))
    leaves.append(node)
    return LEAF


def flatten(tree) -> tuple[list, TreeDef]:
    leaves: list = []
    treedef = _walk(tree, leaves)
    return leaves, treedef


def _build(td: TreeDef, it):
    if td.kind is None:
        return next(it)
    if td.kind is type(None):
        return None
    children = [_build(c, it) for c in td.children]
    if td.kind is dict:
        return dict(zip(td.aux, children))
    if td.aux is not None:
        return td.aux(*children)
    return td.kind(children)


def unflatten(treedef: TreeDef, leaves) -> Any:
    if treedef is LEAF:
        return leaves[0]
    return _build(treedef, iter(leaves))


def tree_map(fn: Callable, tree, *rest):
    leaves, treedef = flatten(tree)
    others = [flatten(r)[0] for r in rest]
    return unflatten(treedef, [fn(*xs) for xs in zip(leaves, *others)])


def leaves(tree) -> list:
    return flatten(tree)[0]


map = tree_map
