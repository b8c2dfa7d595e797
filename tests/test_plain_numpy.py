"""Unmodified NumPy code: functions written with ``import numpy as np`` trace through
``__array_ufunc__`` and ``__array_function__``, differentiate and compile; a NumPy function
adjit lacks is an error that names it."""

from __future__ import annotations

import numpy as np
import pytest

import adjit
from adjit.config import config
from adjit.testing import numerical_grad as _fd_grad

RNG = np.random.default_rng(0)
W = RNG.standard_normal((3, 4))
X = RNG.standard_normal(3)


def model(w, x):
    """Plain NumPy: nothing here knows about adjit."""
    h = np.tanh(np.dot(x, w))                          # (4,)
    columns = np.sum(np.sin(w) * np.exp(-w ** 2), axis=0)
    leaky = np.where(h > 0, h, 0.1 * h)
    return (np.mean(h) + np.linalg.norm(x) + np.sum(leaky * columns)
            + (w.T @ x) @ h + np.linalg.norm(w, axis=0) @ h)


def test_plain_numpy_function_compiles_and_differentiates():
    # jit and grad in one function, so one kernel is compiled.
    both = adjit.jit(lambda w, x: (model(w, x), adjit.grad(model, argnums=(0, 1))(w, x)))
    value, (gw, gx) = both(W, X)
    np.testing.assert_allclose(value, model(W, X), rtol=1e-12)
    np.testing.assert_allclose(gw, _fd_grad(lambda w: model(w, X), W), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gx, _fd_grad(lambda x: model(W, x), X), rtol=1e-6, atol=1e-8)


def test_plain_numpy_function_vmaps():
    xs = RNG.standard_normal((5, 3))
    per_example = adjit.vmap(adjit.grad(model), in_axes=(None, 0))(W, xs)
    expected = np.stack([_fd_grad(lambda w: model(w, x), W) for x in xs])
    np.testing.assert_allclose(per_example, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("fun", [
    lambda x: np.sum(np.maximum(x, 0.5) * np.log(np.abs(x) + 1.0)),
    lambda x: np.max(np.concatenate([x, 2 * x])) + np.min(np.stack([x, x ** 2]), axis=0).sum(),
    lambda x: np.sum(np.clip(x, -0.5, 0.5) ** 2) + np.prod(np.cos(x)),
    lambda x: np.sum(np.cumsum(x) * np.sort(x)) + np.take(x, [2, 0]).sum(),
    lambda x: np.einsum("i,j->", x, np.sqrt(x * x + 1.0)) + np.linalg.norm(x, ord=1),
    lambda x: np.sum(np.outer(x, x) @ x) + np.var(x) + np.std(x) + np.reshape(x, (3, 1)).sum(),
    lambda x: np.sum(np.transpose(np.expand_dims(x, 0)) * np.arctan(x)) + np.mean(x ** 3),
])
def test_numpy_functions_differentiate(fun, monkeypatch):
    monkeypatch.setattr(config, "jit", False)  # the rules are the point here, not kernels
    x = np.array([0.3, -1.2, 0.7])
    np.testing.assert_allclose(adjit.jit(fun)(x), fun(x), rtol=1e-12)
    np.testing.assert_allclose(adjit.grad(fun)(x), _fd_grad(fun, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("fun, name", [
    (lambda x: np.sum(np.fft.hfft(x)), "numpy.fft.hfft"),
    (lambda x: np.sum(np.linalg.eig(x)[0]), "numpy.linalg.eig"),
    (lambda x: np.sum(np.linalg.lstsq(x, x)[0]), "numpy.linalg.lstsq"),
    (lambda x: np.sum(np.unique(x)), "numpy.unique"),
    (lambda x: np.sum(np.sin(x, out=x)), r"numpy.sin\(..., out=...\)"),
])
def test_unsupported_numpy_function_is_named(fun, name):
    x = np.eye(3) + 0.5
    for transform in (adjit.grad, adjit.jit, adjit.vmap):
        with pytest.raises(adjit.AdjitError, match=name) as info:
            transform(fun)(x)
        assert "numpy.sin" in name or "not supported" in str(info.value)
