"""jacfwd, jacrev and hessian, compiled: against each other, finite differences and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

import adjit
import adjit.numpy as anp


def _fd_jacobian(f, x, eps=1e-6):
    x = np.asarray(x, np.float64)
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = eps
        e = e.reshape(x.shape)
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps))
    out = np.stack(cols, axis=-1)
    return out.reshape(np.shape(f(x)) + x.shape)


def g_wide(x):  # R^3 -> R^2
    return anp.stack([anp.sin(x[0]) * x[1], x[0] ** 2 + anp.exp(x[2]) * x[1]]) * anp.sum(x)


def g_tall(x):  # R^(2, 2) -> R^(3, 2)
    return anp.concatenate([anp.tanh(x) * x[::-1], anp.sum(x * x, axis=0, keepdims=True)])


@pytest.mark.parametrize("g,x", [
    (g_wide, np.array([0.3, 0.5, -0.2])),
    (g_tall, np.array([[0.3, -0.5], [1.2, 0.7]])),
])
def test_nonsquare_jacobians_agree(g, x, interpreted):
    fwd, rev = adjit.jacfwd(g)(x), adjit.jacrev(g)(x)
    fd = _fd_jacobian(adjit.jit(g), x)
    assert fwd.shape == rev.shape == fd.shape
    np.testing.assert_allclose(fwd, rev, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fwd, fd, rtol=1e-6, atol=1e-7)


def test_argnums(interpreted):
    def f(a, x, y):
        return anp.sin(x) * y[:2] + a * anp.sum(y)

    x, y = np.array([0.5, -1.0]), np.array([2.0, 3.0, 0.25])
    jx = adjit.jacfwd(f, argnums=1)(1.5, x, y)
    np.testing.assert_allclose(jx, np.diag(np.cos(x) * y[:2]))
    jx_rev, jy_rev = adjit.jacrev(f, argnums=(1, 2))(1.5, x, y)
    np.testing.assert_allclose(jx_rev, jx)
    np.testing.assert_allclose(jy_rev, _fd_jacobian(lambda v: adjit.jit(f)(1.5, x, v), y),
                               rtol=1e-6)
    ja = adjit.jacfwd(f, argnums=0)(1.5, x, y)  # a scalar input: a Jacobian shaped like f
    np.testing.assert_allclose(ja, np.full(2, np.sum(y)))


def test_hessian_of_the_seed_function():
    f = lambda x: x ** 2 + anp.sin(x)  # noqa: E731
    assert np.isclose(adjit.hessian(f)(1.0), 2.0 - np.sin(1.0))
    x = np.array([0.0, np.pi / 2, np.pi, 2.0])
    h = adjit.hessian(lambda v: anp.sum(f(v)))(x)
    np.testing.assert_allclose(h, np.diag(2.0 - np.sin(x)), atol=1e-12)


def rosenbrock(x):
    return anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _rosenbrock_hessian(x):
    n = x.size
    h = np.zeros((n, n))
    for i in range(n - 1):
        h[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
        h[i + 1, i + 1] += 200
        h[i, i + 1] = h[i + 1, i] = -400 * x[i]
    return h


def test_hessian_of_rosenbrock():
    x = np.array([1.2, -0.5, 0.8, 2.0, 0.1])
    h = adjit.hessian(rosenbrock)(x)
    np.testing.assert_allclose(h, _rosenbrock_hessian(x), rtol=1e-12, atol=1e-9)
    # Another length reuses the kernel (the lengths are symbolic).
    y = np.linspace(-1.0, 1.5, 7)
    np.testing.assert_allclose(adjit.hessian(rosenbrock)(y), _rosenbrock_hessian(y), atol=1e-9)


def test_jacobian_compositions(interpreted):
    xs = np.array([[0.3, 0.5, -0.2], [1.0, -1.0, 0.5]])
    per_example = np.stack([adjit.jacrev(g_wide)(x) for x in xs])
    np.testing.assert_allclose(adjit.vmap(adjit.jacrev(g_wide))(xs), per_example, atol=1e-12)
    y = np.linspace(-1.0, 1.5, 6)
    for hess in (adjit.jacfwd(adjit.jacfwd(rosenbrock)), adjit.jacrev(adjit.jacrev(rosenbrock)),
                 adjit.jacrev(adjit.jacfwd(rosenbrock))):
        np.testing.assert_allclose(hess(y), _rosenbrock_hessian(y), atol=1e-9)


def test_jacobian_errors(interpreted):
    with pytest.raises(adjit.AdjitTypeError, match="floating-point"):
        adjit.jacfwd(lambda n: n * 2)(np.arange(3))
    with pytest.raises(adjit.AdjitValueError, match="argnums"):
        adjit.jacrev(anp.sin, argnums=2)(1.0)
