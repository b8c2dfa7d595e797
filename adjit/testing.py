"""Derivative checks for users and for adjit's own tests.

``check_grads`` checks every requested mode against central finite differences, never one mode
against the other (a wrong ``custom_vjp`` also drives adjit's forward mode, so the two would
agree): forward mode directly, ``J v`` against the difference quotient along a random ``v``;
reverse mode through the inner product ``<u, J v> == <J^T u, v>`` with ``J v`` from the same
difference quotient (as JAX's ``check_vjp`` does). With ``order=2`` it does the same for the
derivative functions. Tolerances scale with the least precise dtype of the inputs and outputs.
"""

from __future__ import annotations

import numpy as np

from adjit import tree
from adjit.api import jit, jvp, vjp

# (eps, atol, rtol) per precision. Central differences err by about eps**2 * f''' (truncation)
# plus ulp(f) / eps (rounding); these steps keep both far below the tolerances while a rule
# wrong by 1% (or 0.1% in float64) is far above them.
_TOLERANCES = {
    np.dtype(np.float64): (1e-5, 1e-5, 1e-5),
    np.dtype(np.float32): (1e-3, 5e-3, 5e-3),
}


def _is_inexact(x) -> bool:
    return np.asarray(x).dtype.kind in "fc"


def _random_like(rng, x):
    x = np.asarray(x)
    if x.dtype.kind == "c":
        return (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape)).astype(x.dtype)
    return rng.standard_normal(x.shape).astype(x.dtype) if x.dtype.kind == "f" else np.zeros_like(x)


def _conj(xs):
    return tree.tree_map(lambda x: np.conj(x) if np.asarray(x).dtype.kind == "c" else x, xs)


def _leaves64(xs):
    return [np.asarray(x).astype(np.complex128 if np.asarray(x).dtype.kind == "c"
                                 else np.float64).ravel() for x in tree.leaves(xs)]


def _inner(xs, ys) -> float:
    """Re <x, y>: the real inner product (complex numbers as pairs of reals)."""
    return float(sum(np.real(np.vdot(a, b)) for a, b in zip(_leaves64(xs), _leaves64(ys))))


def _abs_inner(xs, ys) -> float:
    return float(sum(np.abs(a) @ np.abs(b) for a, b in zip(_leaves64(xs), _leaves64(ys))))


def _axpy(alpha, v, x):
    return tree.tree_map(lambda a, b: (np.asarray(b) + alpha * np.asarray(a)).astype(
        np.asarray(b).dtype) if _is_inexact(b) else b, v, x)


def _close(what, actual, expected, atol, rtol):
    actual, expected = np.asarray(actual), np.asarray(expected)
    if not np.allclose(actual, expected, atol=atol, rtol=rtol, equal_nan=True):
        raise AssertionError(f"{what}: {actual} != {expected} (atol={atol}, rtol={rtol})")


def default_tolerances(*trees):
    """(eps, atol, rtol) for the least precise floating dtype among the leaves of ``trees``."""
    bits = [np.finfo(np.asarray(x).dtype).bits for t in trees for x in tree.leaves(t)
            if _is_inexact(x)]
    # complex64 holds float32 parts: finfo(complex64).bits is 32 as well.
    return _TOLERANCES[np.dtype(np.float32 if bits and min(bits) <= 32 else np.float64)]


def numerical_grad(f, x, eps=1e-6):
    """The gradient of a scalar function of one array (or number) by central differences,
    element by element: the reference the tests compare adjit's derivatives with."""
    x = np.asarray(x, float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


def numerical_jvp(f, args, v, eps):
    """``J v`` by the central difference quotient of ``f`` along ``v`` (in float64)."""
    f_jit = jit(f)  # traced, so f may use adjit-only features such as x.at[i]
    plus = f_jit(*_axpy(eps, v, args))
    minus = f_jit(*_axpy(-eps, v, args))
    return tree.tree_map(lambda p, m: _difference(p, m, eps), plus, minus)


def _difference(plus, minus, eps):
    wide = np.complex128 if np.asarray(plus).dtype.kind == "c" else np.float64
    return (np.asarray(plus, wide) - np.asarray(minus, wide)) / (2 * eps)


def _tolerances(args, out, eps, atol, rtol):
    d_eps, d_atol, d_rtol = default_tolerances(args, out)
    return (d_eps if eps is None else eps, d_atol if atol is None else atol,
            d_rtol if rtol is None else rtol)


def check_jvp(f, args, *, eps=None, atol=None, rtol=None, seed=0):
    """Forward mode against central finite differences along a random direction."""
    args = tuple(args)
    rng = np.random.default_rng(seed)
    v = tree.tree_map(lambda x: _random_like(rng, x), args)
    out, t_out = jvp(f, args, tuple(v))
    eps, atol, rtol = _tolerances(args, out, eps, atol, rtol)
    fd = numerical_jvp(f, args, v, eps)
    for a, b in zip(tree.leaves(t_out), tree.leaves(fd)):
        _close("jvp vs finite differences", a, b, atol, rtol)


def check_vjp(f, args, *, eps=None, atol=None, rtol=None, seed=0):
    """Reverse mode against finite differences: <u, J v> == <J^T u, v> with ``J v`` from the
    difference quotient. Each term of <u, J v> may carry the error check_jvp allows, so the
    inner products may differ by atol * sum|u| + rtol * sum|u| |J v|."""
    args = tuple(args)
    rng = np.random.default_rng(seed + 1)
    v = tree.tree_map(lambda x: _random_like(rng, x), args)
    out, f_vjp = vjp(f, *args)
    eps, atol, rtol = _tolerances(args, out, eps, atol, rtol)
    u = tree.tree_map(lambda y: _random_like(rng, y), out)
    # adjit's reverse mode transposes without conjugating (JAX's convention), so for complex
    # values the adjoint of J is conj(vjp(conj(u))).
    ct = _conj(f_vjp(_conj(u)))
    fd = numerical_jvp(f, args, v, eps)
    expected, got = _inner(u, fd), _inner(ct, v)
    u_abs = sum(float(np.abs(x).sum()) for x in _leaves64(u))
    tol = atol * u_abs + rtol * _abs_inner(u, fd)
    if not abs(got - expected) <= tol:
        raise AssertionError(f"vjp vs finite differences (inner products): {got} != {expected}"
                             f" (allowed difference {tol:.3g}; atol={atol}, rtol={rtol})")


def check_grads(f, args, order=2, modes=("fwd", "rev"), *, eps=None, atol=None, rtol=None,
                seed=0):
    """Check the derivatives of ``f`` at ``args`` up to ``order``, each mode in ``modes``
    against finite differences. ``eps``, ``atol`` and ``rtol`` default to values for the
    least precise floating dtype of the inputs and outputs (float64, or float32 and lower)."""
    args = tuple(args)
    if "fwd" in modes:
        check_jvp(f, args, eps=eps, atol=atol, rtol=rtol, seed=seed)
    if "rev" in modes:
        check_vjp(f, args, eps=eps, atol=atol, rtol=rtol, seed=seed)
    if order <= 1:
        return
    rng = np.random.default_rng(seed + 2)
    v = tree.tree_map(lambda x: _random_like(rng, x), args)
    if "fwd" in modes:
        def f_jvp(*xs):
            return jvp(f, xs, v)[1]

        check_grads(f_jvp, args, order - 1, modes, eps=eps, atol=atol, rtol=rtol,
                    seed=seed + 3)
    if "rev" in modes:
        out = jit(f)(*args)
        u = _conj(tree.tree_map(lambda y: _random_like(rng, y), out))

        def f_vjp(*xs):
            return vjp(f, *xs)[1](u)

        check_grads(f_vjp, args, order - 1, modes, eps=eps, atol=atol, rtol=rtol,
                    seed=seed + 4)


def check_modes_agree(f, args, order=2, *, atol=None, rtol=None, seed=0):
    """Reverse mode against forward mode, ``<u, J v> == <J^T u, v>``, up to ``order``, with no
    finite differences: it holds at a kink (where differences straddle two pieces) and in
    float32 (where they are too coarse to judge). It cannot catch a rule whose two modes are
    wrong alike, which ``check_grads`` does."""
    args = tuple(args)
    rng = np.random.default_rng(seed + 5)
    v = tree.tree_map(lambda x: _random_like(rng, x), args)
    out, t_out = jvp(f, args, tuple(v))
    _, atol, rtol = _tolerances(args, out, None, atol, rtol)
    u = tree.tree_map(lambda y: _random_like(rng, y), out)
    ct = _conj(vjp(f, *args)[1](_conj(u)))
    expected, got = _inner(u, t_out), _inner(ct, v)
    scale = max(1.0, abs(expected), abs(got))
    _close("vjp vs jvp (inner products)", got / scale, expected / scale, atol, rtol)
    if order <= 1:
        return

    def f_jvp(*xs):
        return jvp(f, xs, v)[1]

    def f_vjp(*xs):
        return vjp(f, *xs)[1](_conj(u))

    for k, g in enumerate((f_jvp, f_vjp)):
        check_modes_agree(g, args, order - 1, atol=atol, rtol=rtol, seed=seed + 6 + k)
