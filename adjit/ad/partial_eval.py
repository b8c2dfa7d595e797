"""Partial evaluation: split a graph into the part computable from the known inputs and the
part that needs the unknown ones, with the residuals (known values the unknown part reads)
between them. Reverse mode splits the JVP graph this way: the known part is the primal
computation and the coefficients, the unknown part is linear in the tangents and is what gets
transposed. An equation carrying a graph is split by its ``partial_eval_rules`` entry, so only
its linear part is transposed."""

from __future__ import annotations

from adjit.ir.graph import Graph, Literal
from adjit.ir.rules import partial_eval_rules


def partial_eval_graph(graph: Graph, unknown_ins, instantiate=None
                       ) -> tuple[Graph, Graph, list[bool], int]:
    """``(known, unknown, out_unknown, n_residuals)``.

    ``known`` takes the constvars and the known invars and returns the known outputs followed
    by the residuals; ``unknown`` takes the residuals then the unknown invars and returns the
    unknown outputs; ``out_unknown[i]`` says which of the two gives output i. Outputs where
    ``instantiate`` says so are given by the unknown part even when known (a loop's carry that
    is unknown on entry, every branch of a conditional alike): they pass through as residuals."""
    unknown = {v.id for v, u in zip(graph.invars, unknown_ins) if u}
    known_eqns, unknown_eqns = [], []
    for eqn in graph.eqns:
        ins_unknown = [not isinstance(a, Literal) and a.id in unknown for a in eqn.inputs]
        if not any(ins_unknown):
            known_eqns.append(eqn)
            continue
        split = partial_eval_rules.get(eqn.prim)
        if split is not None:
            known_eqn, eqn = split(eqn, ins_unknown)
            if known_eqn is not None:
                known_eqns.append(known_eqn)
        unknown_eqns.append(eqn)
        unknown.update(v.id for v in eqn.outs)
    instantiate = instantiate or [False] * len(graph.outvars)
    read_by_unknown = [a for eqn in unknown_eqns for a in eqn.inputs]
    read_by_unknown += [v for v, inst in zip(graph.outvars, instantiate) if inst]
    residuals, seen = [], set()
    for a in read_by_unknown:
        if not isinstance(a, Literal) and a.id not in unknown and a.id not in seen:
            seen.add(a.id)
            residuals.append(a)
    out_unknown = [inst or not isinstance(v, Literal) and v.id in unknown
                   for v, inst in zip(graph.outvars, instantiate)]
    known = Graph(graph.constvars, [v for v, u in zip(graph.invars, unknown_ins) if not u],
                  known_eqns,
                  [v for v, u in zip(graph.outvars, out_unknown) if not u] + residuals)
    unknown_graph = Graph([], residuals + [v for v, u in zip(graph.invars, unknown_ins) if u],
                          unknown_eqns, [v for v, u in zip(graph.outvars, out_unknown) if u])
    return known, unknown_graph, out_unknown, len(residuals)
