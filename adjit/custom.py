"""Custom derivative rules: ``custom_jvp`` and ``custom_vjp`` (JAX's semantics).

Called inside a trace, a decorated function traces its body into a graph of its own and binds
one call equation (kind ``call``, see ``adjit.control.call``) with an output per leaf::

    y... = custom_jvp_call[body, fn] x...     the body; its JVP is the user's rule, traced
    y... = custom_vjp_call[body, fn] x...     the body; its JVP runs fwd and binds custom_vjp_lin
    t... = custom_vjp_lin[body, fn] r... t... linear in the tangents t: its transpose is the
                                              user's bwd(r, ct); its body is bwd transposed

``body`` is the graph, over the values the body captured followed by the arguments' leaves;
``fn`` (a ``CallInfo``) holds the rules. Going beyond JAX, forward mode through a
``custom_vjp`` function works: bwd is linear in ct, so transposing its traced graph gives the
tangent map. The pass ``inline_calls`` (first in the pipeline) replaces every call by its
body, so the optimizer and the code generator never see one; the reference interpreter runs
them. Called outside any trace, a decorated function is simply called.

Limits: a decorated function must not close over traced values (pass them as arguments; this is
an error that says so); there is no ``nondiff_argnums``; a function adjit cannot trace works
only when called directly, since a host callback could not run in a compiled kernel.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

from adjit import tree
from adjit.ad import jvp_eval, vjp_eval
from adjit.batching import batch_eval, batch_graph, vmap_body
from adjit.control.call import call_abstract, call_impl
from adjit.errors import AdjitError, AdjitTypeError, AdjitValueError, ConcretizationError
from adjit.ir.graph import Graph, ShapedArray, dim_map, subst_dims
from adjit.ir.rules import Zero, batching_rules, is_linear
from adjit.primitives import elementwise as ew
from adjit.primitives.registry import defjvp_full, defprim, deftranspose
from adjit.primitives.structural import broadcast_in_dim, instantiate, reduce_sum, zeros_like_aval
from adjit.trace import Tracer, bind, get_aval, is_tracing, trace_to_graph

_serials = itertools.count()


class CallInfo:
    """The ``fn`` param of a custom call: how many of the body's leading inputs are captured
    values (the rules see only the rest), and the flat rules. Compared by identity; printed
    as the function's name."""

    def __init__(self, name: str, n_consts: int, **rules):
        self.name = f"{name}#{next(_serials)}"
        self.n_consts = n_consts
        self.__dict__.update(rules)

    def __repr__(self):
        return self.name


class UntraceableBody:
    """The ``body`` of a ``custom_vjp_lin`` whose bwd could not be transposed: reverse mode
    needs only bwd itself, so the error is raised only where forward mode needs the body."""

    def __init__(self, error: AdjitError):
        self.error = error

    def __repr__(self):
        return "<bwd not transposable>"


# --------------------------------------------------------------------------- tracing bodies


def _trace_body(fun: Callable, avals, what: str):
    """Trace ``fun(*flat) -> flat outputs``; returns (graph over [*captured, *flat], captured)."""
    try:
        graph, consts = trace_to_graph(fun, avals)
    except ConcretizationError as e:
        raise ConcretizationError(
            f"adjit: {what} could not be traced: {e}\nA function adjit cannot trace (one that "
            "calls scipy or math on concrete numbers) can be called directly, outside adjit's "
            "transformations, but not under grad, jvp, vmap or jit: that would need a host "
            "callback, which compiled kernels cannot run.") from e
    for c in consts:
        if isinstance(c, Tracer):
            raise AdjitTypeError(
                f"adjit: {what} uses a traced value from an enclosing function (a closure over "
                "a traced array); pass that value as an argument instead")
    graph = graph.replace(constvars=(), invars=(*graph.constvars, *graph.invars))
    return graph, list(consts)


def _trace_user_fun(fun, leaves, in_tree, what):
    out_tree_box = []

    def flat_fun(*flat):
        out_leaves, out_tree = tree.flatten(fun(*tree.unflatten(in_tree, flat)))
        out_tree_box.append(out_tree)
        return out_leaves

    graph, consts = _trace_body(flat_fun, [get_aval(x) for x in leaves], what)
    return graph, consts, out_tree_box[-1]


def _bind_call(prim: str, body, info: CallInfo, consts, leaves) -> list:
    return bind(prim, *consts, *leaves, body=body, fn=info)


def _as_like(x, aval: ShapedArray, what: str):
    """A rule's output as an array of ``aval``: a scalar is broadcast, the dtype converted."""
    x_aval = get_aval(x)
    if x_aval.shape == () and aval.shape != ():
        x = broadcast_in_dim(x, aval.shape, ())
    elif x_aval.shape != aval.shape:
        raise AdjitValueError(f"adjit: {what} gave an array {x_aval} where {aval} belongs")
    return ew.convert_element_type(x, aval.dtype)


def _tree_leaves_like(value, like_tree, what: str) -> list:
    leaves, value_tree = tree.flatten(value)
    if value_tree != like_tree:
        raise AdjitValueError(f"adjit: {what} has the wrong structure: {value_tree} where "
                              f"{like_tree} belongs")
    return leaves


def _batched_body(body, args, dims):
    """``body`` vmapped, every output batched on axis 0."""
    return batch_graph(body, [get_aval(x) for x in args], dims,
                       force=[True] * len(body.outvars))[0]


# --------------------------------------------------------------------------- custom_jvp


class custom_jvp:
    """A function with a JVP rule of its own: ``f.defjvp(rule)``, where
    ``rule(primals, tangents) -> (out, tangent_out)`` with primals and tangents tuples of the
    arguments. Reverse mode transposes the rule, so it must be linear in the tangents."""

    def __init__(self, fun: Callable):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.jvp = None

    def defjvp(self, jvp: Callable) -> Callable:
        self.jvp = jvp
        return jvp

    def __call__(self, *args):
        name = getattr(self.fun, "__name__", "custom_jvp")
        if self.jvp is None:
            raise AdjitError(f"adjit: custom_jvp function {name} has no rule: call "
                             f"{name}.defjvp(rule) first")
        if not is_tracing():
            return self.fun(*args)
        leaves, in_tree = tree.flatten(args)
        graph, consts, out_tree = _trace_user_fun(self.fun, leaves, in_tree,
                                                  f"custom_jvp function {name}")
        out_avals = graph.out_avals
        rule = self.jvp

        def jvp_flat(primals, tangents):
            result = rule(tree.unflatten(in_tree, primals), tree.unflatten(in_tree, tangents))
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                raise AdjitTypeError(f"adjit: the JVP rule of {name} must return a pair "
                                     "(primal_out, tangent_out)")
            what = f"the JVP rule of {name}"
            outs = _tree_leaves_like(result[0], out_tree, what + " (its primal output)")
            t_outs = _tree_leaves_like(result[1], out_tree, what + " (its tangent output)")
            return ([_as_like(o, a, what) for o, a in zip(outs, out_avals)],
                    [_as_like(t, a, what) for t, a in zip(t_outs, out_avals)])

        info = CallInfo(name, len(consts), jvp=jvp_flat)
        return tree.unflatten(out_tree, _bind_call("custom_jvp_call", graph, info, consts,
                                                   leaves))


def _custom_jvp_call_jvp(primals, tangents, *, body, fn):
    nc = fn.n_consts
    return fn.jvp(list(primals[nc:]), [instantiate(t) for t in tangents[nc:]])


def _custom_jvp_call_batch(args, dims, *, body, fn):
    # A new custom_jvp: the body vmapped, and the rule vmapped with it.
    graph = _batched_body(body, args, dims)
    arg_dims = tuple(dims[fn.n_consts:])
    rule = vmap_body(lambda p, t: fn.jvp(list(p), list(t)), (arg_dims, arg_dims), 0)
    info = CallInfo(f"vmap({fn.name})", fn.n_consts, jvp=lambda p, t: rule(tuple(p), tuple(t)))
    outs = _bind_call("custom_jvp_call", graph, info, [], args)
    return outs, [0] * len(outs)


defprim("custom_jvp_call", call_abstract, call_impl, kind="call", multiple=True)
defjvp_full("custom_jvp_call", _custom_jvp_call_jvp)
batching_rules["custom_jvp_call"] = _custom_jvp_call_batch


# --------------------------------------------------------------------------- custom_vjp


class custom_vjp:
    """A function with a VJP rule of its own: ``f.defvjp(fwd, bwd)``, where
    ``fwd(*args) -> (out, residuals)`` and ``bwd(residuals, ct) -> one cotangent per argument``
    (None for a zero). Reverse mode runs fwd and bwd. Forward mode (and so Hessians) works when
    bwd is traceable by adjit: it transposes bwd, which is linear in ct."""

    def __init__(self, fun: Callable):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.fwd = self.bwd = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args):
        name = getattr(self.fun, "__name__", "custom_vjp")
        if self.fwd is None:
            raise AdjitError(f"adjit: custom_vjp function {name} has no rules: call "
                             f"{name}.defvjp(fwd, bwd) first")
        if not is_tracing():
            return self.fun(*args)
        leaves, in_tree = tree.flatten(args)
        graph, consts, out_tree = _trace_user_fun(self.fun, leaves, in_tree,
                                                  f"custom_vjp function {name}")
        arg_avals = [get_aval(x) for x in leaves]
        fwd, bwd = self.fwd, self.bwd
        res_tree_box = []

        def fwd_flat(primals):
            result = fwd(*tree.unflatten(in_tree, primals))
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                raise AdjitTypeError(f"adjit: the fwd rule of {name} must return a pair "
                                     "(out, residuals)")
            outs = _tree_leaves_like(result[0], out_tree, f"the output of the fwd rule of {name}")
            res, res_tree = tree.flatten(result[1])
            res_tree_box.append(res_tree)
            return outs, res

        def bwd_flat(res, cts):
            what = f"the bwd rule of {name}"
            result = bwd(tree.unflatten(res_tree_box[-1], res), tree.unflatten(out_tree, cts))
            if not isinstance(result, (tuple, list)) or len(result) != len(args):
                raise AdjitTypeError(f"adjit: {what} must return a tuple with one cotangent "
                                     f"per argument ({len(args)})")
            flat = []
            for arg, ct in zip(args, result):
                arg_tree = tree.flatten(arg)[1]
                n = arg_tree.num_leaves
                flat.extend([None] * n if ct is None else _tree_leaves_like(ct, arg_tree, what))
            return [zeros_like_aval(a) if c is None else _as_like(c, a, what)
                    for c, a in zip(flat, arg_avals)]

        info = CallInfo(name, len(consts), fwd=fwd_flat, bwd=bwd_flat)
        return tree.unflatten(out_tree, _bind_call("custom_vjp_call", graph, info, consts,
                                                   leaves))


def _custom_vjp_call_jvp(primals, tangents, *, body, fn):
    nc = fn.n_consts
    outs, res = fn.fwd(list(primals[nc:]))
    t_args = [instantiate(t) for t in tangents[nc:]]
    out_avals = [get_aval(o) for o in outs]
    lin_body, lin_consts = _transposed_bwd(fn, res, t_args, out_avals)
    lin = CallInfo(f"{fn.name}.lin", len(lin_consts), bwd=fn.bwd, n_res=len(res),
                   out_avals=out_avals,
                   in_avals=[get_aval(x) for x in (*lin_consts, *res, *t_args)])
    return outs, bind("custom_vjp_lin", *lin_consts, *res, *t_args, body=lin_body, fn=lin)


def _transposed_bwd(fn: CallInfo, res, t_args, out_avals):
    """The body of the linear map t -> J t whose transpose is bwd: bwd transposed, traced."""
    n_res = len(res)

    def tangent_map(*xs):
        r, ts = list(xs[:n_res]), xs[n_res:]
        bwd_graph, bwd_consts = trace_to_graph(lambda *cts: fn.bwd(r, list(cts)), out_avals)
        _, backward = vjp_eval(bwd_graph, bwd_consts, [zeros_like_aval(a) for a in out_avals],
                               [True] * len(out_avals))
        ct_in = [t if get_aval(t).is_inexact else Zero(get_aval(t)) for t in ts]
        return [instantiate(t) for t in backward(ct_in)]

    try:
        return _trace_body(tangent_map, [get_aval(x) for x in (*res, *t_args)], f"bwd of {fn}")
    except AdjitError as e:
        return UntraceableBody(AdjitError(
            f"adjit: forward mode through the custom_vjp function {fn} transposes its bwd "
            f"rule, which failed: {e}")), []


def _custom_vjp_lin_abstract(*in_avals, body, fn):
    return [subst_dims(a, dim_map(fn.in_avals, in_avals)) for a in fn.out_avals]


def _lin_body(body) -> Graph:
    if not isinstance(body, Graph):
        raise body.error
    return body


def _custom_vjp_lin_impl(*args, body, fn):
    return call_impl(*args, body=_lin_body(body))


def _custom_vjp_lin_jvp(primals, tangents, *, body, fn):
    return jvp_eval(_lin_body(body), [], list(primals), list(tangents))


def _custom_vjp_lin_transpose(cts, *args, body, fn):
    nc, nr = fn.n_consts, fn.n_res
    res = args[nc:nc + nr]
    if any(is_linear(r) for r in res):
        raise AdjitError(f"adjit: the residuals of {fn} depend on tangents")
    ct_args = fn.bwd(list(res), [instantiate(c) for c in cts])
    return [None] * (nc + nr) + [c if get_aval(c).is_inexact else None for c in ct_args]


def _custom_vjp_lin_batch(args, dims, *, body, fn):
    return batch_eval(_lin_body(body), [], list(args), list(dims))


def _custom_vjp_call_batch(args, dims, *, body, fn):
    # A new custom_vjp: the body, fwd and bwd vmapped; an argument the batch shares gets the
    # sum of its per-example cotangents.
    graph = _batched_body(body, args, dims)
    arg_dims = tuple(dims[fn.n_consts:])
    fwd_b = vmap_body(lambda p: fn.fwd(list(p)), (arg_dims,), 0)
    bwd_b = vmap_body(lambda r, c: fn.bwd(list(r), list(c)), 0, 0)

    def bwd(res, cts):
        ct_args = bwd_b(tuple(res), tuple(cts))
        return [c if d is not None else reduce_sum(c, (0,)) for c, d in zip(ct_args, arg_dims)]

    info = CallInfo(f"vmap({fn.name})", fn.n_consts, fwd=lambda p: fwd_b(tuple(p)), bwd=bwd)
    outs = _bind_call("custom_vjp_call", graph, info, [], args)
    return outs, [0] * len(outs)


defprim("custom_vjp_call", call_abstract, call_impl, kind="call", multiple=True)
defjvp_full("custom_vjp_call", _custom_vjp_call_jvp)
batching_rules["custom_vjp_call"] = _custom_vjp_call_batch

defprim("custom_vjp_lin", _custom_vjp_lin_abstract, _custom_vjp_lin_impl, kind="call",
        multiple=True)
defjvp_full("custom_vjp_lin", _custom_vjp_lin_jvp)
deftranspose("custom_vjp_lin", _custom_vjp_lin_transpose)
batching_rules["custom_vjp_lin"] = _custom_vjp_lin_batch
