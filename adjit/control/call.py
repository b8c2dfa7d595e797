"""Call primitives: ``outs = prim[body=graph] *args`` applies a closed graph to the arguments.

``defcall(name)`` gives a primitive every rule of a call, each a transformation of its body:

* shape: the body's output types (its symbols mapped to the caller's lengths);
* impl: the reference interpreter on the body;
* jvp: a call of ``jvp_graph(body)`` on the primals and the non-zero tangents;
* partial evaluation: the body split into its known part and its unknown part (a call each),
  with the residuals between them, so reverse mode transposes only the linear part;
* transpose: a call of the body transposed (``backward_pass`` traced into a graph);
* batching: a call of ``batch_graph(body)``;
* dead-code elimination across the boundary: unused outputs of the call are dropped from the
  body, and inputs the body no longer reads are dropped from the call.

The pass ``inline_calls`` (kind ``call``) replaces each call by its body before code generation.
The custom-rule primitives (``adjit.custom``) are calls with rules of their own.

``remat`` (``adjit.checkpoint(fun)``) is a call whose partial evaluation keeps none of the
body's values: reverse mode recomputes them from the call's inputs when it needs them, trading
time for memory (inside a loop's body, only the loop's inputs per step are stored).
"""

from __future__ import annotations

import functools

from adjit import tree
from adjit.ad.jvp import jvp_graph
from adjit.ad.partial_eval import partial_eval_graph
from adjit.ad.transpose import backward_pass
from adjit.batching import batch_graph
from adjit.control.branches import trace_fun
from adjit.errors import AdjitValueError
from adjit.ir.graph import Eqn, Graph, Literal, Var, dim_map, subst_dims
from adjit.ir.interpret import interpret
from adjit.ir.rules import (
    LinearArg,
    Zero,
    batching_rules,
    dce_rules,
    jvp_rules,
    partial_eval_rules,
    transpose_rules,
)
from adjit.passes.dce import dce
from adjit.primitives.registry import defprim, instantiate, linear_prims
from adjit.trace import bind, get_aval, is_tracing, trace_closed


def call_abstract(*in_avals, body: Graph, **_):
    formal = body.in_avals
    if len(in_avals) != len(formal):
        raise AdjitValueError(f"adjit: a call of a graph with {len(formal)} inputs got "
                              f"{len(in_avals)}")
    mapping = dim_map(formal, in_avals)
    return [subst_dims(v.aval, mapping) for v in body.outvars]


def call_impl(*args, body: Graph, **_):
    return interpret(body, [], args)


def defcall(name: str, remat: bool = False) -> None:
    """Register ``name`` as a call primitive with the rules above. With ``remat``, partial
    evaluation stores nothing of the body: the unknown call takes the known inputs and
    recomputes what it needs (``adjit.checkpoint``)."""

    def jvp(primals, tangents, *, body, **params):
        nonzero = [not isinstance(t, Zero) for t in tangents]
        body_jvp, out_nonzero = jvp_graph(body, nonzero)
        outs = bind(name, *primals, *(t for t in tangents if not isinstance(t, Zero)),
                    body=body_jvp, **params)
        n = len(body.outvars)
        t_it = iter(outs[n:])
        t_outs = [next(t_it) if nz else Zero(get_aval(o)) for o, nz in zip(outs[:n], out_nonzero)]
        return outs[:n], t_outs

    def split(eqn: Eqn, unknown_ins):
        body = eqn.params["body"]
        known, unknown, out_unknown, n_res = partial_eval_graph(body, unknown_ins)
        mapping = dim_map(body.in_avals, [a.aval for a in eqn.inputs])
        residuals = [Var(subst_dims(v.aval, mapping)) for v in unknown.invars[:n_res]]
        params = {k: v for k, v in eqn.params.items() if k != "body"}
        known_eqn = Eqn(name, [a for a, u in zip(eqn.inputs, unknown_ins) if not u],
                        [v for v, u in zip(eqn.outs, out_unknown) if not u] + residuals,
                        {**params, "body": known}, eqn.source)
        unknown_eqn = Eqn(name, residuals + [a for a, u in zip(eqn.inputs, unknown_ins) if u],
                          [v for v, u in zip(eqn.outs, out_unknown) if u],
                          {**params, "body": unknown}, eqn.source)
        return known_eqn, unknown_eqn

    def split_remat(eqn: Eqn, unknown_ins):
        body = eqn.params["body"]
        known, _, out_unknown, n_res = partial_eval_graph(body, unknown_ins)
        params = {k: v for k, v in eqn.params.items() if k != "body"}
        known = dce(known.replace(outvars=known.outvars[:len(known.outvars) - n_res]))
        known_eqn = Eqn(name, [a for a, u in zip(eqn.inputs, unknown_ins) if not u],
                        [v for v, u in zip(eqn.outs, out_unknown) if not u],
                        {**params, "body": known}, eqn.source)
        recompute = dce(body.replace(outvars=[v for v, u in zip(body.outvars, out_unknown)
                                              if u]))
        unknown_eqn = Eqn(name, eqn.inputs, [v for v, u in zip(eqn.outs, out_unknown) if u],
                          {**params, "body": recompute}, eqn.source)
        return known_eqn, unknown_eqn

    def transpose(cts, *args, body, **params):
        fixed = [a for a in args if not isinstance(a, LinearArg)]
        linear = [a for a in args if isinstance(a, LinearArg)]

        def transposed(*xs):
            it_fixed, it_lin = iter(xs[:len(fixed)]), iter(linear)
            ins = [next(it_lin) if isinstance(a, LinearArg) else next(it_fixed) for a in args]
            cts_in = backward_pass(body, ins, list(xs[len(fixed):]))
            return [instantiate(c) for c, a in zip(cts_in, args) if isinstance(a, LinearArg)]

        cts = [instantiate(c) for c in cts]
        t_body = trace_closed(transposed, [get_aval(x) for x in (*fixed, *cts)])
        cts_lin = iter(bind(name, *fixed, *cts, body=t_body, **params))
        return [next(cts_lin) if isinstance(a, LinearArg) else None for a in args]

    def batch(args, dims, *, body, **params):
        batched, out_dims = batch_graph(body, [get_aval(x) for x in args], dims)
        return bind(name, *args, body=batched, **params), out_dims

    def prune(eqn: Eqn, used_outs):
        body = eqn.params["body"]
        body = dce(body.replace(outvars=[v for v, u in zip(body.outvars, used_outs) if u]))
        read = {a.id for e in body.eqns for a in e.inputs if not isinstance(a, Literal)}
        read |= {v.id for v in body.outvars if not isinstance(v, Literal)}
        used_ins = [v.id in read for v in body.invars]
        body = body.replace(invars=[v for v, u in zip(body.invars, used_ins) if u])
        return eqn.replace(inputs=[a for a, u in zip(eqn.inputs, used_ins) if u],
                           outs=[v for v, u in zip(eqn.outs, used_outs) if u],
                           params={**eqn.params, "body": body})

    defprim(name, call_abstract, call_impl, kind="call", multiple=True)
    jvp_rules[name] = jvp
    partial_eval_rules[name] = split_remat if remat else split
    transpose_rules[name] = transpose
    linear_prims.add(name)
    batching_rules[name] = batch
    dce_rules[name] = prune


# --------------------------------------------------------------------------- checkpoint

defcall("remat", remat=True)


def checkpoint(fun):
    """``fun``, whose intermediate values reverse mode recomputes instead of storing (JAX's
    ``checkpoint``/``remat``): memory for the residuals of its body is traded for running it
    again in the backward pass."""
    @functools.wraps(fun)
    def wrapped(*args):
        if not is_tracing():
            return fun(*args)
        leaves, in_tree = tree.flatten(args)
        graph, consts, out_tree = trace_fun(fun, in_tree, [get_aval(x) for x in leaves],
                                            "the function given to checkpoint")
        return tree.unflatten(out_tree, bind("remat", *consts, *leaves, body=graph))

    return wrapped
