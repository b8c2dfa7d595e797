"""Dead-code elimination: drop equations whose outputs nothing uses (every primitive is pure).
Graphs inside equations are cleaned too; an equation with a ``dce_rules`` entry (a call) also
drops the outputs nobody reads and the inputs its body then no longer needs."""

from __future__ import annotations

from adjit.ir.graph import Graph, Literal, map_subgraphs
from adjit.ir.rules import dce_rules


def dce(graph: Graph) -> Graph:
    live = {v.id for v in graph.outvars if not isinstance(v, Literal)}
    kept = []
    for eqn in reversed(graph.eqns):
        used_outs = [v.id in live for v in eqn.outs]
        if not any(used_outs):
            continue
        prune = dce_rules.get(eqn.prim)
        # A pruned equation reads only the inputs it keeps.
        eqn = prune(eqn, used_outs) if prune is not None else map_subgraphs(eqn, dce)
        kept.append(eqn)
        live.update(a.id for a in eqn.inputs if not isinstance(a, Literal))
    return graph.replace(eqns=reversed(kept))
