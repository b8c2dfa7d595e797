"""Dead-code elimination: drop equations whose outputs nothing uses (every primitive is pure)."""

from __future__ import annotations

from adjit.ir.graph import Graph, Literal


def dce(graph: Graph) -> Graph:
    live = {v.id for v in graph.outvars if not isinstance(v, Literal)}
    kept = []
    for eqn in reversed(graph.eqns):
        if eqn.out.id in live:
            kept.append(eqn)
            live.update(a.id for a in eqn.inputs if not isinstance(a, Literal))
    return graph.replace(eqns=reversed(kept))
