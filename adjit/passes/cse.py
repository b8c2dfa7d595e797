"""Common-subexpression elimination: an equation equal to an earlier one (same primitive,
inputs and parameters) reuses its output. Makes sin and cos of one argument computed once."""

from __future__ import annotations

from adjit.ir.graph import Graph, Literal
from adjit.passes.rewrite import Renamer


def _key(eqn, rename):
    inputs = tuple(a.key() if isinstance(a, Literal) else rename(a).id for a in eqn.inputs)
    params = tuple(sorted((k, repr(v)) for k, v in eqn.params.items()))
    return eqn.prim, inputs, params, repr(eqn.out.aval)


def cse(graph: Graph) -> Graph:
    renamer = Renamer()
    seen = {}
    eqns = []
    for eqn in graph.eqns:
        key = _key(eqn, renamer)
        if key in seen:
            renamer.alias(eqn.out, seen[key])
            continue
        seen[key] = eqn.out
        eqns.append(renamer.apply(eqn))
    return renamer.finish(graph, eqns)
