"""custom_jvp and custom_vjp: the user's rules are what runs, in every mode and under vmap;
forward mode and Hessians through a custom_vjp (bwd transposed); compiled equals interpreted."""

from __future__ import annotations

import math

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.config import config
from adjit.errors import AdjitError, AdjitTypeError
from adjit.ir.rules import call_prims
from adjit.passes import optimize
from adjit.testing import check_grads

# --------------------------------------------------------------------------- the functions


@adjit.custom_jvp
def softplus(x):
    return anp.log1p(anp.exp(x))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    # Stable for large x, where the naive derivative is exp(x)/(1+exp(x)) = inf/inf.
    out = anp.where(x > 30.0, x, anp.log1p(anp.exp(anp.minimum(x, 30.0))))
    return out, x_dot / (1.0 + anp.exp(-x))


def naive_softplus(x):
    return anp.log1p(anp.exp(x))


@adjit.custom_vjp
def sin_x(x):
    return anp.sin(x) * x


def _sin_x_fwd(x):
    return anp.sin(x) * x, (anp.sin(x), anp.cos(x), x)


def _sin_x_bwd(res, ct):
    s, c, x = res
    return (ct * (c * x + s),)


sin_x.defvjp(_sin_x_fwd, _sin_x_bwd)


def sin_x_grad(x):
    return np.cos(x) * x + np.sin(x)


def sin_x_second(x):
    return 2.0 * np.cos(x) - x * np.sin(x)


@adjit.custom_vjp
def scaled(x):
    return x ** 3


# bwd returns twice the true cotangent, so a result of twice the derivative shows bwd ran.
scaled.defvjp(lambda x: (x ** 3, x), lambda x, ct: (2.0 * 3.0 * x ** 2 * ct,))


@adjit.custom_vjp
def weighted(params, x):
    """Several arguments and outputs, as pytrees: a dict in, a tuple out."""
    return params["w"] * x, anp.sum(params["b"] * x)


def _weighted_fwd(params, x):
    return weighted(params, x), (params, x)


def _weighted_bwd(res, ct):
    params, x = res
    ct_y, ct_s = ct
    return ({"w": ct_y * x, "b": ct_s * x}, ct_y * params["w"] + ct_s * params["b"])


weighted.defvjp(_weighted_fwd, _weighted_bwd)


@pytest.fixture(params=[True, False], ids=["compiled", "interpreted"])
def jit_mode(request):
    saved = config.jit
    config.update("jit", request.param)
    yield request.param
    config.update("jit", saved)


XS = np.array([-1.3, 0.2, 0.7, 2.1])

# --------------------------------------------------------------------------- custom_jvp


def test_custom_jvp_is_stable_where_the_naive_gradient_is_nan(jit_mode):
    with np.errstate(over="ignore", invalid="ignore"):
        assert math.isnan(adjit.grad(naive_softplus)(1000.0))
    assert adjit.grad(softplus)(1000.0) == 1.0
    assert adjit.grad(softplus)(0.0) == 0.5
    g = adjit.grad(lambda x: anp.sum(softplus(x)))(XS)
    np.testing.assert_allclose(g, 1 / (1 + np.exp(-XS)))


def test_custom_jvp_forward_mode_uses_the_rule(jit_mode):
    out, t = adjit.jvp(softplus, (1000.0,), (2.0,))
    assert (out, t) == (1000.0, 2.0)
    np.testing.assert_allclose(adjit.jvp(softplus, (XS,), (XS,))[1], XS / (1 + np.exp(-XS)))


def test_custom_jvp_called_directly_runs_the_function():
    np.testing.assert_allclose(softplus(XS), np.log1p(np.exp(XS)))


def test_custom_jvp_second_derivative_differentiates_the_rule(jit_mode):
    sig = 1 / (1 + np.exp(-XS))
    np.testing.assert_allclose(adjit.vmap(adjit.grad(adjit.grad(softplus)))(XS), sig * (1 - sig))


# --------------------------------------------------------------------------- custom_vjp


def test_custom_vjp_reverse_mode_runs_bwd(jit_mode):
    assert adjit.grad(scaled)(2.0) == 24.0          # twice 3 x^2
    np.testing.assert_allclose(adjit.grad(lambda x: anp.sum(scaled(x)))(XS), 6 * XS ** 2)
    _, f_vjp = adjit.vjp(scaled, XS)
    np.testing.assert_allclose(f_vjp(np.ones(4))[0], 6 * XS ** 2)


def test_custom_vjp_forward_mode_transposes_bwd(jit_mode):
    out, t = adjit.jvp(sin_x, (XS,), (np.ones(4),))
    np.testing.assert_allclose(out, np.sin(XS) * XS)
    np.testing.assert_allclose(t, sin_x_grad(XS))
    # Forward mode through the deliberately scaled bwd is scaled too: it is bwd's transpose.
    assert adjit.jvp(scaled, (2.0,), (1.0,))[1] == 24.0


def test_hessian_through_custom_vjp(jit_mode):
    assert np.isclose(adjit.hessian(sin_x)(0.7), sin_x_second(0.7))
    if jit_mode:
        return  # a 2-d kernel compiles for seconds; test_compiled_equals_interpreted has one
    h = adjit.hessian(lambda x: anp.sum(sin_x(x)))(XS)
    np.testing.assert_allclose(h, np.diag(sin_x_second(XS)), atol=1e-12)
    # Forward over forward: the transposed bwd is differentiated again.
    h_ff = adjit.jacfwd(adjit.jacfwd(lambda x: anp.sum(sin_x(x))))(XS)
    np.testing.assert_allclose(h_ff, np.diag(sin_x_second(XS)), atol=1e-12)


def test_custom_vjp_pytrees_and_several_outputs(jit_mode):
    params = {"w": np.array([1.0, 2.0, 3.0]), "b": np.array([0.5, -1.0, 2.0])}
    x = np.array([0.3, -0.4, 1.1])

    def loss(p, x):
        y, s = weighted(p, x)
        return anp.sum(y * y) + s * s

    def plain(p, x):
        y, s = p["w"] * x, anp.sum(p["b"] * x)
        return anp.sum(y * y) + s * s

    g, g_ref = adjit.grad(loss, argnums=(0, 1))(params, x), adjit.grad(plain, argnums=(0, 1))(
        params, x)
    for k in "wb":
        np.testing.assert_allclose(g[0][k], g_ref[0][k])
    np.testing.assert_allclose(g[1], g_ref[1])
    if not jit_mode:  # a 2-d kernel compiles for seconds
        np.testing.assert_allclose(adjit.hessian(loss, argnums=1)(params, x),
                                   adjit.hessian(plain, argnums=1)(params, x))


# --------------------------------------------------------------------------- vmap


def test_vmap_through_both(jit_mode):
    np.testing.assert_allclose(adjit.vmap(softplus)(XS), np.log1p(np.exp(XS)))
    np.testing.assert_allclose(adjit.vmap(adjit.grad(softplus))(XS), 1 / (1 + np.exp(-XS)))
    np.testing.assert_allclose(adjit.vmap(adjit.grad(scaled))(XS), 6 * XS ** 2)
    # Differentiating the vmapped function: the batched rules (vmapped bwd) still run.
    np.testing.assert_allclose(adjit.grad(lambda x: anp.sum(adjit.vmap(scaled)(x)))(XS),
                               6 * XS ** 2)
    np.testing.assert_allclose(adjit.grad(lambda x: anp.sum(adjit.vmap(softplus)(x)))(
        np.array([1000.0, 0.0])), [1.0, 0.5])
    # A shared (unbatched) argument gets the sum of the per-example cotangents.
    params = {"w": np.array([1.0, 2.0]), "b": np.array([0.5, -1.0])}
    xs = np.array([[0.3, -0.4], [1.1, 0.2], [0.0, 0.9]])

    def total(p):
        ys, ss = adjit.vmap(weighted, in_axes=(None, 0))(p, xs)
        return anp.sum(ys) + anp.sum(ss)

    g = adjit.grad(total)(params)
    np.testing.assert_allclose(g["w"], xs.sum(0))
    np.testing.assert_allclose(g["b"], xs.sum(0))


# --------------------------------------------------------------------------- compiled and checks


def test_compiled_equals_interpreted():
    fns = [lambda x: anp.sum(softplus(x) * sin_x(x)),
           adjit.grad(lambda x: anp.sum(softplus(x) * sin_x(x))),
           lambda x: adjit.jvp(sin_x, (x,), (anp.cos(x),))[1],
           adjit.hessian(lambda x: anp.sum(sin_x(x) * scaled(x)))]
    saved = config.jit
    try:
        for f in fns:
            config.update("jit", True)
            compiled = adjit.jit(f)(XS)
            config.update("jit", False)
            interpreted = adjit.jit(f)(XS)
            np.testing.assert_allclose(compiled, interpreted, rtol=1e-12, atol=1e-12)
    finally:
        config.update("jit", saved)


def test_inline_leaves_no_call_primitives():
    graph = adjit.make_graph(lambda x: adjit.jvp(sin_x, (x,), (x,)))(XS)
    assert {e.prim for e in graph.eqns} & call_prims()
    assert not {e.prim for e in optimize(graph).eqns} & call_prims()


def test_check_grads():
    saved = config.jit
    config.update("jit", False)
    try:
        check_grads(lambda x: softplus(x) * anp.sin(x), (XS,), order=2)
        check_grads(lambda x: anp.sum(sin_x(x) * x), (XS,), order=2)
        check_grads(lambda p, x: weighted(p, x)[0] * weighted(p, x)[1],
                    ({"w": XS, "b": XS[::-1].copy()}, XS + 1.0), order=2)
    finally:
        config.update("jit", saved)


# --------------------------------------------------------------------------- limitations


def test_untraceable_function_works_directly_but_not_under_transforms():
    @adjit.custom_vjp
    def host_erf(x):
        return math.erf(x)

    host_erf.defvjp(lambda x: (math.erf(x), x),
                    lambda x, ct: (ct * 2 / math.sqrt(math.pi) * math.exp(-x * x),))
    assert host_erf(0.5) == math.erf(0.5)
    with pytest.raises(AdjitError, match="host callback"):
        adjit.grad(host_erf)(0.5)


def test_closure_over_a_traced_value_is_an_error():
    def f(x):
        @adjit.custom_jvp
        def g(y):
            return y * x

        g.defjvp(lambda p, t: (g(*p), t[0] * x))
        return g(2.0)

    with pytest.raises(AdjitTypeError, match="pass that value as an argument"):
        adjit.grad(f)(1.0)


def test_missing_rule_is_an_error():
    f = adjit.custom_jvp(lambda x: x)
    with pytest.raises(AdjitError, match="defjvp"):
        f(1.0)
