"""Conditionals: ``adjit.cond`` and ``adjit.switch`` (JAX's semantics).

    outs... = cond[branches=(g0, g1, ...)] index, *operands

runs the branch ``index`` (clamped to the branches) on the operands; every branch is a closed
graph with the same input and output types. Each rule transforms every branch: the JVP is a
cond of the branches' JVPs, partial evaluation splits every branch alike (each known branch
returns the residuals of all, zeros for the others'), the transpose is a cond of the branches
transposed, batching a cond of the batched branches, or, when the index differs across the
batch, every branch evaluated and the results selected.
"""

from __future__ import annotations

import numpy as np

from adjit import tree
from adjit.ad.jvp import jvp_graph
from adjit.ad.partial_eval import partial_eval_graph
from adjit.ad.transpose import backward_pass
from adjit.batching import batch_eval, batch_graph, broadcast_batch
from adjit.control.branches import describe, join_consts, same_types, trace_fun
from adjit.errors import AdjitTypeError, AdjitValueError
from adjit.ir.eval import eval_graph
from adjit.ir.graph import Eqn, Literal, Var, dim_map, subst_dims
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
from adjit.primitives import elementwise as ew
from adjit.primitives.registry import defprim, instantiate, linear_prims, zeros_like_aval
from adjit.trace import bind, bind_eqn, get_aval, trace_closed

# --------------------------------------------------------------------------- the user's API


def switch(index, branches, *operands):
    """``branches[index](*operands)``, with ``index`` clamped to ``0 .. len(branches) - 1``;
    every branch is traced and must return the same types."""
    branches = list(branches)
    if not branches:
        raise AdjitValueError("adjit: switch needs at least one branch")
    idx_aval = get_aval(index)
    if idx_aval.shape != () or idx_aval.dtype.kind not in "iub":
        raise AdjitTypeError(f"adjit: the index of switch must be an integer scalar, got "
                             f"{idx_aval}")
    leaves, in_tree = tree.flatten(operands)
    avals = [get_aval(x) for x in leaves]
    traced = [trace_fun(b, in_tree, avals, f"branch {i} of cond/switch")
              for i, b in enumerate(branches)]
    graph0, _, tree0 = traced[0]
    for i, (graph, _, out_tree) in enumerate(traced[1:], 1):
        if out_tree != tree0:
            raise AdjitTypeError(f"adjit: the branches of cond/switch return different "
                                 f"structures: branch 0 returns {tree0}, branch {i} {out_tree}")
        if not same_types(graph.out_avals, graph0.out_avals):
            raise AdjitTypeError(
                f"adjit: the branches of cond/switch return different types: branch 0 returns "
                f"{describe(graph0.out_avals)}, branch {i} {describe(graph.out_avals)}")
    graphs, consts = join_consts([g for g, _, _ in traced], [c for _, c, _ in traced])
    index = ew.convert_element_type(index, np.dtype(np.int64))
    outs = bind("cond", index, *consts, *leaves, branches=tuple(graphs))
    return tree.unflatten(tree0, outs)


def cond(pred, true_fun, false_fun, *operands):
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``; both are traced and
    must return the same types. ``pred`` is a scalar (a traced one too)."""
    aval = get_aval(pred)
    if aval.shape != ():
        raise AdjitTypeError(f"adjit: cond needs a scalar predicate, got an array {aval}")
    index = ew.convert_element_type(ew.ne(pred, np.zeros((), aval.dtype)), np.dtype(np.int64))
    return switch(index, (false_fun, true_fun), *operands)


# --------------------------------------------------------------------------- the primitive


def _clamp(i: int, n: int) -> int:
    return min(max(int(i), 0), n - 1)


def _cond_abstract(index, *operands, branches):
    if index.shape != () or index.dtype.kind not in "iu":
        raise AdjitTypeError(f"adjit: cond's index must be an integer scalar, got {index}")
    formal = branches[0].in_avals
    if len(formal) != len(operands):
        raise AdjitValueError(f"adjit: cond's branches take {len(formal)} operands, got "
                              f"{len(operands)}")
    mapping = dim_map(formal, operands)
    return [subst_dims(v.aval, mapping) for v in branches[0].outvars]


def _cond_impl(index, *operands, branches):
    return interpret(branches[_clamp(index, len(branches))], [], operands)


def _cond_jvp(primals, tangents, *, branches):
    index, operands = primals[0], primals[1:]
    nonzero = [not isinstance(t, Zero) for t in tangents[1:]]
    out_nonzero = [any(col) for col in zip(*(jvp_graph(b, nonzero)[1] for b in branches))]
    jvps = tuple(jvp_graph(b, nonzero, instantiate=out_nonzero)[0] for b in branches)
    outs = bind("cond", index, *operands, *(t for t in tangents[1:] if not isinstance(t, Zero)),
                branches=jvps)
    n = len(branches[0].outvars)
    t_it = iter(outs[n:])
    return outs[:n], [next(t_it) if nz else Zero(get_aval(o))
                      for o, nz in zip(outs[:n], out_nonzero)]


def _cond_partial_eval(eqn: Eqn, unknown_ins):
    if unknown_ins[0]:  # an index that depends on unknowns: nothing is known
        return None, eqn
    branches = eqn.params["branches"]
    unknown_ops = unknown_ins[1:]
    out_unknown = [any(col) for col in zip(*(partial_eval_graph(b, unknown_ops)[2]
                                             for b in branches))]
    splits = [partial_eval_graph(b, unknown_ops, instantiate=out_unknown) for b in branches]
    mapping = dim_map(branches[0].in_avals, [a.aval for a in eqn.inputs[1:]])
    res_avals = [[v.aval for v in known.outvars[len(known.outvars) - n_res:]]
                 for known, _, _, n_res in splits]
    residuals = [Var(subst_dims(a, mapping)) for avals in res_avals for a in avals]
    known_ops = [v.aval for v, u in zip(branches[0].invars, unknown_ops) if not u]
    known_branches, unknown_branches = [], []
    for i, (known, unknown, _, n_res) in enumerate(splits):
        n_known_out = len(known.outvars) - n_res

        def known_fn(*xs, known=known, i=i, n_known_out=n_known_out):
            values = eval_graph(known, list(xs), bind_eqn)
            slots = [[zeros_like_aval(a) for a in avals] for avals in res_avals]
            slots[i] = values[n_known_out:]
            return [*values[:n_known_out], *(r for slot in slots for r in slot)]

        known_branches.append(trace_closed(known_fn, known_ops))
        slots = [[Var(a) for a in avals] for avals in res_avals]
        slots[i] = list(unknown.invars[:n_res])
        unknown_branches.append(unknown.replace(
            invars=(*(v for slot in slots for v in slot), *unknown.invars[n_res:])))
    index = eqn.inputs[0]
    known_eqn = Eqn("cond", [index, *(a for a, u in zip(eqn.inputs[1:], unknown_ops) if not u)],
                    [v for v, u in zip(eqn.outs, out_unknown) if not u] + residuals,
                    {"branches": tuple(known_branches)}, eqn.source)
    unknown_eqn = Eqn("cond", [index, *residuals,
                               *(a for a, u in zip(eqn.inputs[1:], unknown_ops) if u)],
                      [v for v, u in zip(eqn.outs, out_unknown) if u],
                      {"branches": tuple(unknown_branches)}, eqn.source)
    return known_eqn, unknown_eqn


def _cond_transpose(cts, index, *args, branches):
    if isinstance(index, LinearArg):
        raise AdjitTypeError("adjit: cond's index cannot depend on the values being "
                             "differentiated linearly")
    fixed = [a for a in args if not isinstance(a, LinearArg)]
    cts = [instantiate(c) for c in cts]

    def transposed_fn(branch):
        def fn(*xs):
            it = iter(xs[:len(fixed)])
            ins = [a if isinstance(a, LinearArg) else next(it) for a in args]
            cts_in = backward_pass(branch, ins, list(xs[len(fixed):]))
            return [instantiate(c) for c, a in zip(cts_in, args) if isinstance(a, LinearArg)]
        return fn

    avals = [get_aval(x) for x in (*fixed, *cts)]
    transposed = tuple(trace_closed(transposed_fn(b), avals) for b in branches)
    cts_lin = iter(bind("cond", index, *fixed, *cts, branches=transposed))
    return [None] + [next(cts_lin) if isinstance(a, LinearArg) else None for a in args]


def _cond_batch(args, dims, *, branches):
    index, operands = args[0], args[1:]
    n_out = len(branches[0].outvars)
    if dims[0] is None:
        batched = tuple(batch_graph(b, [get_aval(x) for x in operands], dims[1:],
                                    force=[True] * n_out)[0] for b in branches)
        return bind("cond", index, *operands, branches=batched), [0] * n_out
    # The index differs across the batch: every branch runs, and each example takes its own.
    size = get_aval(index).shape[0]
    results = []
    for b in branches:
        outs, out_dims = batch_eval(b, [], operands, dims[1:])
        results.append([o if d is not None else broadcast_batch(o, size)
                        for o, d in zip(outs, out_dims)])
    clamped = ew.min_p(ew.max_p(index, ew.full_like(index, 0)),
                       ew.full_like(index, len(branches) - 1))
    chosen = []
    for k in range(n_out):
        out = results[-1][k]
        shape = get_aval(out).shape
        for i in range(len(branches) - 2, -1, -1):
            take = ew.eq(clamped, ew.full_like(clamped, i))
            take = bind("broadcast_in_dim", take, shape=shape, broadcast_dimensions=(0,))
            out = ew.select(take, results[i][k], out)
        chosen.append(out)
    return chosen, [0] * n_out


def _cond_dce(eqn: Eqn, used_outs):
    pruned = [dce(b.replace(outvars=[v for v, u in zip(b.outvars, used_outs) if u]))
              for b in eqn.params["branches"]]
    read = set()
    for b in pruned:
        read |= {a.id for e in b.eqns for a in e.inputs if not isinstance(a, Literal)}
        read |= {v.id for v in b.outvars if not isinstance(v, Literal)}
    keep = [any(b.invars[k].id in read for b in pruned) for k in range(len(pruned[0].invars))]
    pruned = tuple(b.replace(invars=[v for v, k in zip(b.invars, keep) if k]) for b in pruned)
    return eqn.replace(inputs=[eqn.inputs[0], *(a for a, k in zip(eqn.inputs[1:], keep) if k)],
                       outs=[v for v, u in zip(eqn.outs, used_outs) if u],
                       params={"branches": pruned})


defprim("cond", _cond_abstract, _cond_impl, kind="control", multiple=True)
jvp_rules["cond"] = _cond_jvp
partial_eval_rules["cond"] = _cond_partial_eval
transpose_rules["cond"] = _cond_transpose
linear_prims.add("cond")
batching_rules["cond"] = _cond_batch
dce_rules["cond"] = _cond_dce
