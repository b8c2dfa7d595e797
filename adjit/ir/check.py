"""The type checker: every variable defined once before use, every equation's output type equal
to what its primitive's shape rule gives for its inputs."""

from __future__ import annotations

from adjit.errors import AdjitError
from adjit.ir.graph import Graph, Literal
from adjit.primitives.registry import abstract_rules, rule


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
        expected = rule(abstract_rules, "shape", eqn.prim)(*in_avals, **eqn.params)
        if expected != eqn.out.aval:
            raise GraphTypeError(f"{where} produces {eqn.out.aval}, its rule says {expected}\n"
                                 f"{graph}")
        define(eqn.out)
    for v in graph.outvars:
        use(v, "the output")
