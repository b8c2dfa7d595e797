"""Loops: ``adjit.scan``, ``adjit.fori_loop`` and ``adjit.while_loop`` (JAX's semantics).

    carry..., ys... = scan[body, length, reverse, n_consts, n_carry] *consts, *init, *xs
    carry...        = while[cond, body, n_cond_consts, n_body_consts] *cond_consts,
                                                                     *body_consts, *init

``scan``'s body maps (consts, carry, x slices) to (new carry, y slices); the ys are stacked
along a new leading axis of ``length`` (``reverse`` runs from the last slice). ``fori_loop``
with Python bounds is a scan carrying the index; with traced bounds, a while loop. The rules
transform the body: the JVP is a scan of the body's JVP (tangent carries found by a fixed
point), partial evaluation splits the body (its per-step residuals become stacked outputs of
the known scan; residuals that are loop-invariant pass as constants), the transpose of the
linear scan runs backwards carrying the cotangents, batching scans the batched body.
``while``: forward mode and batching (a batch whose examples stop at different steps runs
until all stop, the finished ones kept as they were); reverse mode needs the trip count as a
length (not yet: an error that says so).
"""

from __future__ import annotations

import numpy as np

from adjit import tree
from adjit.ad.jvp import jvp_graph
from adjit.ad.partial_eval import partial_eval_graph
from adjit.ad.transpose import backward_pass, transpose_linear
from adjit.batching import batch_eval, batch_graph, broadcast_batch, moveaxis
from adjit.control.branches import describe, same_types, trace_fun
from adjit.errors import AdjitTypeError, AdjitValueError, MissingRuleError
from adjit.ir.eval import eval_graph
from adjit.ir.graph import Eqn, Graph, Literal, ShapedArray, Var, dim_map, subst_dims
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
from adjit.primitives import reductions as rd
from adjit.primitives import structural as st
from adjit.primitives.registry import (
    add_tangents,
    defprim,
    instantiate,
    linear_prims,
    zeros_like_aval,
)
from adjit.trace import bind, bind_eqn, get_aval, trace_closed

# --------------------------------------------------------------------------- the user's API


def _check_carry(what: str, init_avals, out_avals, init_tree, out_tree):
    if out_tree != init_tree:
        raise AdjitTypeError(f"adjit: the body of {what} must return a carry of the structure "
                             f"it takes: it takes {init_tree}, returns {out_tree}")
    if not same_types(init_avals, out_avals):
        raise AdjitTypeError(f"adjit: the body of {what} changes the carry's types: it takes "
                             f"{describe(init_avals)}, returns {describe(out_avals)}")


def scan(f, init, xs=None, length=None, reverse=False, checkpoint=None, snapshots=None):
    """``f(carry, x) -> (carry, y)`` over the leading axis of ``xs``; returns
    ``(final carry, stacked ys)``. ``xs`` may be None with ``length`` given.

    ``checkpoint`` chooses what reverse mode keeps of the steps: None stores every step's
    values; ``"sqrt"`` runs the steps in blocks of about sqrt(length), stores only each
    block's entry carry and recomputes a block's steps when the backward pass reaches it
    (memory O(sqrt(length)) steps, every step run twice); ``"binomial"`` stores at most
    ``snapshots`` carries and recomputes steps on Revolve's optimal schedule (Griewank and
    Walther: r*length - C(snapshots + r, r - 1) extra steps for the repetition number r).
    Both need the length: a symbolic one is fixed (one kernel per length)."""
    if checkpoint == "binomial":
        if not isinstance(snapshots, (int, np.integer)) or snapshots < 1:
            raise AdjitValueError("adjit: checkpoint='binomial' needs snapshots=, a number >= 1 "
                                  "of carries to keep")
        snapshots = int(snapshots)
    elif checkpoint is not None:
        return _scan_in_blocks(f, init, xs, length, reverse, checkpoint)
    elif snapshots is not None:
        raise AdjitValueError("adjit: snapshots= goes with checkpoint='binomial'")
    init_leaves, init_tree = tree.flatten(init)
    x_leaves, x_tree = tree.flatten(xs)
    init_avals = [get_aval(c) for c in init_leaves]
    x_avals = [get_aval(x) for x in x_leaves]
    lengths = [a.shape[0] for a in x_avals if a.ndim] + ([length] if length is not None else [])
    if not lengths:
        raise AdjitValueError("adjit: scan needs xs with a leading axis, or length=")
    if any(a.ndim == 0 for a in x_avals):
        raise AdjitValueError("adjit: scan's xs must be arrays with a leading axis to scan over")
    n = lengths[0]
    if any(not (m is n or m == n) for m in lengths[1:]):
        raise AdjitValueError(f"adjit: scan got different lengths for its xs: {lengths}")
    slices = [ShapedArray(a.shape[1:], a.dtype) for a in x_avals]
    in_tree = tree.flatten((init, tree.unflatten(x_tree, x_leaves)))[1]
    out_box = []

    def body(carry, x):
        out = f(carry, x)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise AdjitTypeError("adjit: the function given to scan must return a pair "
                                 "(carry, y)")
        carry_leaves, carry_tree = tree.flatten(out[0])
        y_leaves, y_tree = tree.flatten(out[1])
        out_box.append((carry_tree, y_tree, len(carry_leaves)))
        return [*carry_leaves, *y_leaves]

    graph, consts, _ = trace_fun(body, in_tree, [*init_avals, *slices], "the body of scan")
    carry_tree, y_tree, n_carry = out_box[-1]
    if snapshots is not None:
        n = int(n)  # the schedule needs the length: reading it fixes it for this trace
    _check_carry("scan", init_avals, graph.out_avals[:n_carry], init_tree, carry_tree)
    outs = bind("scan", *consts, *init_leaves, *x_leaves, body=graph, length=n,
                reverse=bool(reverse), n_consts=len(consts), n_carry=n_carry,
                snapshots=snapshots)
    return (tree.unflatten(init_tree, outs[:n_carry]),
            tree.unflatten(y_tree, outs[n_carry:]))


def while_loop(cond_fun, body_fun, init, snapshots=32):
    """``while cond_fun(carry): carry = body_fun(carry)``; returns the final carry.

    Reverse mode through it counts the steps while running forward, then reverses them on
    Revolve's schedule for that count, keeping at most ``snapshots`` carries and recomputing
    the rest (its trip count is known only then, so nothing is stacked per step)."""
    init_leaves, init_tree = tree.flatten(init)
    avals = [get_aval(c) for c in init_leaves]
    in_tree = tree.flatten((init,))[1]
    cond_graph, cond_consts, cond_tree = trace_fun(cond_fun, in_tree, avals,
                                                   "the cond_fun of while_loop")
    if cond_tree != tree.LEAF or cond_graph.out_avals[0].shape != ():
        raise AdjitTypeError(f"adjit: the cond_fun of while_loop must return a scalar, got "
                             f"{describe(cond_graph.out_avals)}")
    body_graph, body_consts, body_tree = trace_fun(body_fun, in_tree, avals,
                                                   "the body_fun of while_loop")
    _check_carry("while_loop", avals, body_graph.out_avals, init_tree, body_tree)
    if not isinstance(snapshots, (int, np.integer)) or snapshots < 1:
        raise AdjitValueError("adjit: while_loop's snapshots= must be a number >= 1")
    outs = bind("while", *cond_consts, *body_consts, *init_leaves, cond=cond_graph,
                body=body_graph, n_cond_consts=len(cond_consts),
                n_body_consts=len(body_consts), snapshots=int(snapshots))
    return tree.unflatten(init_tree, outs)


def fori_loop(lower, upper, body_fun, init, checkpoint=None, snapshots=None):
    """``for i in range(lower, upper): val = body_fun(i, val)``; returns ``val``. Python
    bounds make a scan (differentiable in both modes; ``checkpoint`` as for scan); traced
    bounds a while loop."""
    if all(isinstance(b, (int, np.integer)) for b in (lower, upper)):
        lower, upper = int(lower), int(upper)

        def step(carry, _):
            i, val = carry
            return (i + 1, body_fun(i, val)), None

        (_, val), _ = scan(step, (np.int64(lower), init), length=max(upper - lower, 0),
                           checkpoint=checkpoint, snapshots=snapshots)
        return val
    if checkpoint is not None:
        raise AdjitValueError("adjit: fori_loop's checkpoint= needs Python bounds (a loop of "
                              "traced bounds is a while_loop, differentiated in forward mode)")

    def cond_fun(carry):
        return carry[0] < upper

    def loop_body(carry):
        i, val = carry
        return i + 1, body_fun(i, val)

    lower = ew.convert_element_type(lower, np.dtype(np.int64))
    return while_loop(cond_fun, loop_body, (lower, init))[1]


def _scan_in_blocks(f, init, xs, length, reverse, schedule):
    """The ``"sqrt"`` schedule: an outer scan over blocks of ``k`` steps, each block a
    ``checkpoint`` of an inner scan, then a scan of the steps left over."""
    from adjit.control.call import checkpoint

    if schedule != "sqrt":
        raise AdjitValueError(f"adjit: scan checkpoint={schedule!r} is not a schedule adjit "
                              "knows (None stores every step; 'sqrt'; 'binomial')")
    x_leaves, x_tree = tree.flatten(xs)
    n = length if length is not None else get_aval(x_leaves[0]).shape[0]
    n = int(n)  # the blocks need the length: reading it fixes it for this trace
    if reverse:  # the same steps, the slices in the other order
        carry, ys = _scan_in_blocks(f, init, tree.tree_map(lambda x: x[::-1], xs), n, False,
                                    schedule)
        return carry, tree.tree_map(lambda y: y[::-1], ys)
    k = max(int(np.ceil(np.sqrt(n))), 1)
    blocks, tail = n // k, n - (n // k) * k

    def part(x, start, stop, shape=None):
        x = x[start:stop]
        return x if shape is None else x.reshape(shape + get_aval(x).shape[1:])

    def block(carry, xb):
        return scan(f, carry, xb, length=k)

    xs_blocks = tree.unflatten(x_tree, [part(x, 0, blocks * k, (blocks, k)) for x in x_leaves])
    carry, ys_blocks = scan(checkpoint(block), init, xs_blocks if x_leaves else None,
                            length=blocks)
    ys = tree.tree_map(lambda y: y.reshape((blocks * k, *get_aval(y).shape[2:])), ys_blocks)
    if tail:
        xs_tail = tree.unflatten(x_tree, [part(x, blocks * k, n) for x in x_leaves])
        carry, ys_tail = scan(f, carry, xs_tail if x_leaves else None, length=tail)
        ys = tree.tree_map(lambda a, b: st.concatenate((a, b), 0), ys, ys_tail)
    return carry, ys


# --------------------------------------------------------------------------- scan


def _stacked(aval, length):
    return ShapedArray((length, *aval.shape), aval.dtype)


def _scan_abstract(*avals, body, length, reverse, n_consts, n_carry, snapshots, linear_carry=None):
    formal = body.in_avals
    if len(formal) != len(avals):
        raise AdjitValueError(f"adjit: scan's body takes {len(formal)} inputs, got {len(avals)}")
    n_fixed = n_consts + n_carry
    actual = [*avals[:n_fixed], *(ShapedArray(a.shape[1:], a.dtype) for a in avals[n_fixed:])]
    mapping = dim_map(formal, actual)
    outs = [subst_dims(v.aval, mapping) for v in body.outvars]
    return outs[:n_carry] + [_stacked(a, length) for a in outs[n_carry:]]


def _scan_impl(*args, body, length, reverse, n_consts, n_carry, snapshots, linear_carry=None):
    consts, carry = list(args[:n_consts]), list(args[n_consts:n_consts + n_carry])
    xs = args[n_consts + n_carry:]
    ys = []
    steps = range(length - 1, -1, -1) if reverse else range(length)
    for i in steps:
        outs = interpret(body, [], [*consts, *carry, *(x[i] for x in xs)])
        carry, y = outs[:n_carry], outs[n_carry:]
        ys.append(y)
    if reverse:
        ys.reverse()
    y_avals = [v.aval for v in body.outvars[n_carry:]]
    stacked = [np.stack([y[k] for y in ys]) if ys else np.zeros((0, *a.shape), a.dtype)
               for k, a in enumerate(y_avals)]
    return [*carry, *stacked]


def _groups(values, n_consts, n_carry):
    return (list(values[:n_consts]), list(values[n_consts:n_consts + n_carry]),
            list(values[n_consts + n_carry:]))


def _reorder(graph: Graph, in_groups, out_groups) -> Graph:
    """``graph`` with its inputs and outputs regrouped: each group is a list of positions."""
    return graph.replace(invars=[graph.invars[i] for g in in_groups for i in g],
                         outvars=[graph.outvars[i] for g in out_groups for i in g])


def _fixpoint(step, carry_flags):
    """The carry flags (tangent non-zero, unknown, batched) that a loop body keeps: start from
    the init's, add what the body makes, until nothing changes."""
    flags = list(carry_flags)
    while True:
        out = step(flags)
        new = [a or b for a, b in zip(flags, out)]
        if new == flags:
            return flags
        flags = new


def _scan_jvp(primals, tangents, *, body, length, reverse, n_consts, n_carry, snapshots,
              linear_carry=None):
    nonzero = [not isinstance(t, Zero) for t in tangents]
    nz_c, nz_carry0, nz_x = _groups(nonzero, n_consts, n_carry)
    n_y = len(body.outvars) - n_carry
    carry_nz = _fixpoint(
        lambda flags: jvp_graph(body, nz_c + flags + nz_x)[1][:n_carry], nz_carry0)
    nz = nz_c + carry_nz + nz_x
    jvp, out_nz = jvp_graph(body, nz, instantiate=carry_nz + [False] * n_y)
    # jvp's inputs: primals (consts, carry, xs), then the non-zero tangents in that order.
    n_in = len(body.invars)
    t_pos = iter(range(n_in, n_in + sum(nz)))
    tangent_at = [next(t_pos) if f else None for f in nz]
    consts_g = list(range(n_consts)) + [tangent_at[i] for i in range(n_consts) if nz[i]]
    carry_g = list(range(n_consts, n_consts + n_carry)) + [
        tangent_at[i] for i in range(n_consts, n_consts + n_carry) if nz[i]]
    xs_g = list(range(n_consts + n_carry, n_in)) + [
        tangent_at[i] for i in range(n_consts + n_carry, n_in) if nz[i]]
    n_out = len(body.outvars)
    t_out = iter(range(n_out, n_out + sum(out_nz)))
    t_out_at = [next(t_out) if f else None for f in out_nz]
    carry_out = list(range(n_carry)) + [t_out_at[k] for k in range(n_carry) if out_nz[k]]
    ys_out = list(range(n_carry, n_out)) + [t_out_at[k] for k in range(n_carry, n_out)
                                             if out_nz[k]]
    jvp = _reorder(jvp, [consts_g, carry_g, xs_g], [carry_out, ys_out])
    p_c, p_carry, p_x = _groups(primals, n_consts, n_carry)
    t_c, t_carry, t_x = _groups(tangents, n_consts, n_carry)
    t_carry = [instantiate(t) for t, f in zip(t_carry, carry_nz) if f]
    outs = bind("scan", *p_c, *(t for t in t_c if not isinstance(t, Zero)), *p_carry, *t_carry,
                *p_x, *(t for t in t_x if not isinstance(t, Zero)), body=jvp, length=length,
                reverse=reverse, n_consts=n_consts + sum(nz_c),
                n_carry=n_carry + sum(carry_nz), snapshots=snapshots)
    n_carry_t = sum(carry_nz)
    carry_p, carry_t = outs[:n_carry], iter(outs[n_carry:n_carry + n_carry_t])
    ys = outs[n_carry + n_carry_t:]
    ys_p, ys_t = ys[:n_y], iter(ys[n_y:])
    t_outs = [next(carry_t) if f else Zero(get_aval(o)) for o, f in zip(carry_p, carry_nz)]
    t_outs += [next(ys_t) if f else Zero(get_aval(o)) for o, f in zip(ys_p, out_nz[n_carry:])]
    return [*carry_p, *ys_p], t_outs


def _scan_partial_eval(eqn: Eqn, unknown_ins):
    p = eqn.params
    body, n_consts, n_carry, length = p["body"], p["n_consts"], p["n_carry"], p["length"]
    u_c, u_carry0, u_x = _groups(unknown_ins, n_consts, n_carry)
    n_y = len(body.outvars) - n_carry
    carry_u = _fixpoint(
        lambda flags: partial_eval_graph(body, u_c + flags + u_x)[2][:n_carry], u_carry0)
    unknown = u_c + carry_u + u_x
    known, lin, out_u, n_res = partial_eval_graph(body, unknown,
                                                  instantiate=carry_u + [False] * n_y)
    if p["snapshots"] is not None:
        return _scan_split_recomputing(eqn, unknown, known, out_u, n_res)
    # Residuals that are the body's known constants pass to the unknown scan as constants;
    # those computed from the constants alone are computed again there from them; the others
    # differ per step: the known scan stacks them as extra ys.
    const_ids = {v.id for v, u in zip(body.invars[:n_consts], u_c) if not u}
    known, lin, n_res = _recompute_invariant(known, lin, n_res, const_ids)
    res_vars = list(known.outvars[len(known.outvars) - n_res:])
    invariant = [v.id in const_ids for v in res_vars]
    n_known_out = len(known.outvars) - n_res
    # Known scan: consts, carry, xs known; outputs known carry, known ys, per-step residuals.
    kc = sum(not u for u in u_c)
    kcarry = sum(not u for u in carry_u)
    known_body = known.replace(outvars=[*known.outvars[:n_known_out],
                                        *(v for v, inv in zip(res_vars, invariant) if not inv)])
    mapping = dim_map(body.in_avals, [_slice_aval(a.aval, i, n_consts + n_carry)
                                      for i, a in enumerate(eqn.inputs)])
    stacked_res = [Var(_stacked(subst_dims(v.aval, mapping), length))
                   for v, inv in zip(res_vars, invariant) if not inv]
    known_carry_out = [v for v, u in zip(eqn.outs[:n_carry], carry_u) if not u]
    known_ys = [v for v, u in zip(eqn.outs[n_carry:], out_u[n_carry:]) if not u]
    ins = eqn.inputs
    known_ins = [a for a, u in zip(ins, u_c + carry_u + u_x) if not u]
    known_eqn = Eqn("scan", known_ins,
                    [*known_carry_out, *known_ys, *stacked_res],
                    {**p, "body": known_body, "n_consts": kc, "n_carry": kcarry}, eqn.source)
    # Unknown scan: consts = invariant residuals + unknown consts; carry = unknown carry;
    # xs = per-step residuals + unknown xs.
    inv_vars = [v for v, inv in zip(res_vars, invariant) if inv]
    step_vars = [v for v, inv in zip(res_vars, invariant) if not inv]
    lin_res = list(lin.invars[:n_res])
    lin_rest = list(lin.invars[n_res:])
    u_consts_v = lin_rest[:sum(u_c)]
    u_carry_v = lin_rest[sum(u_c):sum(u_c) + sum(carry_u)]
    u_xs_v = lin_rest[sum(u_c) + sum(carry_u):]
    by_id = {v.id: w for v, w in zip(res_vars, lin_res)}
    lin_body = lin.replace(invars=[*(by_id[v.id] for v in inv_vars), *u_consts_v, *u_carry_v,
                                   *(by_id[v.id] for v in step_vars), *u_xs_v])
    # Invariant residuals are inputs of the eqn (the known consts themselves).
    const_atom = {v.id: a for v, a in zip(body.invars[:n_consts], ins[:n_consts])}
    u_c_atoms = [a for a, u in zip(ins[:n_consts], u_c) if u]
    # A carry known on entry but unknown after a step enters the unknown scan as it is.
    u_carry_atoms = [a for a, u in zip(ins[n_consts:n_consts + n_carry], carry_u) if u]
    u_x_atoms = [a for a, u in zip(ins[n_consts + n_carry:], u_x) if u]
    unknown_eqn = Eqn("scan", [*(const_atom[v.id] for v in inv_vars), *u_c_atoms,
                               *u_carry_atoms, *stacked_res, *u_x_atoms],
                      [*(v for v, u in zip(eqn.outs[:n_carry], carry_u) if u),
                       *(v for v, u in zip(eqn.outs[n_carry:], out_u[n_carry:]) if u)],
                      {**p, "body": lin_body, "n_consts": len(inv_vars) + sum(u_c),
                       "n_carry": sum(carry_u)}, eqn.source)
    return known_eqn, unknown_eqn


# Elementwise steps cheaper to run again in the backward loop than to stack per step and read
# back (no transcendental function among them).
_CHEAP = frozenset({"add", "sub", "mul", "neg", "div", "integer_pow", "select",
                    "convert_element_type", "max", "min", "eq", "ne", "lt", "le", "gt", "ge",
                    "broadcast_in_dim"})


def _recompute_invariant(known: Graph, lin: Graph, n_res: int, const_ids):
    """Residuals the unknown body can compute itself instead of reading a stacked copy: those
    the known body computes from the loop's constants alone (a broadcast constant, a function
    of the weights: the same at every step), and those a few cheap elementwise steps make from
    other residuals (a sigmoid's 1 / (1 + e) from e, a tanh's 1 - t^2 from t)."""
    invariant = set(const_ids)
    res_vars = list(known.outvars[len(known.outvars) - n_res:])
    residual = {v.id for v in res_vars}
    cheap = set()
    for e in known.eqns:
        if all(isinstance(a, Literal) or a.id in invariant for a in e.inputs):
            invariant.update(v.id for v in e.outs)
        elif e.prim in _CHEAP and all(isinstance(a, Literal) or a.id in invariant
                                      or a.id in residual or a.id in cheap for a in e.inputs):
            cheap.update(v.id for v in e.outs)
    lin_res = list(lin.invars[:n_res])
    moved = {v.id: w for v, w in zip(res_vars, lin_res)
             if (v.id in invariant or v.id in cheap) and v.id not in const_ids}
    if not moved:
        return known, lin, n_res
    kept_ids = residual - set(moved)
    needed, copied = set(moved), []
    for e in reversed(known.eqns):
        if any(v.id in needed for v in e.outs):
            copied.append(e)
            needed.update(a.id for a in e.inputs
                          if not isinstance(a, Literal) and a.id not in kept_ids)
    kept = [(v, w) for v, w in zip(res_vars, lin_res) if v.id not in moved]
    env = {v.id: w for v, w in kept}
    env.update(moved)
    new_res, lin_eqns = [], []  # new_res: constants the copies read that were not residuals
    for e in reversed(copied):
        for a in e.inputs:
            if not isinstance(a, Literal) and a.id not in env:
                env[a.id] = Var(a.aval)
                new_res.append(a)
        outs = [env.setdefault(v.id, Var(v.aval)) for v in e.outs]
        lin_eqns.append(e.replace(inputs=[a if isinstance(a, Literal) else env[a.id]
                                          for a in e.inputs], outs=outs))
    res = [v for v, _ in kept] + new_res
    known = known.replace(outvars=[*known.outvars[:len(known.outvars) - n_res], *res])
    lin = lin.replace(invars=[*(w for _, w in kept), *(env[v.id] for v in new_res),
                              *lin.invars[n_res:]], eqns=[*lin_eqns, *lin.eqns])
    return known, lin, len(res)


def _scan_split_recomputing(eqn: Eqn, unknown, known, out_u, n_res):
    """The split of a scan that keeps no per-step values (checkpoint='binomial'): the known
    scan computes the known outputs only; the unknown one is the whole scan again (its body
    recomputes the known values it needs), transposed on a Revolve schedule."""
    p = eqn.params
    n_consts, n_carry = p["n_consts"], p["n_carry"]
    u_c, carry_u, u_x = _groups(unknown, n_consts, n_carry)
    known_body = dce(known.replace(outvars=known.outvars[:len(known.outvars) - n_res]))
    known_eqn = Eqn("scan", [a for a, u in zip(eqn.inputs, unknown) if not u],
                    [v for v, u in zip(eqn.outs, out_u) if not u],
                    {**p, "body": known_body, "n_consts": n_consts - sum(u_c),
                     "n_carry": n_carry - sum(carry_u)}, eqn.source)
    # The known outputs of the unknown scan are fresh and unread: only its linear part counts.
    outs = [v if u else Var(v.aval) for v, u in zip(eqn.outs, out_u)]
    # Which carries are the linear ones: a tangent's entry value may be a known zero.
    return known_eqn, eqn.replace(outs=outs, params={**p, "linear_carry": tuple(carry_u)})


def _slice_aval(aval, position, n_fixed):
    return aval if position < n_fixed else ShapedArray(aval.shape[1:], aval.dtype)


def _scan_transpose(cts, *args, body, length, reverse, n_consts, n_carry, snapshots,
                    linear_carry=None):
    if snapshots is not None:
        return _revolve_transpose(cts, args, body, length, reverse, n_consts, n_carry,
                                  snapshots, linear_carry)
    consts, carry, xs = _groups(list(args), n_consts, n_carry)
    # A carry's entry value may be a known zero (a tangent instantiated where the input had
    # none): it is transposed as linear all the same, and its cotangent dropped.
    known_init = [not isinstance(c, LinearArg) for c in carry]
    carry = [c if isinstance(c, LinearArg) else LinearArg(get_aval(c)) for c in carry]
    ct_carry = [instantiate(c) for c in cts[:n_carry]]
    ct_ys = [instantiate(c) for c in cts[n_carry:]]
    fixed_c = [c for c in consts if not isinstance(c, LinearArg)]
    lin_c = [c for c in consts if isinstance(c, LinearArg)]
    fixed_x = [x for x in xs if not isinstance(x, LinearArg)]

    def step(*vals):
        it = iter(vals)
        fc = [next(it) for _ in fixed_c]
        acc = [next(it) for _ in lin_c]
        ct_car = [next(it) for _ in range(n_carry)]
        fx = [next(it) for _ in fixed_x]
        ct_y = [next(it) for _ in ct_ys]
        fc_it, fx_it = iter(fc), iter(fx)
        ins = [a if isinstance(a, LinearArg) else next(fc_it) for a in consts]
        ins += list(carry)
        ins += [LinearArg(ShapedArray(a.aval.shape[1:], a.aval.dtype))
                if isinstance(a, LinearArg) else next(fx_it) for a in xs]
        cts_in = backward_pass(body, ins, [*ct_car, *ct_y])
        c_in, car_in, x_in = _groups(cts_in, n_consts, n_carry)
        new_acc = [add_tangents(a, c) for a, c, arg in
                   zip(acc, (c for c, a in zip(c_in, consts) if isinstance(a, LinearArg)),
                       lin_c)]
        return [*(instantiate(a) for a in new_acc), *(instantiate(c) for c in car_in),
                *(instantiate(c) for c, a in zip(x_in, xs) if isinstance(a, LinearArg))]

    slice_avals = [ShapedArray(get_aval(x).shape[1:], get_aval(x).dtype)
                   for x in (*fixed_x, *ct_ys)]
    avals = [*(get_aval(c) for c in fixed_c), *(c.aval for c in lin_c),
             *(get_aval(c) for c in ct_carry), *slice_avals]
    t_body = trace_closed(step, avals)
    acc0 = [zeros_like_aval(c.aval) for c in lin_c]
    outs = bind("scan", *fixed_c, *acc0, *ct_carry, *fixed_x, *ct_ys, body=t_body,
                length=length, reverse=not reverse, n_consts=len(fixed_c),
                n_carry=len(lin_c) + n_carry, snapshots=None)
    ct_lin_c = iter(outs[:len(lin_c)])
    ct_init = outs[len(lin_c):len(lin_c) + n_carry]
    ct_lin_x = iter(outs[len(lin_c) + n_carry:])
    result = [next(ct_lin_c) if isinstance(c, LinearArg) else None for c in consts]
    result += [None if k else c for c, k in zip(ct_init, known_init)]
    result += [next(ct_lin_x) if isinstance(x, LinearArg) else None for x in xs]
    return result


def _scan_batch(args, dims, *, body, length, reverse, n_consts, n_carry, snapshots,
                linear_carry=None):
    size = next(get_aval(x).shape[0] for x, d in zip(args, dims) if d is not None)
    d_c, d_carry0, d_x = _groups(dims, n_consts, n_carry)
    a_c, a_carry, a_x = _groups(list(args), n_consts, n_carry)
    slice_avals = [ShapedArray(get_aval(x).shape[2:] if d is not None else
                               get_aval(x).shape[1:], get_aval(x).dtype) for x, d in
                   zip(a_x, d_x)]

    def batched_avals(flags):
        carry_avals = [ShapedArray((size, *get_aval(c).shape), get_aval(c).dtype)
                       if f and d is None else get_aval(c)
                       for c, f, d in zip(a_carry, flags, d_carry0)]
        x_avals = [ShapedArray((size, *a.shape), a.dtype) if d is not None else a
                   for a, d in zip(slice_avals, d_x)]
        return [*(get_aval(c) for c in a_c), *carry_avals, *x_avals]

    def step(flags):
        carry_dims = [0 if f else None for f in flags]
        _, out_dims = batch_graph(body, batched_avals(flags), d_c + carry_dims + d_x)
        return [d is not None for d in out_dims[:n_carry]]

    carry_b = _fixpoint(step, [d is not None for d in d_carry0])
    carry_dims = [0 if f else None for f in carry_b]
    n_y = len(body.outvars) - n_carry
    batched, out_dims = batch_graph(body, batched_avals(carry_b), d_c + carry_dims + d_x,
                                    force=carry_b + [True] * n_y)
    carry_in = [broadcast_batch(c, size) if f and d is None else c
                for c, f, d in zip(a_carry, carry_b, d_carry0)]
    # xs batched on axis 0 scan along axis 1: the scanned axis goes first.
    xs_in = [moveaxis(x, 1, 0) if d is not None else x for x, d in zip(a_x, d_x)]
    outs = bind("scan", *a_c, *carry_in, *xs_in, body=batched, length=length, reverse=reverse,
                n_consts=n_consts, n_carry=n_carry, snapshots=snapshots)
    ys = [moveaxis(y, 0, 1) for y in outs[n_carry:]]
    return [*outs[:n_carry], *ys], [*carry_dims, *([0] * n_y)]


def _scan_dce(eqn: Eqn, used_outs):
    p = eqn.params
    body, n_consts, n_carry = p["body"], p["n_consts"], p["n_carry"]
    # Carries stay (each step reads them); unused ys go.
    keep_y = used_outs[n_carry:]
    body = dce(body.replace(outvars=[*body.outvars[:n_carry],
                                     *(v for v, k in zip(body.outvars[n_carry:], keep_y) if k)]))
    read = {a.id for e in body.eqns for a in e.inputs if not isinstance(a, Literal)}
    read |= {v.id for v in body.outvars if not isinstance(v, Literal)}
    keep_in = [True if n_consts <= i < n_consts + n_carry else v.id in read
               for i, v in enumerate(body.invars)]
    body = body.replace(invars=[v for v, k in zip(body.invars, keep_in) if k])
    n_c = sum(keep_in[:n_consts])
    return eqn.replace(inputs=[a for a, k in zip(eqn.inputs, keep_in) if k],
                       outs=[*eqn.outs[:n_carry],
                             *(v for v, k in zip(eqn.outs[n_carry:], keep_y) if k)],
                       params={**p, "body": body, "n_consts": n_c})


defprim("scan", _scan_abstract, _scan_impl, kind="control", multiple=True)
jvp_rules["scan"] = _scan_jvp
partial_eval_rules["scan"] = _scan_partial_eval
transpose_rules["scan"] = _scan_transpose
linear_prims.add("scan")
batching_rules["scan"] = _scan_batch
dce_rules["scan"] = _scan_dce


# --------------------------------------------------------------------------- Revolve
# Reverse mode through a scan with checkpoint='binomial': the backward sweep keeps at most
# ``snapshots`` carries and recomputes steps from them on the schedule of Griewank and
# Walther's Revolve. The schedule, made when the sweep runs (a while loop's trip count is known
# only then), is a list of actions: advance k steps, store the carry in a slot, restore a
# slot, and the adjoint of the current step (which recomputes that step's values first).

ADVANCE, STORE, RESTORE, ADJOINT = 0, 1, 2, 3


def _beta(s, r):
    """C(s + r, s), in integer steps (also compiled into kernels, see revolve_schedule)."""
    c = 1
    for i in range(1, min(s, r) + 1):
        c = c * (s + r - i + 1) // i
    return c


def _repetitions(n, s):
    r = 0
    while _beta(s, r) < n:
        r += 1
    return r


def revolve_extra_steps(n: int, s: int) -> int:
    """Forward steps Revolve runs to reverse n steps keeping at most s carries (the start's
    included): r n - C(s + r, r - 1), r the repetition number."""
    if n <= 1:
        return 0
    r = _repetitions(n, s)
    return r * n - _beta(s + 1, r - 1)


def revolve_schedule(n, s):
    """The actions reversing n steps keeping at most s carries, as rows (action, argument);
    slot 0 holds the start. Each reversal's first advance m is the optimal split of the
    recurrence T(l, c) = m + T(m, c) + T(l - m, c - 1), T(1, c) = 0, T(l, 1) = l (l - 1) / 2.

    Written for Numba too (arrays and integers only): a kernel whose trip count is known only
    when it runs (a while loop's) makes its schedule with this function, compiled."""
    actions = np.empty((6 * n + 6, 2), np.int64)
    # pending reversals: (first step, steps, carries kept with its start's, the start's slot)
    stack = np.empty((n + 8, 4), np.int64)
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = 0, n, s, 0
    top, k = 1, 0
    while top > 0:
        top -= 1
        start, steps, kept, slot = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
        if steps == 0:
            continue
        if steps == 1 or kept == 1:  # only the start: recompute from it for each step
            for i in range(steps - 1, -1, -1):
                actions[k, 0], actions[k, 1] = RESTORE, slot
                k += 1
                if i > 0:
                    actions[k, 0], actions[k, 1] = ADVANCE, i
                    k += 1
                actions[k, 0], actions[k, 1] = ADJOINT, start + i
                k += 1
            continue
        r = _repetitions(steps, kept)
        m = max(1, min(steps - 1, _beta(kept, r - 1), steps - _beta(kept - 1, r - 1)))
        actions[k, 0], actions[k, 1] = RESTORE, slot
        actions[k + 1, 0], actions[k + 1, 1] = ADVANCE, m
        actions[k + 2, 0], actions[k + 2, 1] = STORE, slot + 1
        k += 3
        # Reverse the last steps - m with one carry fewer, then the first m.
        stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = start, m, kept, slot
        stack[top + 1, 0], stack[top + 1, 1] = start + m, steps - m
        stack[top + 1, 2], stack[top + 1, 3] = kept - 1, slot + 1
        top += 2
    return actions[:k]


def _revolve_transpose(cts, args, body, length, reverse, n_consts, n_carry, snapshots,
                       linear_carry, steps=None):
    consts, carry, xs = _groups(list(args), n_consts, n_carry)
    # A linear carry whose entry value is a known zero is transposed as linear all the same;
    # its cotangent is dropped.
    known_init = [lin and not isinstance(c, LinearArg) for c, lin in zip(carry, linear_carry)]
    carry = [LinearArg(get_aval(c)) if k else c for c, k in zip(carry, known_init)]
    args = [*consts, *carry, *xs]
    lin_mask = [isinstance(a, LinearArg) for a in args]
    l_c, l_carry, l_x = _groups(lin_mask, n_consts, n_carry)
    n_y = len(body.outvars) - n_carry
    known, lin, out_u, n_res = partial_eval_graph(body, lin_mask,
                                                  instantiate=l_carry + [False] * n_y)
    kc, kcarry, kx = ([a for a in part if not isinstance(a, LinearArg)]
                      for part in (consts, carry, xs))
    n_known_carry = len(kcarry)
    forward = dce(known.replace(outvars=known.outvars[:n_known_carry]))
    lin_c = [a for a in consts if isinstance(a, LinearArg)]
    lin_x = [a for a in xs if isinstance(a, LinearArg)]
    ct_carry = [instantiate(c) for c, u in zip(cts[:n_carry], l_carry) if u]
    ct_ys = [instantiate(c) for c, u in zip(cts[n_carry:], out_u[n_carry:]) if u]

    def adjoint_step(*vals):
        it = iter(vals)
        c_k = [next(it) for _ in kc]
        carry_k = [next(it) for _ in kcarry]
        x_k = [next(it) for _ in kx]
        ct_car = [next(it) for _ in ct_carry]
        ct_y = [next(it) for _ in ct_ys]
        acc = [next(it) for _ in lin_c]
        values = eval_graph(known, [*c_k, *carry_k, *x_k], bind_eqn)
        residuals = values[len(values) - n_res:]
        cts_in = transpose_linear(lin, residuals, [*ct_car, *ct_y])
        c_in, car_in, x_in = _groups(cts_in, len(lin_c), len(ct_carry))
        return [*(instantiate(c) for c in car_in), *(instantiate(c) for c in x_in),
                *(add_tangents(a, c) if not isinstance(c, Zero) else a
                  for a, c in zip(acc, c_in))]

    slice_avals = [ShapedArray(get_aval(x).shape[1:], get_aval(x).dtype) for x in kx]
    ct_y_avals = [ShapedArray(get_aval(c).shape[1:], get_aval(c).dtype) for c in ct_ys]
    adjoint = trace_closed(adjoint_step, [*(get_aval(c) for c in kc),
                                          *(get_aval(c) for c in kcarry), *slice_avals,
                                          *(get_aval(c) for c in ct_carry), *ct_y_avals,
                                          *(c.aval for c in lin_c)])
    acc0 = [zeros_like_aval(c.aval) for c in lin_c]
    steps = np.int64(length) if steps is None else steps
    outs = bind("revolve", steps, *kc, *kcarry, *kx, *ct_carry, *ct_ys, *acc0,
                forward=forward, adjoint=adjoint, length=length, reverse=reverse,
                snapshots=snapshots, counts=(len(kc), len(kcarry), len(kx), len(ct_carry),
                                             len(ct_ys), len(lin_c), len(lin_x)))
    ct_car_in = iter(outs[:len(ct_carry)])
    ct_x_out = iter(outs[len(ct_carry):len(ct_carry) + len(lin_x)])
    ct_c_out = iter(outs[len(ct_carry) + len(lin_x):])
    ct_init = [next(ct_car_in) if isinstance(a, LinearArg) else None for a in carry]
    return ([next(ct_c_out) if isinstance(a, LinearArg) else None for a in consts]
            + [None if k else c for c, k in zip(ct_init, known_init)]
            + [next(ct_x_out) if isinstance(a, LinearArg) else None for a in xs])


def _revolve_parts(values, counts):
    it = iter(values)
    return [[next(it) for _ in range(n)] for n in counts[:6]]


def _revolve_abstract(steps, *avals, forward, adjoint, length, reverse, snapshots, counts):
    n_kc, n_kcarry, n_kx, n_ctc, n_cty, n_lc, n_lx = counts
    outs = [v.aval for v in adjoint.outvars]
    car, xs, acc = outs[:n_ctc], outs[n_ctc:n_ctc + n_lx], outs[n_ctc + n_lx:]
    return [*car, *(_stacked(a, length) for a in xs), *acc]


def _revolve_impl(steps, *args, forward, adjoint, length, reverse, snapshots, counts):
    """The Revolve driver, run by the interpreter (the kernels run the same, compiled)."""
    schedule = revolve_schedule(int(steps), snapshots)
    kc, carry, kx, ct_carry, ct_ys, acc = _revolve_parts(args, counts)
    n_lx = counts[6]
    x_avals = [v.aval for v in adjoint.outvars[counts[3]:counts[3] + n_lx]]
    ct_xs = [np.zeros((length, *a.shape), a.dtype) for a in x_avals]
    slots, slot_step, step = {0: list(carry)}, {0: 0}, 0

    def at(i):
        return length - 1 - i if reverse else i

    for action, arg in schedule:
        if action == ADVANCE:
            for _ in range(arg):
                carry = interpret(forward, [], [*kc, *carry, *(x[at(step)] for x in kx)])
                step += 1
        elif action == STORE:
            slots[arg], slot_step[arg] = list(carry), step
        elif action == RESTORE:
            carry, step = list(slots[arg]), slot_step[arg]
        else:
            outs = interpret(adjoint, [], [*kc, *carry, *(x[at(arg)] for x in kx), *ct_carry,
                                           *(y[at(arg)] for y in ct_ys), *acc])
            ct_carry = outs[:counts[3]]
            for ct_x, value in zip(ct_xs, outs[counts[3]:counts[3] + n_lx]):
                ct_x[at(arg)] = value
            acc = outs[counts[3] + n_lx:]
    return [*ct_carry, *ct_xs, *acc]


def _revolve_jvp(primals, tangents, *, forward, adjoint, length, reverse, snapshots, counts):
    """Forward over reverse (a Hessian-vector product) keeps the schedule: one Revolve sweep
    of the JVPs of both graphs, each group of values followed by its tangents. The values a
    step carries (the carry, its cotangent, the accumulators) get a tangent each, zero or not;
    the fixed and per-step inputs only where theirs is not a symbolic zero."""
    n_kc, n_kcarry, n_kx, n_ctc, n_cty, n_lc, n_lx = counts
    sizes = (n_kc, n_kcarry, n_kx, n_ctc, n_cty, n_lc)
    carried = (False, True, False, True, False, True)
    parts = _revolve_parts(primals[1:], sizes)
    t_parts = _revolve_parts(tangents[1:], sizes)
    nz = [[c or not isinstance(t, Zero) for t in ts] for ts, c in zip(t_parts, carried)]

    def regrouped(graph, n_groups, out_sizes):
        """The JVP of ``graph`` whose inputs are the first n_groups groups: each input group,
        then each output group, as (primals, tangents)."""
        flat_nz = [f for g in nz[:n_groups] for f in g]
        jvp, _ = jvp_graph(graph, flat_nz, instantiate=[True] * len(graph.outvars))
        n_in, n_out = len(graph.invars), len(graph.outvars)
        t_pos = iter(range(n_in, n_in + sum(flat_nz)))
        tangent_at = [next(t_pos) if f else None for f in flat_nz]
        in_groups, start = [], 0
        for g in nz[:n_groups]:
            idx = range(start, start + len(g))
            in_groups.append([*idx, *(tangent_at[i] for i in idx if flat_nz[i])])
            start += len(g)
        out_groups, start = [], 0
        for size in out_sizes:
            idx = range(start, start + size)
            out_groups.append([*idx, *(n_out + i for i in idx)])
            start += size
        return _reorder(jvp, in_groups, out_groups)

    forward_t = regrouped(forward, 3, [n_kcarry])
    adjoint_t = regrouped(adjoint, 6, [n_ctc, n_lx, n_lc])
    values = [v for g, ts, f in zip(parts, t_parts, nz)
              for v in [*g, *(instantiate(t) for t, k in zip(ts, f) if k)]]
    new_counts = (*(len(g) + sum(f) for g, f in zip(parts, nz)), 2 * n_lx)
    outs = bind("revolve", primals[0], *values, forward=forward_t, adjoint=adjoint_t,
                length=length, reverse=reverse, snapshots=snapshots, counts=new_counts)
    primal_outs, tangent_outs, start = [], [], 0
    for size in (n_ctc, n_lx, n_lc):
        primal_outs += outs[start:start + size]
        tangent_outs += outs[start + size:start + 2 * size]
        start += 2 * size
    return primal_outs, tangent_outs


def _revolve_unknowns(forward, adjoint, counts, unknown):
    """Which inputs and outputs of a Revolve sweep are unknown, given which inputs are (the
    step count never is): a carried value (carry, its cotangent, an accumulator) is unknown
    when its entry value is or when a step makes it so."""
    n_kc, n_kcarry, n_kx, n_ctc, n_cty, n_lc, n_lx = counts
    u_kc, u_carry, u_kx, u_ctc, u_cty, u_acc = _revolve_parts(unknown, counts)
    u_carry = _fixpoint(lambda f: partial_eval_graph(forward, u_kc + f + u_kx)[2], u_carry)

    def adjoint_out(flags):
        return partial_eval_graph(adjoint, u_kc + u_carry + u_kx + flags[:n_ctc] + u_cty
                                  + flags[n_ctc:])[2]

    def carried_out(flags):  # the outputs carried to the next step: cotangents, accumulators
        out = adjoint_out(flags)
        return out[:n_ctc] + out[n_ctc + n_lx:]

    flags = _fixpoint(carried_out, u_ctc + u_acc)
    u_ctc, u_acc = flags[:n_ctc], flags[n_ctc:]
    u_ctx = adjoint_out(flags)[n_ctc:n_ctc + n_lx]
    return u_kc + u_carry + u_kx + u_ctc + u_cty + u_acc, u_ctc + u_ctx + u_acc


def _revolve_partial_eval(eqn: Eqn, unknown):
    """The known outputs come from a sweep of the known parts of both graphs; the unknown
    equation is the whole sweep again (its known outputs fresh and unread)."""
    p = eqn.params
    forward, adjoint, counts = p["forward"], p["adjoint"], p["counts"]
    in_u, out_u = _revolve_unknowns(forward, adjoint, counts, list(unknown[1:]))
    outs = [v if u else Var(v.aval) for v, u in zip(eqn.outs, out_u)]
    if all(out_u):
        return None, eqn.replace(outs=outs)
    n_kc, n_kcarry, n_kx, n_ctc, n_cty, n_lc, n_lx = counts
    n_fwd = n_kc + n_kcarry + n_kx
    u_carry = in_u[n_kc:n_kc + n_kcarry]

    def known_part(graph, ins_u, outs_u):
        known = partial_eval_graph(graph, ins_u, instantiate=outs_u)[0]
        return dce(known.replace(outvars=known.outvars[:outs_u.count(False)]))

    kept = [not u for u in in_u]
    known_counts = (*(sum(k) for k in _revolve_parts(kept, counts)),
                    out_u[n_ctc:n_ctc + n_lx].count(False))
    known_eqn = Eqn("revolve", [eqn.inputs[0], *(a for a, k in zip(eqn.inputs[1:], kept) if k)],
                    [v for v, u in zip(eqn.outs, out_u) if not u],
                    {**p, "forward": known_part(forward, in_u[:n_fwd], u_carry),
                     "adjoint": known_part(adjoint, in_u, out_u), "counts": known_counts},
                    eqn.source)
    return known_eqn, eqn.replace(outs=outs)


def _transpose_revolve_sweep(cts, steps, *args, forward, adjoint, length, reverse,
                             snapshots, counts):
    """Reverse mode through a Revolve sweep (reverse over reverse): the sweep is written as
    the loops it stands for, and those are transposed. With a known length, a forward scan
    stores every step's carry and a reverse scan runs the adjoint steps reading them. With a
    trip count known only at run time (a while loop's), each adjoint step recomputes its carry
    from the start (length^2 / 2 steps, nothing stored per step), in while loops whose own
    reverse mode is Revolve's. Forward over reverse (adjit.hessian, jvp of grad) needs
    neither: it keeps the schedule."""
    n_ctc, n_lx = counts[3], counts[6]

    def step_forward(kc, c, x):
        return eval_graph(forward, [*kc, *c, *x], bind_eqn)

    def step_adjoint(kc, c, x, ct, ct_y, acc):
        outs = eval_graph(adjoint, [*kc, *c, *x, *ct, *ct_y, *acc], bind_eqn)
        return outs[:n_ctc], outs[n_ctc:n_ctc + n_lx], outs[n_ctc + n_lx:]

    def stored(n, *values):
        kc, carry, kx, ct_carry, ct_ys, acc = _revolve_parts(values, counts)
        _, cs = scan(lambda c, x: (step_forward(kc, c, x), c), carry, kx, length=length,
                     reverse=reverse)

        def adjoint_step(state, per_step):
            (ct, acc), (c, x, ct_y) = state, per_step
            ct, ct_x, acc = step_adjoint(kc, c, x, ct, ct_y, acc)
            return (ct, acc), ct_x

        (ct0, acc), ct_xs = scan(adjoint_step, (ct_carry, acc), (cs, kx, ct_ys),
                                 length=length, reverse=not reverse)
        return [*ct0, *ct_xs, *acc]

    def recomputed(n, *values):  # a while loop's sweep: no per-step inputs or outputs
        kc, carry, _, ct_carry, _, acc = _revolve_parts(values, counts)

        def adjoint_step(j, state):
            ct, acc = state
            c = fori_loop(0, n - 1 - j, lambda i, c: step_forward(kc, c, []), carry)
            ct, _, acc = step_adjoint(kc, c, [], ct, [], acc)
            return ct, acc

        ct0, acc = fori_loop(0, n, adjoint_step, (ct_carry, acc))
        return [*ct0, *acc]

    # A carried value whose entry value is known but which steps make unknown (a tangent
    # instantiated as zeros) is transposed as linear all the same; its cotangent is dropped.
    linear = [False] + _revolve_unknowns(forward, adjoint, counts,
                                         [isinstance(a, LinearArg) for a in args])[0]
    values = [steps, *args]
    graph = trace_closed(stored if length is not None else recomputed,
                         [a.aval if isinstance(a, LinearArg) else get_aval(a) for a in values])
    known, lin_graph, out_u, n_res = partial_eval_graph(graph, linear)
    known_values = eval_graph(known, [a for a, lin in zip(values, linear) if not lin], bind_eqn)
    cts_in = iter(transpose_linear(lin_graph, known_values[len(known_values) - n_res:],
                                   [instantiate(c) for c, u in zip(cts, out_u) if u]))
    cts_values = [next(cts_in) if lin else None for lin in linear]
    return [c if isinstance(a, LinearArg) else None for c, a in zip(cts_values, values)]


def _revolve_batch(args, dims, *, forward, adjoint, length, reverse, snapshots, counts):
    # Every value batched (the schedule is the same for all examples): each graph batched,
    # the xs and their cotangents with the scanned axis first.
    size = next(get_aval(x).shape[0] for x, d in zip(args, dims) if d is not None)
    steps, values = args[0], [x if d is not None else broadcast_batch(x, size)
                              for x, d in zip(args[1:], dims[1:])]
    n_kc, n_kcarry, n_kx, n_ctc, n_cty, n_lc, n_lx = counts
    stacked = set(range(n_kc + n_kcarry, n_kc + n_kcarry + n_kx)) | set(
        range(n_kc + n_kcarry + n_kx + n_ctc, n_kc + n_kcarry + n_kx + n_ctc + n_cty))
    values = [moveaxis(x, 1, 0) if i in stacked else x for i, x in enumerate(values)]
    avals = [get_aval(x) for x in values]
    step_avals = [ShapedArray(a.shape[1:], a.dtype) if i in stacked else a
                  for i, a in enumerate(avals)]
    n_fwd = n_kc + n_kcarry + n_kx
    forward_b, _ = batch_graph(forward, step_avals[:n_fwd], [0] * n_fwd,
                               force=[True] * len(forward.outvars))
    adjoint_b, _ = batch_graph(adjoint, step_avals, [0] * len(step_avals),
                               force=[True] * len(adjoint.outvars))
    if dims[0] is not None:  # examples of different step counts (a batched while loop's)
        forward_b, adjoint_b, steps, values, counts = _revolve_padded(
            forward_b, adjoint_b, steps, values, counts)
    outs = bind("revolve", steps, *values, forward=forward_b, adjoint=adjoint_b,
                length=length, reverse=reverse, snapshots=snapshots, counts=counts)
    outs = [moveaxis(o, 0, 1) if n_ctc <= i < n_ctc + n_lx else o for i, o in enumerate(outs)]
    return outs, [0] * len(outs)


def _revolve_padded(forward, adjoint, steps, values, counts):
    """One sweep of the largest step count for a batch whose examples take different ones:
    each example's steps past its own count leave its carry, cotangents and accumulators as
    they are. The step number rides along as a carry, each example's count as a constant."""
    n_kc, n_kcarry, n_kx, n_ctc, n_cty, n_lc, n_lx = counts
    i64 = np.dtype(np.int64)

    def active(k, n, like):
        on = ew.lt(bind("broadcast_in_dim", k, shape=get_aval(n).shape,
                        broadcast_dimensions=()), n)
        return bind("broadcast_in_dim", on, shape=get_aval(like).shape,
                    broadcast_dimensions=(0,))

    def keep(k, n, new, old):
        return [ew.select(active(k, n, a), a, b) for a, b in zip(new, old)]

    def forward_step(*vals):
        kc, (n, k), rest = vals[:n_kc], vals[n_kc:n_kc + 2], vals[n_kc + 2:]
        carry, xs = rest[:n_kcarry], rest[n_kcarry:]
        new = eval_graph(forward, [*kc, *carry, *xs], bind_eqn)
        return [ew.add(k, np.int64(1)), *keep(k, n, new, carry)]

    def adjoint_step(*vals):
        kc, (n, k), rest = vals[:n_kc], vals[n_kc:n_kc + 2], vals[n_kc + 2:]
        outs = eval_graph(adjoint, [*kc, *rest], bind_eqn)
        ct, acc = rest[n_kcarry + n_kx:n_kcarry + n_kx + n_ctc], rest[len(rest) - n_lc:]
        ct_x = [ew.select(active(k, n, c), c, ew.full_like(c, 0)) for c in
                outs[n_ctc:n_ctc + n_lx]]
        return [*keep(k, n, outs[:n_ctc], ct), *ct_x, *keep(k, n, outs[n_ctc + n_lx:], acc)]

    n = ew.convert_element_type(steps, i64)
    scalar = ShapedArray((), i64)
    avals = [get_aval(v) for v in values]
    fwd_avals = [*avals[:n_kc], get_aval(n), scalar, *avals[n_kc:n_kc + n_kcarry + n_kx]]
    forward_p = trace_closed(forward_step, fwd_avals)
    adjoint_p = trace_closed(adjoint_step, [*fwd_avals, *avals[n_kc + n_kcarry + n_kx:]])
    # The counter goes with the step number (a carry), the counts with the constants: the
    # sweep's groups are (constants + counts, counter + carries, the rest as they were).
    values = [*values[:n_kc], n, np.zeros((), i64), *values[n_kc:]]
    total = rd.reduce_max(n, (0,))
    return forward_p, adjoint_p, total, values, (n_kc + 1, n_kcarry + 1, *counts[2:])


defprim("revolve", _revolve_abstract, _revolve_impl, kind="control", multiple=True)
jvp_rules["revolve"] = _revolve_jvp
transpose_rules["revolve"] = _transpose_revolve_sweep
partial_eval_rules["revolve"] = _revolve_partial_eval
batching_rules["revolve"] = _revolve_batch


# --------------------------------------------------------------------------- while


def _while_abstract(*avals, cond, body, n_cond_consts, n_body_consts, snapshots=32,
                    counted=False, linear_carry=None):
    # A counted while (the linear part of reverse mode) takes the trip count last.
    carry = avals[n_cond_consts + n_body_consts:len(avals) - counted]
    mapping = dim_map(body.in_avals[n_body_consts:], carry)
    return [subst_dims(v.aval, mapping) for v in body.outvars]


def _while_impl(*args, cond, body, n_cond_consts, n_body_consts, snapshots=32, counted=False,
                linear_carry=None):
    cond_consts = list(args[:n_cond_consts])
    body_consts = list(args[n_cond_consts:n_cond_consts + n_body_consts])
    carry = list(args[n_cond_consts + n_body_consts:])
    while interpret(cond, [], [*cond_consts, *carry])[0]:
        carry = interpret(body, [], [*body_consts, *carry])
    return carry


def _extended(graph: Graph, extra_avals) -> Graph:
    """``graph`` taking extra inputs after its own, unread (the cond of a loop whose carry
    gained tangents or a batch flag)."""
    return graph.replace(invars=[*graph.invars, *(Var(a) for a in extra_avals)])


def _while_jvp(primals, tangents, *, cond, body, n_cond_consts, n_body_consts, snapshots=32,
               counted=False, linear_carry=None):
    n_fixed = n_cond_consts + n_body_consts
    nz = [not isinstance(t, Zero) for t in tangents]
    nz_bc = nz[n_cond_consts:n_fixed]
    n_carry = len(body.outvars)
    carry_nz = _fixpoint(lambda flags: jvp_graph(body, nz_bc + flags)[1], nz[n_fixed:])
    jvp, _ = jvp_graph(body, nz_bc + carry_nz, instantiate=carry_nz)
    n_in = len(body.invars)
    t_pos = iter(range(n_in, n_in + sum(nz_bc) + sum(carry_nz)))
    nz_all = nz_bc + carry_nz
    tangent_at = [next(t_pos) if f else None for f in nz_all]
    consts_g = list(range(n_body_consts)) + [tangent_at[i] for i in range(n_body_consts)
                                             if nz_all[i]]
    carry_g = list(range(n_body_consts, n_in)) + [tangent_at[i]
                                                  for i in range(n_body_consts, n_in)
                                                  if nz_all[i]]
    jvp = _reorder(jvp, [consts_g, carry_g], [list(range(len(jvp.outvars)))])
    t_carry = [instantiate(t) for t, f in zip(tangents[n_fixed:], carry_nz) if f]
    cond_ext = _extended(cond, [get_aval(t) for t in t_carry])
    t_bc = [t for t in tangents[n_cond_consts:n_fixed] if not isinstance(t, Zero)]
    outs = bind("while", *primals[:n_cond_consts], *primals[n_cond_consts:n_fixed], *t_bc,
                *primals[n_fixed:], *t_carry, cond=cond_ext, body=jvp,
                n_cond_consts=n_cond_consts, n_body_consts=n_body_consts + len(t_bc),
                snapshots=snapshots)
    t_it = iter(outs[n_carry:])
    return outs[:n_carry], [next(t_it) if f else Zero(get_aval(o))
                            for o, f in zip(outs[:n_carry], carry_nz)]


def _while_partial_eval(eqn: Eqn, unknown_ins):
    """The known part is the loop on the known carries, counting its steps; the unknown part
    is the whole loop again (its body recomputes what it needs), given the count, and is
    transposed on a Revolve schedule for that count (``_while_transpose``)."""
    p = eqn.params
    cond, body, n_cc, n_bc = p["cond"], p["body"], p["n_cond_consts"], p["n_body_consts"]
    u_cc, u_bc = unknown_ins[:n_cc], unknown_ins[n_cc:n_cc + n_bc]
    u_carry0 = unknown_ins[n_cc + n_bc:]
    if any(u_cc):
        raise MissingRuleError("adjit: while_loop's condition reads a value being "
                               "differentiated linearly (primitive 'while')")
    carry_u = _fixpoint(lambda flags: partial_eval_graph(body, u_bc + flags)[2], u_carry0)
    known, _, _, n_res = partial_eval_graph(body, u_bc + carry_u, instantiate=carry_u)
    known = dce(known.replace(outvars=known.outvars[:len(known.outvars) - n_res]))
    cond_carry = cond.invars[n_cc:]
    read = {a.id for e in cond.eqns for a in e.inputs if not isinstance(a, Literal)}
    read |= {v.id for v in cond.outvars if not isinstance(v, Literal)}
    if any(u and v.id in read for v, u in zip(cond_carry, carry_u)):
        raise MissingRuleError("adjit: while_loop's condition reads a carry being "
                               "differentiated linearly (primitive 'while')")
    count = Var(ShapedArray((), np.int64))
    counter_in = Var(ShapedArray((), np.int64))
    known_bc_avals = [v.aval for v, u in zip(body.invars[:n_bc], u_bc) if not u]
    known_carry_avals = [v.aval for v, u in zip(body.invars[n_bc:], carry_u) if not u]

    def counting(*xs):
        bc, (i, *carry) = xs[:len(known_bc_avals)], xs[len(known_bc_avals):]
        return [ew.add(i, np.int64(1)), *eval_graph(known, [*bc, *carry], bind_eqn)]

    counting_body = trace_closed(counting, [*known_bc_avals, counter_in.aval, *known_carry_avals])
    counting_cond = cond.replace(invars=[*cond.invars[:n_cc], counter_in,
                                         *(v for v, u in zip(cond_carry, carry_u) if not u)])
    ins = eqn.inputs
    known_eqn = Eqn("while", [*ins[:n_cc], *(a for a, u in zip(ins[n_cc:n_cc + n_bc], u_bc)
                                            if not u),
                              Literal(0, np.int64),
                              *(a for a, u in zip(ins[n_cc + n_bc:], carry_u) if not u)],
                    [count, *(v for v, u in zip(eqn.outs, carry_u) if not u)],
                    {**p, "cond": counting_cond, "body": counting_body,
                     "n_body_consts": len(known_bc_avals)}, eqn.source)
    outs = [v if u else Var(v.aval) for v, u in zip(eqn.outs, carry_u)]
    unknown_eqn = eqn.replace(inputs=[*ins, count], outs=outs,
                              params={**p, "counted": True, "linear_carry": tuple(carry_u)})
    return known_eqn, unknown_eqn


def _while_transpose(cts, *args, cond, body, n_cond_consts, n_body_consts, snapshots=32,
                     counted=False, linear_carry=None):
    if not counted:
        raise MissingRuleError("adjit: a while loop is transposed only as the linear part of "
                               "reverse mode (primitive 'while')")
    # The loop again as a scan of the counted steps without xs and ys, on Revolve's schedule.
    steps, args = args[-1], args[n_cond_consts:-1]
    cts_in = _revolve_transpose(cts, args, body, None, False, n_body_consts, len(body.outvars),
                                snapshots, linear_carry, steps=steps)
    return [None] * n_cond_consts + cts_in + [None]


def _while_batch(args, dims, *, cond, body, n_cond_consts, n_body_consts, snapshots=32,
                 counted=False, linear_carry=None):
    size = next(get_aval(x).shape[0] for x, d in zip(args, dims) if d is not None)
    n_fixed = n_cond_consts + n_body_consts
    d_cc, d_bc, d_carry0 = dims[:n_cond_consts], dims[n_cond_consts:n_fixed], dims[n_fixed:]
    carry_args = args[n_fixed:]

    def carry_avals(flags):
        return [ShapedArray((size, *get_aval(c).shape), get_aval(c).dtype) if f and d is None
                else get_aval(c) for c, f, d in zip(carry_args, flags, d_carry0)]

    def fixed_avals(part):
        return [get_aval(x) for x in part]

    def step(flags):
        carry_dims = [0 if f else None for f in flags]
        _, out_dims = batch_graph(body, fixed_avals(args[n_cond_consts:n_fixed]) +
                                  carry_avals(flags), d_bc + carry_dims)
        pred_dims = batch_graph(cond, fixed_avals(args[:n_cond_consts]) + carry_avals(flags),
                                d_cc + carry_dims)[1] if _any_batched(d_cc + carry_dims) \
            else [None]
        # A predicate that differs across the batch makes every carry batched.
        if pred_dims[0] is not None:
            return [True] * len(flags)
        return [d is not None for d in out_dims]

    carry_b = _fixpoint(step, [d is not None for d in d_carry0])
    carry_dims = [0 if f else None for f in carry_b]
    c_avals = carry_avals(carry_b)
    cond_b, pred_dims = batch_graph(cond, fixed_avals(args[:n_cond_consts]) + c_avals,
                                    d_cc + carry_dims) if _any_batched(d_cc + carry_dims) \
        else (cond, [None])
    carry_in = [broadcast_batch(c, size) if f and d is None else c
                for c, f, d in zip(carry_args, carry_b, d_carry0)]
    n_carry = len(body.outvars)
    if pred_dims[0] is None:
        body_b, _ = batch_graph(body, fixed_avals(args[n_cond_consts:n_fixed]) + c_avals,
                                d_bc + carry_dims, force=carry_b)
        outs = bind("while", *args[:n_fixed], *carry_in, cond=cond_b, body=body_b,
                    n_cond_consts=n_cond_consts, n_body_consts=n_body_consts,
                    snapshots=snapshots)
        return outs, carry_dims
    # Examples stop at different steps: loop while any goes on; a finished one keeps its carry.
    cc_avals = fixed_avals(args[:n_cond_consts])
    bc_avals = fixed_avals(args[n_cond_consts:n_fixed])

    def any_fn(*xs):
        (pred,), _ = batch_eval(cond, [], list(xs), d_cc + carry_dims)
        going = ew.convert_element_type(ew.ne(pred, ew.full_like(pred, 0)), np.dtype(np.int64))
        return [ew.gt(rd.reduce_max(going, (0,)), np.zeros((), np.int64))]

    def body_fn(*xs):
        cc, bc, carry = (xs[:n_cond_consts], xs[n_cond_consts:n_fixed], xs[n_fixed:])
        (pred,), _ = batch_eval(cond, [], [*cc, *carry], d_cc + carry_dims)
        pred = ew.ne(pred, ew.full_like(pred, 0))
        new, new_dims = batch_eval(body, [], [*bc, *carry], d_bc + carry_dims)
        out = []
        for old, n, d in zip(carry, new, new_dims):
            n = broadcast_batch(n, size) if d is None else n
            shape = get_aval(n).shape
            keep = bind("broadcast_in_dim", pred, shape=shape, broadcast_dimensions=(0,))
            out.append(ew.select(keep, n, old))
        return out

    any_graph = trace_closed(any_fn, [*cc_avals, *c_avals])
    step_graph = trace_closed(body_fn, [*cc_avals, *bc_avals, *c_avals])
    outs = bind("while", *args[:n_cond_consts], *args[:n_fixed], *carry_in, cond=any_graph,
                body=step_graph, n_cond_consts=n_cond_consts, n_body_consts=n_fixed,
                snapshots=snapshots)
    return outs, [0] * n_carry


def _any_batched(dims) -> bool:
    return any(d is not None for d in dims)


def _while_dce(eqn: Eqn, used_outs):
    # Every carry feeds the condition or the next step: only the graphs are cleaned.
    p = eqn.params
    return eqn.replace(params={**p, "cond": dce(p["cond"]), "body": dce(p["body"])})


defprim("while", _while_abstract, _while_impl, kind="control", multiple=True)
jvp_rules["while"] = _while_jvp
partial_eval_rules["while"] = _while_partial_eval
transpose_rules["while"] = _while_transpose
linear_prims.add("while")
batching_rules["while"] = _while_batch
dce_rules["while"] = _while_dce

