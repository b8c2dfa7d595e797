"""Shared machinery of the control-flow primitives: tracing user functions into closed graphs
that take their captured values as leading inputs, and checking that several graphs (the
branches of a conditional, a loop body's carry) agree on their types."""

from __future__ import annotations

from adjit import tree
from adjit.errors import AdjitTypeError
from adjit.ir.graph import Var, same_shape
from adjit.trace import get_aval, trace_to_graph


def trace_fun(fun, in_tree, avals, what: str):
    """Trace ``fun(*args)`` (args of structure ``in_tree`` whose leaves have ``avals``) into
    a closed graph over (captured values, then the leaves); returns (graph, captured values,
    output tree)."""
    out_tree_box = []

    def flat(*leaves):
        out_leaves, out_tree = tree.flatten(fun(*tree.unflatten(in_tree, leaves)))
        out_tree_box.append(out_tree)
        for leaf in out_leaves:
            try:
                get_aval(leaf)
            except AdjitTypeError:
                raise AdjitTypeError(f"adjit: {what} must return arrays or numbers (or pytrees "
                                     f"of them), got {type(leaf).__name__}") from None
        return out_leaves

    graph, consts = trace_to_graph(flat, avals)
    closed = graph.replace(constvars=(), invars=(*graph.constvars, *graph.invars))
    return closed, list(consts), out_tree_box[-1]


def join_consts(graphs, consts_per_graph):
    """Graphs that captured different outside values, each made to take all of them (in one
    order) as its leading inputs; returns (graphs, the joint values)."""
    joint, index = [], {}
    for consts in consts_per_graph:
        for c in consts:
            if id(c) not in index:
                index[id(c)] = len(joint)
                joint.append(c)
    joined = []
    for graph, consts in zip(graphs, consts_per_graph):
        own = {index[id(c)]: v for c, v in zip(consts, graph.invars[:len(consts)])}
        leading = [own[k] if k in own else Var(get_aval(c)) for k, c in enumerate(joint)]
        joined.append(graph.replace(invars=(*leading, *graph.invars[len(consts):])))
    return joined, joint


def describe(avals) -> str:
    return "(" + ", ".join(map(str, avals)) + ")"


def same_types(a, b) -> bool:
    return len(a) == len(b) and all(x.dtype == y.dtype and same_shape(x.shape, y.shape)
                                    for x, y in zip(a, b))
