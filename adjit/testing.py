"""Derivative checks for users and for adjit's own tests.

``check_grads`` compares forward mode against central finite differences along a random
direction, and reverse mode against forward mode through the inner-product identity
``<u, J v> == <J^T u, v>``; with ``order=2`` it does the same for the derivative functions.
"""

from __future__ import annotations

import numpy as np

from adjit import tree
from adjit.api import jit, jvp, vjp


def _random_like(rng, x):
    x = np.asarray(x)
    return rng.standard_normal(x.shape).astype(x.dtype) if x.dtype.kind == "f" else np.zeros_like(x)


def _inner(xs, ys) -> float:
    return float(sum(np.vdot(np.asarray(a, np.float64), np.asarray(b, np.float64))
                     for a, b in zip(tree.leaves(xs), tree.leaves(ys))))


def _axpy(alpha, v, x):
    return tree.tree_map(lambda a, b: (np.asarray(b) + alpha * np.asarray(a)).astype(
        np.asarray(b).dtype) if np.asarray(b).dtype.kind == "f" else b, v, x)


def _close(what, actual, expected, atol, rtol):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if not np.allclose(actual, expected, atol=atol, rtol=rtol, equal_nan=True):
        raise AssertionError(f"{what}: {actual} != {expected} (atol={atol}, rtol={rtol})")


def _default_tols(args):
    dtypes = {np.asarray(x).dtype for x in tree.leaves(args)}
    if np.dtype(np.float32) in dtypes:
        return 1e-2, 2e-2, 1e-2
    return 1e-4, 1e-3, 1e-3  # eps, atol, rtol


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


def check_jvp(f, args, *, eps=None, atol=None, rtol=None, seed=0):
    """Forward mode against central finite differences along a random direction."""
    d_eps, d_atol, d_rtol = _default_tols(args)
    eps, atol, rtol = eps or d_eps, atol or d_atol, rtol or d_rtol
    rng = np.random.default_rng(seed)
    v = tree.tree_map(lambda x: _random_like(rng, x), args)
    _, t_out = jvp(f, tuple(args), tuple(v))
    f_jit = jit(f)  # traced, so f may use adjit-only features such as x.at[i]
    plus = f_jit(*_axpy(eps, v, args))
    minus = f_jit(*_axpy(-eps, v, args))
    fd = tree.tree_map(lambda p, m: (np.asarray(p, np.float64) - np.asarray(m, np.float64))
                       / (2 * eps), plus, minus)
    for a, b in zip(tree.leaves(t_out), tree.leaves(fd)):
        _close("jvp vs finite differences", a, b, atol, rtol)


def check_vjp(f, args, *, atol=None, rtol=None, seed=0):
    """Reverse mode against forward mode: <u, J v> == <J^T u, v>."""
    _, d_atol, d_rtol = _default_tols(args)
    atol, rtol = atol or d_atol, rtol or d_rtol
    rng = np.random.default_rng(seed + 1)
    v = tree.tree_map(lambda x: _random_like(rng, x), args)
    out, t_out = jvp(f, tuple(args), tuple(v))
    u = tree.tree_map(lambda y: _random_like(rng, y), out)
    _, f_vjp = vjp(f, *args)
    ct = f_vjp(u)
    lhs = _inner(u, t_out)
    rhs = _inner(ct, v)
    scale = max(1.0, abs(lhs), abs(rhs))
    _close("vjp vs jvp (inner products)", rhs / scale, lhs / scale, atol, rtol)


def check_grads(f, args, order=2, modes=("fwd", "rev"), *, eps=None, atol=None, rtol=None,
                seed=0):
    """Check the derivatives of ``f`` at ``args`` up to ``order``, in the given modes."""
    args = tuple(args)
    if "fwd" in modes:
        check_jvp(f, args, eps=eps, atol=atol, rtol=rtol, seed=seed)
    if "rev" in modes:
        check_vjp(f, args, atol=atol, rtol=rtol, seed=seed)
    if order <= 1:
        return
    rng = np.random.default_rng(seed + 2)
    v = tree.tree_map(lambda x: _random_like(rng, x), args)
    if "fwd" in modes:
        def f_jvp(*xs):
            return jvp(f, xs, v)[1]

        check_grads(f_jvp, args, order - 1, modes, eps=eps, atol=atol, rtol=rtol, seed=seed + 3)
    if "rev" in modes:
        out = jit(f)(*args)
        u = tree.tree_map(lambda y: _random_like(rng, y), out)

        def f_vjp(*xs):
            return vjp(f, *xs)[1](u)

        check_grads(f_vjp, args, order - 1, modes, eps=eps, atol=atol, rtol=rtol, seed=seed + 4)
