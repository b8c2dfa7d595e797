"""einsum, sort, take, linalg.norm, cumsum and adjit.scipy.special: values against NumPy and
SciPy (derivatives are in test_primitives' case table), errors, and a few compiled runs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as ss

import adjit
import adjit.numpy as anp
import adjit.scipy.special as asp

RNG = np.random.default_rng(0)
A, B, C = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 5)), RNG.standard_normal((3, 3))
D, V = RNG.standard_normal((2, 3, 4)), RNG.standard_normal(4)


EINSUMS = [
    ("ij,jk->ik", (A, B)), ("ij,jk", (A, B)), ("ij,j->i", (A, V)), ("j,ij", (V, A)),
    ("i,i->", (V, V)), ("i,i", (V, V)), ("ij->ji", (A,)), ("ij", (A,)), ("ji", (A,)),
    ("ij->", (A,)), ("ij->j", (A,)), ("ii->i", (C,)), ("ii", (C,)), ("ii->", (C,)),
    ("ij,kj->ik", (A, A)), ("bij,jk->bik", (D, B)), ("bij,bkj->bik", (D, D)),
    ("ij,jk,kl->il", (A, B, B.T)), ("i,j->ij", (V, V)), ("ik,jk->kij", (A, A)),
    ("iij->j", (RNG.standard_normal((3, 3, 2)),)), ("ij, jk -> ik", (A, B)),
    ("ij,ij->i", (A, A)), ("ij,j", (A, np.ones(1))),
]


@pytest.mark.parametrize("spec,ops", EINSUMS, ids=[s for s, _ in EINSUMS])
def test_einsum_matches_numpy(spec, ops, interpreted):
    np.testing.assert_allclose(anp.einsum(spec, *ops), np.einsum(spec, *ops), atol=1e-12)
    traced = adjit.jit(lambda *xs: anp.einsum(spec, *xs))(*ops)
    np.testing.assert_allclose(traced, np.einsum(spec, *ops), atol=1e-12)


@pytest.mark.parametrize("spec,ops,message", [
    ("..i,i", (V, V), "ellipsis"),
    ("...i...,i", (V, V), "ellipsis"),
    ("...ijk", (A,), "rank"),
    ("ij,jk", (A, A), "lengths"),
    ("ij,jk", (A,), "names 2 operands"),
    ("ij->k", (A,), "appear in no operand"),
    ("ij->ii", (C,), "repeat"),
    ("ijk", (A,), "rank"),
    ("ij1", (D,), "invalid subscript"),
])
def test_einsum_errors(spec, ops, message, interpreted):
    with pytest.raises(adjit.AdjitError, match=message):
        anp.einsum(spec, *ops)


def test_einsum_gradient(interpreted):
    def f(a, b):
        return anp.sum(anp.tanh(anp.einsum("ij,jk->ik", a, b)) * anp.einsum("ii", a[:, :3]))

    ga, gb = adjit.grad(f, argnums=(0, 1))(A, B)
    eps = 1e-6
    e = np.zeros_like(A)
    e[1, 2] = eps
    fd = (f(A + e, B) - f(A - e, B)) / (2 * eps)
    np.testing.assert_allclose(ga[1, 2], fd, rtol=1e-6)
    assert gb.shape == B.shape


def _check_sort(shape, axis):
    x = RNG.standard_normal(shape)
    w = RNG.standard_normal(np.sort(x, axis).shape)
    grad = adjit.grad(lambda a: anp.sum(anp.sort(a, axis) * w))
    # One function, so the compiled test builds one kernel.
    values, order, g = adjit.jit(lambda a: (anp.sort(a, axis), anp.argsort(a, axis), grad(a)))(x)
    np.testing.assert_array_equal(values, np.sort(x, axis))
    np.testing.assert_array_equal(order, np.argsort(x, axis, kind="stable"))
    expected = np.zeros(x.size) if axis is None else np.zeros_like(x)
    np.put_along_axis(expected, np.argsort(x, axis), w, 0 if axis is None else axis)
    np.testing.assert_allclose(g, expected.reshape(x.shape))


@pytest.mark.parametrize("shape,axis", [((7,), -1), ((3, 4), 0), ((3, 4), 1), ((3, 4), None)])
def test_sort(shape, axis, interpreted):
    _check_sort(shape, axis)


def test_sort_compiled():
    # The Numba lowering of sort and argsort (ties and NaN too), and the gather of the
    # gradient, along a middle axis (rows that are not contiguous).
    _check_sort((2, 3, 4), 1)
    x = np.array([[2.0, np.nan, 1.0, 2.0, 1.0, -np.inf, np.nan, 0.5, 2.0]])
    values, order = adjit.jit(lambda a: (anp.sort(a, axis=1), anp.argsort(a, axis=1)))(x)
    np.testing.assert_array_equal(values, np.sort(x, axis=1))
    np.testing.assert_array_equal(order, np.argsort(x, axis=1, kind="stable"))


def test_sort_ties_and_errors(interpreted):
    x = np.array([2.0, 1.0, 2.0, 1.0])
    np.testing.assert_array_equal(anp.argsort(x), np.argsort(x, kind="stable"))
    # A tie gives each position the tangent of the rank it was sorted into.
    np.testing.assert_allclose(adjit.grad(lambda a: anp.sort(a)[-1])(x), [0, 0, 1, 0])
    with pytest.raises(adjit.AdjitError, match="zero-dimensional"):
        anp.sort(np.float64(1.0))


def test_take_and_cumsum_values(interpreted):
    x = np.arange(12.0).reshape(3, 4)
    idx = np.array([[0, -1], [2, 1]])
    for axis in [None, 0, 1, -1]:
        np.testing.assert_array_equal(adjit.jit(lambda a: anp.take(a, idx, axis))(x),
                                      np.take(x, idx, axis))
        np.testing.assert_array_equal(adjit.jit(lambda a: anp.cumsum(a, axis))(x),
                                      np.cumsum(x, axis))
    np.testing.assert_array_equal(anp.cumsum(np.array([True, True, False])), [1, 2, 2])


NORMS = [
    (V, {}), (V, {"ord": 1}), (V, {"ord": np.inf}), (V, {"ord": -np.inf}), (V, {"ord": 2}),
    (V, {"ord": 3}), (V, {"ord": 0}), (V, {"axis": 0, "keepdims": True}),
    (A, {}), (A, {"ord": "fro"}), (A, {"ord": 1}), (A, {"ord": -1}), (A, {"ord": np.inf}),
    (A, {"ord": -np.inf}), (A, {"ord": 2, "axis": 1}), (A, {"ord": 1, "axis": 0}),
    (A, {"ord": np.inf, "axis": -1}), (A, {"keepdims": True}), (A, {"ord": 1, "keepdims": True}),
    (A, {"ord": 1, "axis": (1, 0)}), (D, {}), (D, {"axis": (1, 2)}),
    (D, {"ord": np.inf, "axis": (0, 2)}), (D, {"axis": 2, "keepdims": True}),
]


@pytest.mark.parametrize("x,kw", NORMS, ids=[f"{x.ndim}d-{kw}" for x, kw in NORMS])
def test_norm_matches_numpy(x, kw, interpreted):
    np.testing.assert_allclose(adjit.jit(lambda a: anp.linalg.norm(a, **kw))(x),
                               np.linalg.norm(x, **kw))


def test_norm_errors(interpreted):
    with pytest.raises(adjit.AdjitError, match="not a matrix norm"):
        anp.linalg.norm(A, ord=3)
    with pytest.raises(adjit.AdjitError, match="1-d or 2-d"):
        anp.linalg.norm(D, ord=1)


def test_special_functions_match_scipy(interpreted):
    x = np.array([0.3, 1.2, 2.5, 7.0])
    for name in ["expit", "erf", "erfc", "gammaln", "digamma", "psi"]:
        np.testing.assert_allclose(adjit.jit(getattr(asp, name))(x), getattr(ss, name)(x),
                                   rtol=1e-10, atol=1e-15, err_msg=name)
    np.testing.assert_allclose(asp.logit(x / 8), ss.logit(x / 8))
    np.testing.assert_allclose(asp.polygamma(2, x), ss.polygamma(2, x), rtol=1e-10)
    np.testing.assert_allclose(asp.polygamma(0, x), ss.polygamma(0, x), rtol=1e-10)
    np.testing.assert_allclose(asp.expit(np.array([-800.0, 800.0])), [0.0, 1.0])
    m = RNG.standard_normal((3, 4)) * 300
    for kw in [{}, {"axis": 0}, {"axis": 1, "keepdims": True}]:
        np.testing.assert_allclose(asp.logsumexp(m, **kw), ss.logsumexp(m, **kw))
    np.testing.assert_allclose(asp.logsumexp(x, b=x), ss.logsumexp(x, b=x))
    np.testing.assert_allclose(asp.softmax(m, axis=1), ss.softmax(m, axis=1))
    np.testing.assert_allclose(asp.log_softmax(m, axis=0), ss.log_softmax(m, axis=0))
    y = np.array([0.0, 1.0, 0.0])
    np.testing.assert_allclose(asp.xlogy(y, np.array([0.0, 2.0, 3.0])),
                               ss.xlogy(y, np.array([0.0, 2.0, 3.0])))
    # Integers are promoted to float, as SciPy does.
    np.testing.assert_allclose(asp.gammaln(np.array([1, 2, 5])), ss.gammaln([1, 2, 5]))


def test_scipy_ufuncs_trace(interpreted):
    # scipy.special's functions are ufuncs: called on traced arrays they run adjit's.
    x = np.array([0.3, 1.2, 2.5])
    g = adjit.grad(lambda a: np.sum(ss.expit(a) + ss.gammaln(a) + ss.erf(a)))(x)
    s = ss.expit(x)
    expected = s * (1 - s) + ss.digamma(x) + 2 / np.sqrt(np.pi) * np.exp(-x * x)
    np.testing.assert_allclose(g, expected, rtol=1e-10)
    with pytest.raises(adjit.AdjitError, match=r"scipy\.special\.kv is not supported"):
        adjit.grad(lambda a: np.sum(ss.kv(1.0, a)))(x)


def test_hypot_keeps_float32_with_a_python_float():
    # square(1.5) alone is a float64 array: hypot promotes its operands first (found by the
    # program fuzzer).
    x = np.linspace(0.5, 2.0, 4).astype(np.float32)
    got = adjit.jit(lambda x: anp.hypot(x, 1.5))(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.hypot(x, np.float32(1.5)), rtol=1e-6)
