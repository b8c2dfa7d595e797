"""linearize, and Jacobians, Hessians and gradients of functions of pytrees (dicts, tuples):
results nest the output structure over the input structure, as in JAX."""

from __future__ import annotations

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit import tree
from adjit.dispatch import call_cache
from adjit.testing import numerical_grad as _fd

RNG = np.random.default_rng(0)
W, B = RNG.standard_normal((2, 3)), RNG.standard_normal(2)
XS, YS = RNG.standard_normal((5, 3)), RNG.standard_normal((5, 2))


def loss(params, batch):
    x, y = batch
    pred = anp.tanh(x @ params["W"].T + params["b"])
    return anp.mean((pred - y) ** 2)


def _np_loss(w, b):
    return np.mean((np.tanh(XS @ w.T + b) - YS) ** 2)


def test_grad_of_dict_params_compiled():
    grads = adjit.grad(loss)({"W": W, "b": B}, (XS, YS))
    assert isinstance(grads, dict) and sorted(grads) == ["W", "b"]
    np.testing.assert_allclose(grads["W"], _fd(lambda w: _np_loss(w, B), W), rtol=1e-6)
    np.testing.assert_allclose(grads["b"], _fd(lambda b: _np_loss(W, b), B), rtol=1e-6)


def test_linearize(interpreted):
    def f(x, y):
        return anp.sin(x) * y, anp.sum(x ** 3)

    x, y = RNG.standard_normal(3), RNG.standard_normal(3)
    out, f_jvp = adjit.linearize(f, x, y)
    np.testing.assert_allclose(out[0], np.sin(x) * y)
    tangents = [(RNG.standard_normal(3), RNG.standard_normal(3)) for _ in range(3)]
    for tx, ty in tangents:
        expected = adjit.jvp(f, (x, y), (tx, ty))[1]
        for a, b in zip(f_jvp(tx, ty), expected):
            np.testing.assert_allclose(a, b, rtol=1e-12)
    # Linear: f_jvp(2 t1 - t2) = 2 f_jvp(t1) - f_jvp(t2).
    (t1x, t1y), (t2x, t2y) = tangents[:2]
    combined = f_jvp(2 * t1x - t2x, 2 * t1y - t2y)
    for c, a, b in zip(combined, f_jvp(t1x, t1y), f_jvp(t2x, t2y)):
        np.testing.assert_allclose(c, 2 * a - b, rtol=1e-12, atol=1e-12)
    # Traced once: every call above reused one staged signature.
    staged = call_cache[f][("linearize.tangents", "cpu", False)]
    assert sum(len(v) for v in staged._cache.values()) == 1
    with pytest.raises(adjit.AdjitValueError, match="takes 2 tangents"):
        f_jvp(tx)


def test_linearize_pytree_and_inside_jit(interpreted):
    out, f_jvp = adjit.linearize(lambda p: p["a"] ** 2 * p["b"], {"a": 3.0, "b": 2.0})
    assert out == 18.0
    assert f_jvp({"a": 1.0, "b": 0.0}) == 12.0 and f_jvp({"a": 0.0, "b": 1.0}) == 9.0
    _, g_jvp = adjit.linearize(anp.sin, np.array([0.0, 1.0]))
    np.testing.assert_allclose(adjit.jit(lambda t: g_jvp(2 * t))(np.ones(2)),
                               2 * np.cos([0.0, 1.0]))


def _model(p):
    return anp.tanh(p["W"] @ XS[0] + p["b"]), anp.sum(p["W"] ** 2) * p["b"][0]


@pytest.mark.parametrize("jac", [adjit.jacfwd, adjit.jacrev], ids=["jacfwd", "jacrev"])
def test_jacobian_of_dict_nests_output_over_input(jac, interpreted):
    params = {"W": W, "b": B}
    J = jac(_model)(params)
    assert isinstance(J, tuple) and len(J) == 2 and all(isinstance(j, dict) for j in J)
    assert J[0]["W"].shape == (2, 2, 3) and J[0]["b"].shape == (2, 2)
    assert J[1]["W"].shape == (2, 3) and J[1]["b"].shape == (2,)
    for k in range(2):
        def out_k(w, b, k=k):
            return _model({"W": w, "b": b})[0][k]
        np.testing.assert_allclose(J[0]["W"][k], _fd(lambda w: out_k(w, B), W), rtol=1e-6)
        np.testing.assert_allclose(J[0]["b"][k], _fd(lambda b: out_k(W, b), B), rtol=1e-6,
                                   atol=1e-9)
    np.testing.assert_allclose(J[1]["W"], 2 * W * B[0])
    np.testing.assert_allclose(J[1]["b"], [np.sum(W ** 2), 0.0])


def test_jacfwd_and_jacrev_agree_on_tuples(interpreted):
    def f(x, pair):
        a, b = pair
        return {"u": anp.sin(x) * a, "v": anp.sum(b * x[:2])}

    x, pair = RNG.standard_normal(3), (RNG.standard_normal(3), RNG.standard_normal(2))
    for argnums in [0, 1, (0, 1)]:
        fwd = adjit.jacfwd(f, argnums=argnums)(x, pair)
        rev = adjit.jacrev(f, argnums=argnums)(x, pair)
        assert tree.flatten(fwd)[1] == tree.flatten(rev)[1]
        for a, b in zip(tree.leaves(fwd), tree.leaves(rev)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    J = adjit.jacrev(f, argnums=1)(x, pair)
    assert isinstance(J["u"], tuple) and J["u"][1].shape == (3, 2)


def test_hessian_of_dict(interpreted):
    params = {"W": W, "b": B}
    H = adjit.hessian(loss)(params, (XS, YS))
    assert H["W"]["W"].shape == (2, 3, 2, 3) and H["W"]["b"].shape == (2, 3, 2)
    assert H["b"]["W"].shape == (2, 2, 3) and H["b"]["b"].shape == (2, 2)
    # Symmetric across blocks, and each block a derivative of the gradient.
    np.testing.assert_allclose(H["W"]["b"], np.transpose(H["b"]["W"], (1, 2, 0)), atol=1e-12)
    grad = adjit.grad(loss)
    eps = 1e-6
    for j in range(2):
        e = np.eye(2)[j] * eps
        column = (grad({"W": W, "b": B + e}, (XS, YS))["b"]
                  - grad({"W": W, "b": B - e}, (XS, YS))["b"]) / (2 * eps)
        np.testing.assert_allclose(H["b"]["b"][:, j], column, rtol=1e-5, atol=1e-9)
