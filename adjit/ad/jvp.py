"""Forward mode: evaluate a graph with each primitive's JVP rule, staging into the current trace.

Tangents are symbolic ``Zero`` until something makes them non-zero, so the derivative of code
that does not depend on the inputs costs nothing. ``jvp_graph`` returns the JVP of a graph as a
graph: what a rule of an equation carrying a graph (a call's body) uses.
"""

from __future__ import annotations

from adjit.ir.eval import eval_graph
from adjit.ir.graph import Graph
from adjit.ir.rules import Zero, jvp_rules, multiple_results, rule
from adjit.primitives.registry import instantiate as instantiate_zero
from adjit.trace import bind_outs, get_aval, trace_closed


def _jvp_eqn(eqn, pairs):
    primals = [p for p, _ in pairs]
    tangents = [t for _, t in pairs]
    if all(isinstance(t, Zero) for t in tangents):
        outs = bind_outs(eqn.prim, *primals, **eqn.params)
        return [(o, Zero(v.aval)) for o, v in zip(outs, eqn.outs)]
    out, t_out = rule(jvp_rules, "jvp", eqn.prim)(primals, tangents, **eqn.params)
    if eqn.prim not in multiple_results:
        out, t_out = [out], [t_out]
    return list(zip(out, t_out))


def jvp_eval(graph: Graph, consts, primals, tangents):
    """(primal outputs, tangent outputs) of ``graph`` at ``primals`` in direction ``tangents``."""
    inputs = [(c, Zero(v.aval)) for c, v in zip(consts, graph.constvars)]
    inputs += list(zip(primals, tangents))
    pairs = eval_graph(graph, inputs, _jvp_eqn, literal=lambda lit: (lit.value, Zero(lit.aval)))
    outs = [p for p, _ in pairs]
    t_outs = [Zero(get_aval(o)) if isinstance(t, Zero) else t for o, (_, t) in zip(outs, pairs)]
    return outs, t_outs


def jvp_graph(graph: Graph, nonzero, instantiate=None) -> tuple[Graph, list[bool]]:
    """The JVP of a closed graph as a graph: inputs are the primals then the tangents of the
    inputs where ``nonzero`` says so; outputs the primal outputs then the tangents that are
    not symbolically zero, which the returned mask marks. Outputs where ``instantiate`` says
    so always get a tangent (zeros if need be): a loop's carry, every branch of a conditional."""
    n = len(graph.invars)
    tangent_avals = [v.aval for v, nz in zip(graph.invars, nonzero) if nz]
    instantiate = instantiate or [False] * len(graph.outvars)
    out_nonzero = []

    def fun(*args):
        primals, it = args[:n], iter(args[n:])
        tangents = [next(it) if nz else Zero(v.aval) for v, nz in zip(graph.invars, nonzero)]
        outs, t_outs = jvp_eval(graph, [], primals, tangents)
        t_outs = [instantiate_zero(t) if inst else t for t, inst in zip(t_outs, instantiate)]
        out_nonzero[:] = [not isinstance(t, Zero) for t in t_outs]
        return [*outs, *(t for t in t_outs if not isinstance(t, Zero))]

    return trace_closed(fun, [*graph.in_avals, *tangent_avals]), out_nonzero
