"""Reverse mode = linearize + transpose.

``vjp_eval`` traces the JVP of a graph into a graph of its own, in which every variable that
depends on a tangent input is linear in the tangents (the JVP rules only scale, add and move
tangents). The non-linear equations are the primal computation and the coefficients: they are
replayed forward into the current trace. The linear equations are walked backwards, each
primitive's transpose rule turning an output cotangent into input cotangents.
"""

from __future__ import annotations

from adjit.ad.jvp import jvp_eval
from adjit.ir.graph import Graph, Literal
from adjit.primitives.registry import LinearArg, Zero, rule, transpose_rules
from adjit.primitives.structural import add_tangents
from adjit.trace import bind, get_aval, trace_to_graph


def linearize_graph(graph: Graph, consts, primal_avals, diff):
    """The JVP graph (primals + tangents of the ``diff`` inputs) and the ids of its linear vars."""
    n = len(primal_avals)
    tangent_avals = [a for a, d in zip(primal_avals, diff) if d]

    def jvp_fun(*args):
        primals, tangent_in = args[:n], iter(args[n:])
        tangents = [next(tangent_in) if d else Zero(a) for a, d in zip(primal_avals, diff)]
        outs, t_outs = jvp_eval(graph, consts, primals, tangents)
        return [*outs, *(t if not isinstance(t, Zero) else _zeros(t) for t in t_outs)]

    jvp_graph, jvp_consts = trace_to_graph(jvp_fun, [*primal_avals, *tangent_avals])
    linear = {v.id for v in jvp_graph.invars[n:]}
    for eqn in jvp_graph.eqns:
        if any(not isinstance(a, Literal) and a.id in linear for a in eqn.inputs):
            linear.add(eqn.out.id)
    return jvp_graph, jvp_consts, linear


def _zeros(t: Zero):
    from adjit.primitives.structural import zeros_like_aval

    return zeros_like_aval(t.aval)


def vjp_eval(graph: Graph, consts, primals, diff):
    """Primal outputs of ``graph`` and a function from output cotangents to input cotangents.

    ``diff[i]`` says whether input i is differentiated; the backward function returns one
    cotangent (possibly ``Zero``) per differentiated input.
    """
    primal_avals = [get_aval(p) for p in primals]
    jvp_graph, jvp_consts, linear = linearize_graph(graph, consts, primal_avals, diff)
    n_in, n_out = len(primals), len(graph.outvars)

    values: dict[int, object] = {}
    for var, value in zip(jvp_graph.constvars, jvp_consts):
        values[var.id] = value
    for var, value in zip(jvp_graph.invars[:n_in], primals):
        values[var.id] = value

    def read(atom):
        return atom.value if isinstance(atom, Literal) else values[atom.id]

    linear_eqns = []
    for eqn in jvp_graph.eqns:
        if eqn.out.id in linear:
            linear_eqns.append(eqn)
        else:
            values[eqn.out.id] = bind(eqn.prim, *[read(a) for a in eqn.inputs], **eqn.params)
    outs = [read(v) for v in jvp_graph.outvars[:n_out]]
    tangent_outs = jvp_graph.outvars[n_out:]
    tangent_ins = jvp_graph.invars[n_in:]

    def backward(cts):
        ct_of: dict[int, object] = {}
        for var, ct in zip(tangent_outs, cts):
            if not isinstance(var, Literal) and var.id in linear and not isinstance(ct, Zero):
                ct_of[var.id] = add_tangents(ct_of.get(var.id, Zero(var.aval)), ct)
        for eqn in reversed(linear_eqns):
            ct = ct_of.pop(eqn.out.id, None)
            if ct is None:
                continue
            args = [LinearArg(a.aval) if not isinstance(a, Literal) and a.id in linear
                    else read(a) for a in eqn.inputs]
            cts_in = rule(transpose_rules, "transpose", eqn.prim)(ct, *args, **eqn.params)
            for atom, arg, ct_in in zip(eqn.inputs, args, cts_in):
                if isinstance(arg, LinearArg) and ct_in is not None and not isinstance(ct_in, Zero):
                    ct_of[atom.id] = add_tangents(ct_of.get(atom.id, Zero(atom.aval)), ct_in)
        return [ct_of.get(v.id, Zero(v.aval)) for v in tangent_ins]

    return outs, backward
