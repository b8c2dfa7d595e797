"""The helpers that fill the rule tables of ``adjit.ir.rules``, one block per primitive:

    defprim("sin", unary_abstract, np.sin, kind="elementwise")   # shape rule, reference impl
    defjvp("sin", lambda t, x, **_: mul(t, cos(x)))              # one rule per argument
    defbatch_elementwise("sin")
    # linear primitives also get a transpose rule:  deflinear("neg", lambda ct, x: [neg(ct)])

Tangents may be the symbolic ``Zero``; transpose rules receive ``LinearArg`` placeholders for the
arguments being transposed. Backend lowerings are tables of each target, keyed the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from adjit.errors import AdjitTypeError
from adjit.ir.graph import ShapedArray
from adjit.ir.rules import (  # noqa: F401  (the tables, for the primitive modules)
    KINDS,
    LinearArg,
    Zero,
    abstract_rules,
    batching_rules,
    impl_rules,
    is_linear,
    jvp_rules,
    linear_prims,
    missing_rules,
    multiple_results,
    nondiff_prims,
    prim_kinds,
    rule,
    transpose_rules,
)
from adjit.trace import bind, get_aval


def defprim(name: str, abstract: Callable, impl: Callable, kind: str = "array",
            multiple: bool = False) -> None:
    """A primitive: its shape rule, its reference implementation, its kind (see
    ``adjit.ir.rules``) and whether it has a tuple of outputs."""
    if kind not in KINDS:
        raise ValueError(f"adjit: unknown primitive kind {kind!r} (known: {KINDS})")
    abstract_rules[name] = abstract
    impl_rules[name] = impl
    prim_kinds[name] = kind
    if multiple:
        multiple_results.add(name)


def real_only(what: str, *avals: ShapedArray) -> None:
    """Ordering, and functions NumPy defines on the real line only, reject complex arrays
    (NumPy's lexicographic order of complex numbers is rarely what a program means)."""
    if any(a.is_complex for a in avals):
        raise AdjitTypeError(
            f"adjit: {what} is not defined for complex arrays ({', '.join(map(str, avals))}); "
            "apply it to real(), imag() or abs() of the array")


# --------------------------------------------------------------------------- symbolic zeros


def zeros_like_aval(aval: ShapedArray):
    if aval.shape == ():
        return np.zeros((), aval.dtype)
    return bind("broadcast_in_dim", np.zeros((), aval.dtype), shape=aval.shape,
                broadcast_dimensions=())


def add_tangents(a, b):
    """Sum of two tangents or cotangents, either of which may be a symbolic Zero."""
    if isinstance(a, Zero):
        return b
    if isinstance(b, Zero):
        return a
    return bind("add", a, b)


def instantiate(t):
    return zeros_like_aval(t.aval) if isinstance(t, Zero) else t


# --------------------------------------------------------------------------- derivatives


def defjvp(name: str, *arg_rules: Callable | None) -> None:
    """JVP from one rule per argument: ``rule(t_i, *primals, out=out, **params)`` gives its term.

    ``None`` means the output does not depend on that argument differentiably.
    """

    def jvp(primals, tangents, **params):
        out = bind(name, *primals, **params)
        total = Zero(get_aval(out))
        for r, t in zip(arg_rules, tangents):
            if r is None or isinstance(t, Zero):
                continue
            total = add_tangents(total, r(t, *primals, out=out, **params))
        return out, total

    jvp_rules[name] = jvp


def defjvp_full(name: str, fn: Callable) -> None:
    """A JVP rule written whole: ``fn(primals, tangents, **params) -> (out, tangent_out)``."""
    jvp_rules[name] = fn


def deflinear(name: str, transpose: Callable) -> None:
    """A primitive linear in all its array inputs: its JVP applies it to the tangents."""

    def jvp(primals, tangents, **params):
        out = bind(name, *primals, **params)
        if all(isinstance(t, Zero) for t in tangents):
            return out, Zero(get_aval(out))
        ts = [zeros_like_aval(t.aval) if isinstance(t, Zero) else t for t in tangents]
        return out, bind(name, *ts, **params)

    jvp_rules[name] = jvp
    transpose_rules[name] = transpose
    linear_prims.add(name)


def deftranspose(name: str, transpose: Callable) -> None:
    """Transpose rule for a primitive linear in some arguments (``mul``, ``div``, ``select``)."""
    transpose_rules[name] = transpose
    linear_prims.add(name)


def defnondiff(name: str) -> None:
    """The primitive's output is piecewise constant or discrete: its tangent is zero."""

    def jvp(primals, tangents, **params):
        out = bind(name, *primals, **params)
        return out, Zero(get_aval(out))

    jvp_rules[name] = jvp
    nondiff_prims.add(name)


# --------------------------------------------------------------------------- batching
# A batching rule is ``rule(args, dims, **params) -> (out, out_dim)``: ``dims[i]`` is 0 when
# args[i] carries the batch on its leading axis, None when it is the same for every example.
# Rules are only called with at least one batched argument, and return 0 or None.


def batch_size(args, dims):
    return next(get_aval(x).shape[0] for x, d in zip(args, dims) if d is not None)


def batch_all(args, dims):
    """Every argument with the batch on axis 0: unbatched ones are broadcast along it."""
    size = batch_size(args, dims)
    out = []
    for x, d in zip(args, dims):
        if d is None:
            aval = get_aval(x)
            x = bind("broadcast_in_dim", x, shape=(size, *aval.shape),
                     broadcast_dimensions=tuple(range(1, aval.ndim + 1)))
        out.append(x)
    return out


def defbatch_elementwise(name: str) -> None:
    """Elementwise (same-shape operands): broadcast the unbatched ones, apply as is."""
    batching_rules[name] = lambda args, dims, **params: (
        bind(name, *batch_all(args, dims), **params), 0)


def defbatch_params(name: str, shift: Callable) -> None:
    """One (batched) operand; ``shift(**params)`` gives the params for the leading batch axis."""
    batching_rules[name] = lambda args, dims, **params: (
        bind(name, *args, **shift(**params)), 0)
