"""Common-subexpression elimination: an equation equal to an earlier one (same primitive,
inputs and parameters) reuses its outputs. Makes sin and cos of one argument computed once.
The operands of a commutative primitive are compared in either order: the transpose of
``x * y`` writes ``ct * y`` where the forward pass has ``y * ct``. Graphs inside equations are
cleaned too."""

from __future__ import annotations

from adjit.ir.graph import Graph, Literal, map_subgraphs
from adjit.passes.rewrite import Renamer

# Primitives whose result is the same, to the bit, with their two operands swapped (not max
# and min: NumPy's maximum(0.0, -0.0) is the first operand).
COMMUTATIVE = frozenset({"add", "mul", "eq", "ne", "and", "or"})


def _key(eqn, rename):
    inputs = tuple(a.key() if isinstance(a, Literal) else rename(a).id for a in eqn.inputs)
    if eqn.prim in COMMUTATIVE:
        inputs = tuple(sorted(inputs, key=repr))
    # A graph param is keyed by its printed text: equal bodies print equal.
    params = tuple(sorted((k, repr(v)) for k, v in eqn.params.items()))
    return eqn.prim, inputs, params, tuple(repr(v.aval) for v in eqn.outs)


def cse(graph: Graph) -> Graph:
    renamer = Renamer()
    seen = {}
    eqns = []
    for eqn in graph.eqns:
        eqn = map_subgraphs(eqn, cse)
        key = _key(eqn, renamer)
        if key in seen:
            for var, earlier in zip(eqn.outs, seen[key]):
                renamer.alias(var, earlier)
            continue
        seen[key] = eqn.outs
        eqns.append(renamer.apply(eqn))
    return renamer.finish(graph, eqns)
