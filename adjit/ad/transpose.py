"""Reverse mode = linearize + transpose.

``vjp_eval`` traces the JVP of a graph, splits it by partial evaluation into the known part
(the primal computation and the coefficients, replayed forward into the current trace) and the
unknown part, linear in the tangents (the JVP rules only scale, add and move tangents). The
backward function walks the linear part in reverse, each primitive's transpose rule turning
an output cotangent into input cotangents (``transpose_linear``). ``backward_pass`` does the
same for a graph whose linear inputs are given (the rules of equations carrying graphs).
"""

from __future__ import annotations

from adjit.ad.jvp import jvp_eval
from adjit.ad.partial_eval import partial_eval_graph
from adjit.ir.eval import eval_graph
from adjit.ir.graph import Graph, Literal
from adjit.ir.rules import LinearArg, Zero, multiple_results, rule, transpose_rules
from adjit.primitives.registry import add_tangents, zeros_like_aval
from adjit.trace import bind_eqn, get_aval, trace_to_graph


def linearize_graph(graph: Graph, consts, primal_avals, diff):
    """The JVP graph (primals, then the tangents of the ``diff`` inputs) and its consts."""
    n = len(primal_avals)
    tangent_avals = [a for a, d in zip(primal_avals, diff) if d]

    def jvp_fun(*args):
        primals, tangent_in = args[:n], iter(args[n:])
        tangents = [next(tangent_in) if d else Zero(a) for a, d in zip(primal_avals, diff)]
        outs, t_outs = jvp_eval(graph, consts, primals, tangents)
        return [*outs, *(zeros_like_aval(t.aval) if isinstance(t, Zero) else t for t in t_outs)]

    return trace_to_graph(jvp_fun, [*primal_avals, *tangent_avals])


def transpose_linear(linear: Graph, residuals, cts) -> list:
    """Cotangents of the linear inputs of ``linear`` (the unknown part of a partial
    evaluation: its invars are the residuals, then the linear inputs; every equation reads a
    linear value) given cotangents of its outputs: the equations are walked in reverse, each
    primitive's transpose rule turning output cotangents into input cotangents."""
    n_res = len(residuals)
    value_of = {v.id: r for v, r in zip(linear.invars[:n_res], residuals)}

    def arg(atom):
        if isinstance(atom, Literal):
            return atom.value
        return value_of[atom.id] if atom.id in value_of else LinearArg(atom.aval)

    ct_of: dict[int, object] = {}

    def accumulate(var, ct):
        if ct is not None and not isinstance(ct, Zero):
            ct_of[var.id] = add_tangents(ct_of.get(var.id, Zero(var.aval)), ct)

    for var, ct in zip(linear.outvars, cts):
        if not isinstance(var, Literal) and var.id not in value_of:
            accumulate(var, ct)
    for eqn in reversed(linear.eqns):
        cts_out = [ct_of.pop(v.id, None) for v in eqn.outs]
        if all(ct is None for ct in cts_out):
            continue
        if eqn.prim in multiple_results:
            ct = [Zero(v.aval) if c is None else c for c, v in zip(cts_out, eqn.outs)]
        else:
            ct = cts_out[0]
        ins = [arg(a) for a in eqn.inputs]
        cts_in = rule(transpose_rules, "transpose", eqn.prim)(ct, *ins, **eqn.params)
        for atom, x, ct_in in zip(eqn.inputs, ins, cts_in):
            if isinstance(x, LinearArg):
                accumulate(atom, ct_in)
    return [ct_of.get(v.id, Zero(v.aval)) for v in linear.invars[n_res:]]


def backward_pass(graph: Graph, args, cts) -> list:
    """Cotangents of a closed graph's invars given cotangents of its outputs: ``args`` holds a
    value for each non-linear invar and a ``LinearArg`` for each linear one. The graph is
    partially evaluated: its known part runs forward (into the current trace) and gives the
    residuals, its unknown part (linear; equations carrying graphs split by their rules) is
    transposed. Non-linear invars get ``Zero``."""
    unknown = [isinstance(a, LinearArg) for a in args]
    known, linear, out_unknown, n_res = partial_eval_graph(graph, unknown)
    known_values = eval_graph(known, [a for a, u in zip(args, unknown) if not u], bind_eqn)
    residuals = known_values[len(known_values) - n_res:]
    cts_in = iter(transpose_linear(linear, residuals,
                                   [ct for ct, u in zip(cts, out_unknown) if u]))
    return [next(cts_in) if u else Zero(v.aval) for v, u in zip(graph.invars, unknown)]


def vjp_eval(graph: Graph, consts, primals, diff):
    """Primal outputs of ``graph`` and a function from output cotangents to input cotangents.

    ``diff[i]`` says whether input i is differentiated; the backward function returns one
    cotangent (possibly ``Zero``) per differentiated input.
    """
    primal_avals = [get_aval(p) for p in primals]
    jvp_graph, jvp_consts = linearize_graph(graph, consts, primal_avals, diff)
    n_in, n_out = len(primals), len(graph.outvars)
    n_tangents = len(jvp_graph.invars) - n_in
    known, linear, out_unknown, n_res = partial_eval_graph(
        jvp_graph, [False] * n_in + [True] * n_tangents)
    known_outs = eval_graph(known, [*jvp_consts, *primals], bind_eqn)
    outs = known_outs[:n_out]
    residuals = known_outs[len(known_outs) - n_res:]

    def backward(cts):
        return transpose_linear(linear, residuals,
                                [ct for ct, u in zip(cts, out_unknown[n_out:]) if u])

    return outs, backward
