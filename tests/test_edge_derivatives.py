"""Fixes from issue 14: logaddexp's second derivative at x == y, std's derivative where the
variance is 0 (the same in both modes, compiled or not), and float16/longdouble inputs as a
clear AdjitTypeError in every public transform."""

from __future__ import annotations

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.config import config


@pytest.fixture(params=[True, False], ids=["compiled", "interpreted"])
def jit_mode(request, monkeypatch):
    monkeypatch.setattr(config, "jit", request.param)


# --------------------------------------------------------------------------- logaddexp


def _sigmoid(d):
    return 1.0 / (1.0 + np.exp(-d))


@pytest.mark.parametrize("x,y", [(0.0, 0.0), (1.5, 1.5), (0.3, -0.2), (-4.0, 2.0)])
def test_logaddexp_second_derivative(x, y, jit_mode):
    s = _sigmoid(x - y)  # d/dx = s, d2/dx2 = s (1 - s): 0.25 at x == y (JAX agrees)
    f = lambda a: anp.logaddexp(a, y)  # noqa: E731
    assert adjit.grad(f)(x) == pytest.approx(s, rel=1e-12)
    assert adjit.grad(adjit.grad(f))(x) == pytest.approx(s * (1 - s), rel=1e-12)
    assert adjit.jvp(adjit.grad(f), (x,), (1.0,))[1] == pytest.approx(s * (1 - s), rel=1e-12)
    # The mixed derivative d2/dx dy = -s (1 - s).
    mixed = adjit.grad(lambda b: adjit.grad(anp.logaddexp)(x, b))(y)
    assert mixed == pytest.approx(-s * (1 - s), rel=1e-12)


def test_logaddexp_values(jit_mode):
    inf, nan = np.inf, np.nan
    x = np.array([0.0, 1000.0, -inf, inf, inf, -inf, 0.0, -40.0, nan, 3.0, -2.5, -745.0])
    y = np.array([0.0, 1000.0, -inf, 1.0, inf, 2.0, -40.0, 0.0, 1.0, -2.5, 3.0, -746.0])
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    with np.errstate(all="ignore"):  # NaN in, and log1p(-1) = -inf for two -inf
        np.testing.assert_array_equal(adjit.jit(anp.logaddexp)(x, y), np.logaddexp(x, y))
        got32 = adjit.jit(anp.logaddexp)(x32, y32)
        assert got32.dtype == np.float32
        np.testing.assert_allclose(got32, np.logaddexp(x32, y32), rtol=1e-6)


# --------------------------------------------------------------------------- std


@pytest.mark.parametrize("x", [1.0, np.array([2.0]), np.array([0.5, 0.5, 0.5]),
                               np.full((2, 1), 3.0)], ids=["scalar", "one", "equal", "2d"])
def test_std_derivative_where_the_variance_is_zero(x, jit_mode):
    tangent = np.ones_like(x)
    rev = adjit.grad(lambda a: anp.std(a))(x)
    _, fwd = adjit.jvp(anp.std, (x,), (tangent,))
    np.testing.assert_array_equal(rev, np.zeros_like(x))
    assert fwd == 0.0
    if np.ndim(x):
        np.testing.assert_array_equal(adjit.grad(lambda a: anp.sum(anp.std(a, axis=-1)))(x),
                                      np.zeros_like(x))


def test_std_values_and_derivative_elsewhere(jit_mode):
    x = np.array([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]])
    np.testing.assert_allclose(adjit.jit(lambda a: anp.std(a, axis=1, ddof=1))(x),
                               np.std(x, axis=1, ddof=1))
    with np.errstate(invalid="ignore"):
        assert np.isnan(adjit.jit(anp.std)(np.array([np.nan, 1.0])))
    g = adjit.grad(lambda a: anp.std(a[0]))(x)
    centered = x[0] - x[0].mean()
    np.testing.assert_allclose(g[0], centered / (3 * np.std(x[0])))


# --------------------------------------------------------------------------- dtypes

TRANSFORMS = {
    "jit": lambda f, x: adjit.jit(f)(x),
    "grad": lambda f, x: adjit.grad(lambda a: anp.sum(f(a)))(x),
    "value_and_grad": lambda f, x: adjit.value_and_grad(lambda a: anp.sum(f(a)))(x),
    "jvp": lambda f, x: adjit.jvp(f, (x,), (x,)),
    "vjp": lambda f, x: adjit.vjp(f, x),
    "linearize": lambda f, x: adjit.linearize(f, x),
    "vmap": lambda f, x: adjit.vmap(f)(x),
    "jacfwd": lambda f, x: adjit.jacfwd(f)(x),
    "jacrev": lambda f, x: adjit.jacrev(f)(x),
    "hessian": lambda f, x: adjit.hessian(lambda a: anp.sum(f(a)))(x),
    "make_graph": lambda f, x: adjit.make_graph(f)(x),
    "checkpoint": lambda f, x: adjit.checkpoint(f)(x),
    "to_numba": lambda f, x: adjit.to_numba(f, x),
    "numpy": lambda f, x: f(x),
}


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble], ids=["float16", "longdouble"])
@pytest.mark.parametrize("scalar", [False, True], ids=["array", "scalar"])
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_unsupported_float_dtypes_are_named(name, dtype, scalar):
    x = dtype(0.5) if scalar else np.full(3, 0.5, dtype)
    with pytest.raises(adjit.AdjitTypeError, match=np.dtype(dtype).name):
        TRANSFORMS[name](anp.sin, x)


def test_unsupported_float_dtype_inside_a_function():
    with pytest.raises(adjit.AdjitTypeError, match="float16"):
        adjit.jit(lambda a: anp.astype(a, np.float16))(np.ones(2))
