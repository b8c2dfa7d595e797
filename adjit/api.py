"""The public transformations. Each is a thin composition of stages:

    trace the user's function -> transform its graph (jvp, linearize + transpose) by tracing a
    function that evaluates it with the rules -> run the result (compiled, or interpreted).

Each builds one :class:`adjit.dispatch.Staged` of a body and the user's function, which it
watches (see :mod:`adjit.freevalues`). Called on concrete arrays, a transformed function traces
once per input signature and caches what it built; called inside another trace, it stages its
work into that trace, so any composition (``grad(grad(f))``, ``jit(grad(f))``) becomes one
graph. ``target=`` names the backend a transform compiles for (``"cpu"``, the default); it is
checked when the transform is created and does not matter inside another trace, where the
body runs in the outer trace and the outermost transform's target compiles the whole graph.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from adjit import tree
from adjit.ad import jvp_eval, vjp_eval
from adjit.backend import check_target_name
from adjit.batching import vmap_body
from adjit.dispatch import Staged, cached_staged, entry_function
from adjit.errors import AdjitTypeError, AdjitValueError
from adjit.primitives import elementwise as ew
from adjit.primitives.registry import Zero
from adjit.primitives.structural import instantiate
from adjit.trace import Tracer, get_aval, trace_symbolic, trace_tree


def _trace_flat(fun: Callable, args, what: str):
    """Trace ``fun(*args)``; returns (graph, consts, out_tree) over the flat leaves of args."""
    leaves, in_tree = tree.flatten(args)
    graph, consts, out_tree = trace_tree(fun, in_tree, [get_aval(x) for x in leaves], what)
    return graph, consts, out_tree, leaves


# --------------------------------------------------------------------------- argnums


def normalize_argnums(argnums, nargs: int, what: str):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for i in nums:
        if not isinstance(i, int) or not -nargs <= i < nargs:
            raise AdjitValueError(
                f"adjit: {what} argnums={argnums!r} does not fit a call with {nargs} arguments")
    return single, tuple(i % nargs for i in nums)


def check_input_dtype(aval, what: str, holomorphic: bool, complex_ok: bool = True,
                      where: str = "an input"):
    """JAX's rules for a differentiated input: complex with ``holomorphic=True``; else float,
    or complex where ``complex_ok`` (grad and jacrev of a real function of complex inputs)."""
    if holomorphic and not aval.is_complex:
        raise AdjitTypeError(f"adjit: {what} with holomorphic=True needs complex inputs, but "
                             f"{where} has dtype {aval.dtype}")
    if aval.is_float or aval.is_complex and (complex_ok or holomorphic):
        return
    hint = ("pass it as float (e.g. 1.0, or x.astype(float)) or leave it out of argnums"
            if not aval.is_complex else "for a holomorphic function pass holomorphic=True; "
            "for others of complex inputs use adjit.jvp")
    raise AdjitTypeError(f"adjit: {what} needs floating-point inputs"
                         f"{' (or complex ones)' if complex_ok else ''}, but {where} has "
                         f"dtype {aval.dtype}; {hint}")


def check_output_dtype(aval, what: str, holomorphic: bool):
    """JAX's rules for the output of grad and jacrev: complex with ``holomorphic=True``; else
    real (the gradient of a complex output is not one array unless f is holomorphic)."""
    if holomorphic and not aval.is_complex:
        raise AdjitTypeError(f"adjit: {what} with holomorphic=True needs a complex output, got "
                             f"{aval}")
    if not holomorphic and aval.is_complex:
        raise AdjitTypeError(
            f"adjit: {what} needs a real-valued output, got {aval}; for a holomorphic function "
            "pass holomorphic=True, for other functions with complex outputs use adjit.vjp")
    if not aval.is_inexact:
        raise AdjitTypeError(f"adjit: {what} needs floating-point outputs, got {aval}")


def _diff_mask(args, argnums, what: str, holomorphic: bool = False):
    """Which flat leaves are differentiated; None and integer inputs there are an error."""
    mask = []
    for i, arg in enumerate(args):
        if arg is None and i in argnums:
            # An empty pytree otherwise: the user's function would be called with None.
            raise AdjitTypeError(f"adjit: {what} argument {i} is None; expected an array or a "
                                 "number (or a pytree of them)")
        arg_leaves = tree.leaves(arg)
        for leaf in arg_leaves:
            differentiated = i in argnums
            if differentiated:
                check_input_dtype(get_aval(leaf), what, holomorphic, where=f"argument {i}")
            mask.append(differentiated)
    return mask


# --------------------------------------------------------------------------- transformations


def _value_and_grad_body(fun, argnums, has_aux, what, holomorphic):
    def body(*args):
        single, nums = normalize_argnums(argnums, len(args), what)
        diff = _diff_mask(args, nums, what, holomorphic)

        def scalar_fun(*a):
            out = fun(*a)
            aux = None
            if has_aux:
                if not (isinstance(out, (tuple, list)) and len(out) == 2):
                    raise AdjitTypeError(
                        f"adjit: with has_aux=True the function given to {what} must return a "
                        "pair (output, aux)")
                out, aux = out
            if isinstance(out, (tuple, list, dict)) or out is None or isinstance(out, str):
                raise AdjitTypeError(
                    f"adjit: {what} needs a function returning a scalar, but it returned "
                    f"{type(out).__name__}; use adjit.vjp or jacrev for other outputs")
            aval = get_aval(out)
            if aval.shape != () or not aval.is_inexact:
                raise AdjitTypeError(
                    f"adjit: {what} needs a function returning a float scalar, but it returned "
                    f"an array {aval}; use adjit.vjp or jacrev for non-scalar outputs")
            check_output_dtype(aval, what, holomorphic)
            return (out, aux)

        graph, consts, out_tree, leaves = _trace_flat(scalar_fun, args, what)
        outs, backward = vjp_eval(graph, consts, leaves, diff)
        one = np.ones((), get_aval(outs[0]).dtype)
        cts = backward([one] + [Zero(get_aval(o)) for o in outs[1:]])
        grads_flat = iter(instantiate(ct) for ct in cts)
        grads = []
        for i, arg in enumerate(args):
            if i in nums:
                arg_leaves, arg_tree = tree.flatten(arg)
                grads.append((i, tree.unflatten(arg_tree, [next(grads_flat) for _ in arg_leaves])))
        by_num = dict(grads)
        grad_out = by_num[nums[0]] if single else tuple(by_num[i] for i in nums)
        value, aux = tree.unflatten(out_tree, outs)
        return ((value, aux) if has_aux else value), grad_out

    return body


def _transform_decorator(make):
    """Lets a transformation be used as ``t(f)``, ``@t`` and ``@t(argnums=1)``."""

    @functools.wraps(make)
    def wrapper(fun=None, argnums=0, has_aux=False, *, holomorphic: bool = False,
                target: str = "cpu", parallel: bool = False):
        check_target_name(target)
        if fun is None:
            return lambda f: wrapper(f, argnums, has_aux, holomorphic=holomorphic,
                                     target=target, parallel=parallel)
        if not callable(fun):
            raise AdjitTypeError(f"adjit: {make.__name__} expects a function, got "
                                 f"{type(fun).__name__}")
        return make(fun, argnums, has_aux, holomorphic, target, parallel)

    return wrapper


@_transform_decorator
def value_and_grad(fun, argnums=0, has_aux=False, holomorphic=False, target="cpu",
                   parallel=False):
    """``f -> (x -> (f(x), df/dx))``; with has_aux, f returns (value, aux) and so does this.
    Complex inputs follow :func:`grad`."""
    body = _value_and_grad_body(fun, argnums, has_aux, "value_and_grad", holomorphic)
    return entry_function(Staged(body, "value_and_grad", fun, target=target,
                                         parallel=parallel), fun)


@_transform_decorator
def grad(fun, argnums=0, has_aux=False, holomorphic=False, target="cpu", parallel=False):
    """The gradient of a scalar function: ``grad(f)(x)`` is df/dx, shaped like x.

    Complex numbers follow JAX: for a real-valued f of a complex z = x + iy the result is
    ``conj(df/dx + i df/dy)`` (so descend along its conjugate); a complex-valued f needs
    ``holomorphic=True`` (complex inputs and output), and then the result is f'(z).
    """
    body = _value_and_grad_body(fun, argnums, has_aux, "grad", holomorphic)

    def grad_body(*args):
        value, g = body(*args)
        return (g, value[1]) if has_aux else g

    return entry_function(Staged(grad_body, "grad", fun, target=target, parallel=parallel), fun)


def jit(fun: Callable = None, *, target: str = "cpu", parallel: bool = False) -> Callable:
    """Compile ``fun`` for ``target``: traced once per input signature, then run as a kernel.
    ``parallel=True`` (CPU): large calls share each loop over arrays among threads."""
    check_target_name(target)
    if fun is None:
        return lambda f: jit(f, target=target, parallel=parallel)
    if not callable(fun):
        raise AdjitTypeError(f"adjit: jit expects a function, got {type(fun).__name__}")
    return entry_function(Staged(lambda *args: fun(*args), "jit", fun, target=target,
                                 parallel=parallel), fun)


def _jvp_body(fun):
    def body(primals, tangents):
        graph, consts, out_tree, leaves = _trace_flat(fun, primals, "jvp")
        t_leaves, t_tree = tree.flatten(tangents)
        if t_tree != tree.flatten(primals)[1]:
            raise AdjitValueError("adjit: jvp tangents must have the structure of the primals")
        tangents_in = []
        for p, t in zip(leaves, t_leaves):
            pa, ta = get_aval(p), get_aval(t)
            if not pa.is_inexact:
                tangents_in.append(Zero(pa))
                continue
            if pa != ta and not (ta.shape == pa.shape or Tracer in (type(p), type(t))):
                raise AdjitValueError(f"adjit: jvp tangent {ta} does not match primal {pa}")
            tangents_in.append(ew.convert_element_type(t, pa.dtype))
        outs, t_outs = jvp_eval(graph, consts, leaves, tangents_in)
        return (tree.unflatten(out_tree, outs),
                tree.unflatten(out_tree, [instantiate(t) for t in t_outs]))

    return body


def jvp(fun: Callable, primals, tangents, *, target: str = "cpu", parallel: bool = False):
    """Forward mode: ``(fun(*primals), J(primals) @ tangents)``."""
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise AdjitTypeError("adjit: jvp takes primals and tangents as tuples: "
                             "jvp(f, (x,), (v,))")
    if len(primals) != len(tangents):
        raise AdjitValueError(f"adjit: jvp got {len(primals)} primals and {len(tangents)} "
                              "tangents")
    staged = cached_staged(fun, ("jvp", target, parallel), lambda: Staged(
        _jvp_body(fun), "jvp", fun, target=target, parallel=parallel,
        user_args=lambda args: args[0]))
    return staged(tuple(primals), tuple(tangents))


def _vjp_body(fun, has_aux):
    def body(primals, cts):
        def fun_main(*a):
            out = fun(*a)
            return out if not has_aux else out[0]

        graph, consts, out_tree, leaves = _trace_flat(fun_main, primals, "vjp")
        diff = [get_aval(x).is_inexact for x in leaves]
        ct_leaves, ct_tree = tree.flatten(cts)
        if ct_tree != out_tree:
            raise AdjitValueError("adjit: the cotangent passed to a vjp function must have the "
                                  "structure of the function's output")
        outs, backward = vjp_eval(graph, consts, leaves, diff)
        ct_in = []
        for o, c in zip(outs, ct_leaves):
            oa = get_aval(o)
            if get_aval(c).shape != oa.shape and Tracer not in (type(c), type(o)):
                raise AdjitValueError(f"adjit: cotangent {get_aval(c)} does not match output "
                                      f"{oa}")
            ct_in.append(ew.convert_element_type(c, oa.dtype) if oa.is_inexact else Zero(oa))
        grads = iter(backward(ct_in))
        flat = [instantiate(next(grads)) if d else np.zeros(np.shape(x), get_aval(x).dtype)
                for x, d in zip(leaves, diff)]
        per_arg, it = [], iter(flat)
        for p in primals:
            p_leaves, p_tree = tree.flatten(p)
            per_arg.append(tree.unflatten(p_tree, [next(it) for _ in p_leaves]))
        return tuple(per_arg)

    return body


def vjp(fun: Callable, *primals, has_aux: bool = False, target: str = "cpu",
        parallel: bool = False):
    """Reverse mode: ``(fun(*primals), f_vjp)`` with ``f_vjp(ct)`` the cotangents of primals."""
    forward = cached_staged(fun, ("vjp", has_aux, target, parallel), lambda: Staged(
        lambda *a: fun(*a), "vjp", fun, target=target, parallel=parallel))
    out = forward(*primals)
    backward = cached_staged(fun, ("vjp.backward", has_aux, target, parallel), lambda: Staged(
        _vjp_body(fun, has_aux), "vjp", fun, target=target, parallel=parallel,
        user_args=lambda args: args[0]))

    def f_vjp(ct):
        return backward(tuple(primals), ct)

    if has_aux:
        out, aux = out
        return out, f_vjp, aux
    return out, f_vjp


def linearize(fun: Callable, *primals, target: str = "cpu", parallel: bool = False):
    """``(fun(*primals), f_jvp)`` with ``f_jvp(*tangents)`` the JVP at ``primals``, a linear map.

    ``f_jvp`` is one staged function of the tangents (compiled once per tangent signature, and
    one graph inside other transforms); it recomputes the coefficients it needs from the
    primals, fused with the tangent arithmetic, rather than storing them.
    """
    forward = cached_staged(fun, ("linearize", target, parallel), lambda: Staged(
        lambda *a: fun(*a), "linearize", fun, target=target, parallel=parallel))
    out = forward(*primals)
    jvp_body = _jvp_body(fun)
    linear = cached_staged(fun, ("linearize.tangents", target, parallel), lambda: Staged(
        lambda p, t: jvp_body(p, t)[1], "linearize", fun, target=target, parallel=parallel,
        user_args=lambda args: args[0]))

    def f_jvp(*tangents):
        if len(tangents) != len(primals):
            raise AdjitValueError(f"adjit: the linearized function takes {len(primals)} "
                                  f"tangents, got {len(tangents)}")
        return linear(tuple(primals), tuple(tangents))

    return out, f_jvp


def stop_gradient(x):
    """``x`` unchanged, with a zero derivative (a pytree of arrays works too)."""
    return tree.tree_map(lambda leaf: ew.stop_gradient(leaf), x)


def make_graph(fun: Callable) -> Callable:
    """``make_graph(f)(*args)`` returns the traced graph (printable) of ``f`` at those args."""

    def build(*args):
        leaves, in_tree = tree.flatten(args)

        def flat_fun(*flat):
            return tree.leaves(fun(*tree.unflatten(in_tree, flat)))

        graph, _ = trace_symbolic(flat_fun, leaves)
        return graph

    return build


def vmap(fun: Callable = None, in_axes=0, out_axes=0, *, target: str = "cpu",
         parallel: bool = False):
    """Vectorize ``fun`` over an axis of its inputs: ``vmap(f)(xs)[i] == f(xs[i])``.

    ``in_axes`` picks the mapped axis of each argument (None: the same value for every
    example); ``out_axes`` where the batch axis goes in each output. Compiled to one kernel.
    """
    check_target_name(target)
    if fun is None:
        return lambda f: vmap(f, in_axes, out_axes, target=target, parallel=parallel)
    if not callable(fun):
        raise AdjitTypeError(f"adjit: vmap expects a function, got {type(fun).__name__}")
    return entry_function(
        Staged(vmap_body(fun, in_axes, out_axes), "vmap", fun, target=target,
               parallel=parallel), fun)
