"""Forward mode: evaluate a graph with each primitive's JVP rule, staging into the current trace.

Tangents are symbolic ``Zero`` until something makes them non-zero, so the derivative of code
that does not depend on the inputs costs nothing.
"""

from __future__ import annotations

from adjit.ir.graph import Graph, Literal
from adjit.primitives.registry import Zero, jvp_rules, rule
from adjit.trace import bind, get_aval


def jvp_eval(graph: Graph, consts, primals, tangents):
    """(primal outputs, tangent outputs) of ``graph`` at ``primals`` in direction ``tangents``."""
    values: dict[int, object] = {}
    tangent_of: dict[int, object] = {}

    def read(atom):
        return atom.value if isinstance(atom, Literal) else values[atom.id]

    def read_tangent(atom):
        if isinstance(atom, Literal):
            return Zero(atom.aval)
        t = tangent_of.get(atom.id)
        return Zero(atom.aval) if t is None else t

    for var, value in zip(graph.constvars, consts):
        values[var.id] = value
    for var, value, t in zip(graph.invars, primals, tangents):
        values[var.id] = value
        if not isinstance(t, Zero):
            tangent_of[var.id] = t
    for eqn in graph.eqns:
        ins = [read(a) for a in eqn.inputs]
        t_ins = [read_tangent(a) for a in eqn.inputs]
        if all(isinstance(t, Zero) for t in t_ins):
            values[eqn.out.id] = bind(eqn.prim, *ins, **eqn.params)
            continue
        out, t_out = rule(jvp_rules, "jvp", eqn.prim)(ins, t_ins, **eqn.params)
        values[eqn.out.id] = out
        if not isinstance(t_out, Zero):
            tangent_of[eqn.out.id] = t_out
    outs = [read(v) for v in graph.outvars]
    t_outs = [read_tangent(v) for v in graph.outvars]
    t_outs = [Zero(get_aval(o)) if isinstance(t, Zero) else t for o, t in zip(outs, t_outs)]
    return outs, t_outs
