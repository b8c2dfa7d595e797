"""The type checker: every variable defined once before use, every equation's output types equal
to what its primitive's shape rule gives for its inputs; graphs inside equations are checked
too, and must be closed (no constvars)."""

from __future__ import annotations

from adjit.errors import AdjitError
from adjit.ir.graph import Graph, Literal, subgraphs
from adjit.ir.rules import abstract_rules, multiple_results, rule


class GraphTypeError(AdjitError):
    """A graph broke an invariant of the IR: a bug in a transformation, not in user code."""


def check_graph(graph: Graph) -> None:
    defined: dict[int, object] = {}

    def define(var):
        if var.id in defined:
            raise GraphTypeError(f"variable {var} is assigned twice\n{graph}")
        defined[var.id] = var.aval

    def use(atom, where):
        if isinstance(atom, Literal):
            return atom.aval
        if atom.id not in defined:
            raise GraphTypeError(f"{where} uses {atom} before it is defined\n{graph}")
        if defined[atom.id] != atom.aval:
            raise GraphTypeError(f"{where}: {atom} has two types\n{graph}")
        return atom.aval

    for var in (*graph.constvars, *graph.invars):
        define(var)
    for i, eqn in enumerate(graph.eqns):
        where = f"equation {i} ({eqn.prim})"
        in_avals = [use(a, where) for a in eqn.inputs]
        for sub in subgraphs(eqn):
            if sub.constvars:
                raise GraphTypeError(f"{where} carries a graph with constvars\n{graph}")
            check_graph(sub)
        expected = rule(abstract_rules, "shape", eqn.prim)(*in_avals, **eqn.params)
        expected = list(expected) if eqn.prim in multiple_results else [expected]
        got = [v.aval for v in eqn.outs]
        if len(expected) != len(got) or any(e != g for e, g in zip(expected, got)):
            raise GraphTypeError(f"{where} produces {got}, its rule says {expected}\n{graph}")
        for out in eqn.outs:
            define(out)
    for v in graph.outvars:
        use(v, "the output")
