"""Common-subexpression elimination: an equation equal to an earlier one (same primitive,
inputs and parameters) reuses its outputs. Makes sin and cos of one argument computed once.
Graphs inside equations are cleaned too."""

from __future__ import annotations

from adjit.ir.graph import Graph, Literal, map_subgraphs
from adjit.passes.rewrite import Renamer


def _key(eqn, rename):
    inputs = tuple(a.key() if isinstance(a, Literal) else rename(a).id for a in eqn.inputs)
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
