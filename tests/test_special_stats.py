"""adjit.scipy.special and adjit.scipy.stats against SciPy: values (eager and compiled, tails
included), derivatives to second order in both modes, the errors for derivatives that do not
exist, kernels calling SciPy's compiled code through the disk cache, and a JAX cross-check."""

from __future__ import annotations

import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.special as ss
import scipy.stats as sst

import adjit
import adjit.numpy as anp
import adjit.scipy.special as asp
import adjit.scipy.stats as ast
from adjit.config import config
from adjit.errors import AdjitValueError, MissingRuleError
from adjit.testing import check_grads

ROOT = pathlib.Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- values

_X = np.array([-30.0, -8.0, -2.5, -0.3, 0.0, 0.4, 1.7, 6.0, 25.0])
_POS = np.array([1e-3, 0.2, 0.9, 1.5, 4.0, 17.0, 120.0])
_PROB = np.array([1e-300, 1e-20, 1e-4, 0.1, 0.5, 0.77, 1 - 1e-9])

# name -> (input, rtol): the whole real line where the function is defined there.
UNARY = {
    "gamma": (np.array([-2.5, -0.5, 0.1, 1.5, 7.0, 30.0, 170.5]), 1e-13),
    "erfc": (_X, 1e-13), "erfcx": (_X, 1e-13), "erfinv": (2 * _PROB[1:] - 1, 1e-13),
    "erfcinv": (2 * _PROB, 1e-13), "ndtr": (_X, 1e-13), "ndtri": (_PROB, 1e-13),
    "log_ndtr": (np.array([-1e4, -40.0, -8.0, -1.0, 0.0, 3.0, 10.0, 40.0]), 1e-13),
    "i0": (_X, 1e-13), "i1": (_X, 1e-13), "i0e": (_X, 1e-13), "i1e": (_X, 1e-13),
    "j0": (_X, 1e-12), "j1": (_X, 1e-12), "y0": (_POS, 1e-12), "y1": (_POS, 1e-12),
    "logit": (_PROB[2:], 1e-13), "expit": (_X, 1e-13),
}
_A, _B = np.array([0.3, 1.0, 2.5, 40.0]), np.array([0.7, 3.0, 1.0, 25.0])
_U = np.array([0.01, 0.5, 0.9, 0.999])
MULTI = {
    "gammainc": ((_A, np.array([0.05, 1.0, 7.0, 60.0])), 1e-13),
    "gammaincc": ((_A, np.array([0.05, 1.0, 7.0, 60.0])), 1e-12),
    "betainc": ((_A, _B, _U), 1e-12),
    "gammaincinv": ((_A, _U), 1e-12), "betaincinv": ((_A, _B, _U), 1e-12),
    "beta": ((_A, _B), 1e-12), "betaln": ((_A, _B), 1e-13),
    "xlogy": ((np.array([0.0, 0.0, 2.0, -1.5]), np.array([0.0, 3.0, 0.5, 1e-300])), 1e-14),
    "xlog1py": ((np.array([0.0, 0.0, 2.0, -1.5]), np.array([-1.0, 3.0, -0.5, 1e-12])), 1e-14),
}


def _everything(unary, multi):
    out = {name: getattr(asp, name)(x) for name, x in unary.items()}
    out.update({name: getattr(asp, name)(*args) for name, args in multi.items()})
    out["multigammaln"] = asp.multigammaln(unary["gamma"][-3:], 4)
    return out


def test_values_match_scipy_eager_and_compiled():
    unary = {name: x for name, (x, _) in UNARY.items()}
    multi = {name: args for name, (args, _) in MULTI.items()}
    rtols = {name: rtol for name, (_, rtol) in {**UNARY, **MULTI}.items()}
    want = {name: getattr(ss, name)(x) for name, x in unary.items()}
    want.update({name: getattr(ss, name)(*args) for name, args in multi.items()})
    want["multigammaln"] = ss.multigammaln(unary["gamma"][-3:], 4)
    with np.errstate(all="ignore"):  # eager: NumPy's warnings for log(0) and the like
        eager = _everything(unary, multi)
    compiled = adjit.jit(_everything)(unary, multi)  # one kernel for all of them
    for name, expected in want.items():
        for how, got in [("eager", eager[name]), ("compiled", compiled[name])]:
            np.testing.assert_allclose(got, expected, rtol=rtols.get(name, 1e-13), atol=0,
                                       err_msg=f"{name} ({how})")


def test_float32_stays_float32():
    x = np.array([0.2, 0.5, 0.9], np.float32)
    f = adjit.jit(lambda x: (asp.gammainc(np.float32(2.0), x), asp.erfinv(x), asp.i1e(x)))
    for got, want in zip(f(x), (ss.gammainc(2.0, x), ss.erfinv(x), ss.i1e(x))):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6)


_STATS_X = np.array([-4.0, -0.5, 0.0, 0.3, 0.9, 2.0, 9.0])
_K = np.array([-1.0, 0.0, 1.0, 2.0, 2.5, 7.0])
STATS = [  # (distribution, functions, x, shape parameters)
    ("norm", "logpdf pdf cdf logcdf sf logsf", _STATS_X, (0.5, 2.0)),
    ("t", "logpdf pdf cdf logcdf sf logsf", _STATS_X, (3.5, 0.5, 2.0)),
    ("gamma", "logpdf pdf cdf logcdf sf logsf", _STATS_X, (2.5, -1.0, 2.0)),
    ("beta", "logpdf pdf cdf logcdf sf logsf", _STATS_X, (2.5, 1.5, -3.5, 10.0)),
    ("poisson", "logpmf pmf cdf logcdf sf logsf", _K, (2.3, 1)),
    ("bernoulli", "logpmf pmf cdf logcdf sf logsf", _K, (0.3, 1)),
]


@pytest.mark.parametrize("dist, fns, x, params", STATS, ids=[s[0] for s in STATS])
def test_stats_match_scipy(dist, fns, x, params):
    for fn in fns.split():
        with np.errstate(all="ignore"):
            got = getattr(getattr(ast, dist), fn)(x, *params)
        np.testing.assert_allclose(got, getattr(getattr(sst, dist), fn)(x, *params),
                                   rtol=1e-12, atol=1e-300, err_msg=f"{dist}.{fn}")


def test_stats_broadcast_and_tails():
    loc, scale = np.array([[0.0], [1.0]]), np.array([1.0, 2.0, 0.5])
    np.testing.assert_allclose(ast.norm.logpdf(_STATS_X[:3, None, None], loc, scale),
                               sst.norm.logpdf(_STATS_X[:3, None, None], loc, scale))
    x = np.array([-1e3, -60.0, 60.0])
    np.testing.assert_allclose(ast.norm.logcdf(x), sst.norm.logcdf(x), rtol=1e-13)
    np.testing.assert_allclose(ast.norm.logsf(x), sst.norm.logsf(x), rtol=1e-13)
    q = np.array([1e-300, 1e-10, 0.3, 0.99])
    np.testing.assert_allclose(ast.norm.ppf(q, 1.0, 2.0), sst.norm.ppf(q, 1.0, 2.0), rtol=1e-13)
    np.testing.assert_allclose(ast.norm.isf(q, 1.0, 2.0), sst.norm.isf(q, 1.0, 2.0), rtol=1e-13)
    np.testing.assert_allclose(ast.gamma.ppf(q, 2.5, 1.0, 2.0), sst.gamma.ppf(q, 2.5, 1.0, 2.0),
                               rtol=1e-12)
    np.testing.assert_allclose(ast.beta.ppf(q, 2.5, 0.5, 1.0, 2.0),
                               sst.beta.ppf(q, 2.5, 0.5, 1.0, 2.0), rtol=1e-12)
    a = np.array([1.5, 2.0, 3.0])
    xs = np.array([[0.2, 0.3], [0.3, 0.3], [0.5, 0.4]])
    np.testing.assert_allclose(ast.dirichlet.logpdf(xs, a), sst.dirichlet.logpdf(xs, a))
    np.testing.assert_allclose(ast.dirichlet.pdf(xs[:2], a), sst.dirichlet.pdf(xs[:2], a))
    np.testing.assert_allclose(ast.dirichlet.logpdf(xs[:, 0], a), sst.dirichlet.logpdf(xs[:, 0], a))


# --------------------------------------------------------------------------- derivatives


_x = np.array([-1.3, -0.2, 0.6, 2.1])
_p = np.array([0.05, 0.3, 0.6, 0.97])
_pos = np.array([0.4, 1.1, 2.5, 6.0])
GRADS = {  # name -> (function, arguments in its domain)
    "gamma": (asp.gamma, (np.array([-1.5, 0.7, 2.2, 5.0]),)),
    "beta": (asp.beta, (_pos, _pos[::-1])),
    "betaln": (asp.betaln, (_pos, _pos[::-1])),
    "multigammaln": (lambda a: asp.multigammaln(a, 3), (_pos + 1.5,)),
    "erfc": (asp.erfc, (_x,)), "erfcx": (asp.erfcx, (_x,)),
    "erfinv": (asp.erfinv, (2 * _p - 1,)), "erfcinv": (asp.erfcinv, (2 * _p,)),
    "ndtr": (asp.ndtr, (_x,)), "ndtri": (asp.ndtri, (_p,)),
    "log_ndtr": (asp.log_ndtr, (np.array([-45.0, -6.0, -0.5, 0.0, 0.7, 9.0]),)),
    "i0": (asp.i0, (_x,)), "i1": (asp.i1, (_x,)), "i0e": (asp.i0e, (_x,)),
    "i1e": (asp.i1e, (_x,)), "j0": (asp.j0, (_x,)), "j1": (asp.j1, (_x,)),
    "y0": (asp.y0, (_pos,)), "y1": (asp.y1, (_pos,)),
    "logit": (asp.logit, (_p,)),
    "xlogy": (asp.xlogy, (np.array([0.0, 1.5, -2.0, 0.0]), _pos)),
    "xlog1py": (asp.xlog1py, (np.array([0.0, 1.5, -2.0, 0.0]), _p - 0.5)),
    "gammainc": (lambda x: asp.gammainc(_pos, x), (_pos[::-1],)),
    "gammaincc": (lambda x: asp.gammaincc(_pos, x), (_pos[::-1],)),
    # In a: first order (below), and the derivative in a differentiated in x to second order.
    "gammainc_da": (lambda x: adjit.jvp(lambda a: asp.gammainc(a, x), (_pos,),
                                        (np.ones(4),))[1], (_pos[::-1],)),
    "betainc": (lambda x: asp.betainc(_pos, _pos[::-1], x), (_p,)),
    "gammaincinv": (lambda y: asp.gammaincinv(_pos, y), (_p,)),
    "betaincinv": (lambda y: asp.betaincinv(_pos, _pos[::-1], y), (_p,)),
    "norm": (lambda x, m, s: ast.norm.logpdf(x, m, s) + ast.norm.logcdf(x, m, s)
             + ast.norm.logsf(x, m, s) + ast.norm.ppf(_p, m, s), (_x, 0.3, 1.7)),
    "t": (lambda x, df, s: ast.t.logpdf(x, df, 0.2, s) + ast.t.cdf(x, 4.5, 0.2, s)
          + ast.t.logsf(x, 4.5, 0.0, s), (np.array([-1.3, 0.0, 0.6, 2.1]), 3.5, 1.2)),
    "gamma_dist": (lambda x, a, s: ast.gamma.logpdf(x, a, 0.1, s) + ast.gamma.cdf(x, 2.0, 0, s)
                   + ast.gamma.logsf(x, 2.0, 0.0, s) + ast.gamma.ppf(_p, 2.0, 0.0, s),
                   (_pos, 2.5, 1.3)),
    "beta_dist": (lambda x, a, b: ast.beta.logpdf(x, a, b) + ast.beta.cdf(x, 2.0, 3.0)
                  + ast.beta.logsf(x, 2.0, 3.0) + ast.beta.ppf(x, 2.0, 3.0), (_p, 2.5, 1.5)),
    "poisson": (lambda mu: ast.poisson.logpmf(np.array([0.0, 1.0, 4.0]), mu)
                + ast.poisson.logcdf(np.array([0.0, 1.0, 4.0]), mu)
                + ast.poisson.sf(np.array([0.0, 2.0, 4.0]), mu), (np.array([0.5, 2.0, 3.3]),)),
    "bernoulli": (lambda p: ast.bernoulli.logpmf(np.array([0.0, 1.0, 1.0]), p)
                  + ast.bernoulli.cdf(0.0, p), (np.array([0.2, 0.5, 0.9]),)),
    "dirichlet": (lambda x, a: ast.dirichlet.logpdf(x, a),
                  (np.array([[0.2, 0.3], [0.3, 0.3], [0.5, 0.4]]), np.array([1.5, 2.0, 3.0]))),
}


@pytest.mark.parametrize("name", list(GRADS))
def test_grads(interpreted, name):
    fn, args = GRADS[name]
    check_grads(fn, args, order=2, modes=("fwd", "rev"))


FIRST_ORDER = {  # derivatives in the shape parameter of the incomplete gamma function
    "gammainc": (asp.gammainc, (np.array([0.05, 0.9, 3.0, 40.0]), np.array([0.5, 2.0, 1.0, 45.0]))),
    "gammaincc": (asp.gammaincc, (np.array([0.5, 2.0, 3.0]), np.array([1e-3, 4.0, 1.0]))),
    "gammaincinv": (asp.gammaincinv, (np.array([0.5, 2.0, 3.0]), _p[:3])),
    "gamma_dist": (lambda q, a: ast.gamma.ppf(q, a) + ast.gamma.logcdf(q, a)
                   + ast.gamma.sf(q, a), (_p[:3], np.array([0.5, 2.0, 3.0]))),
}


@pytest.mark.parametrize("name", list(FIRST_ORDER))
def test_first_order_grads(interpreted, name):
    fn, args = FIRST_ORDER[name]
    # x = 1e-3 in gammaincc's case: a step of 1e-5 is 1% of it, where the function curves
    # sharply (x^(a-1)): the difference quotient errs by 2e-5 there, a step of 1e-7 by 1e-9.
    check_grads(fn, args, order=1, modes=("fwd", "rev"), eps=1e-7 if name == "gammaincc" else None)


def test_gammainc_derivative_in_a_against_finite_differences():
    """The series and the continued fraction, differentiated term by term, on both sides of
    their switch (x = a, x = 1) and far out, against central differences of SciPy's functions
    (accurate to ~1e-9 here; against mpmath the rule was within 4e-11 over a in [0.01, 1000],
    x in [1e-8, 1100])."""
    a = np.array([0.01, 0.5, 0.5, 2.5, 2.5, 30.0, 30.0, 150.0, 1000.0, 1000.0])
    x = np.array([1e-8, 0.99, 1.01, 2.4, 2.6, 29.0, 31.0, 200.0, 990.0, 1010.0])
    h = 1e-6
    # Differences of the smaller of P and Q = 1 - P: the other's lose digits near 1.
    fd = np.where(x > a, -(ss.gammaincc(a + h, x) - ss.gammaincc(a - h, x)),
                  ss.gammainc(a + h, x) - ss.gammainc(a - h, x)) / (2 * h)
    for grad in (adjit.vmap(adjit.grad(asp.gammainc)),
                 adjit.jit(adjit.vmap(adjit.grad(asp.gammainc)))):
        np.testing.assert_allclose(grad(a, x), fd, rtol=1e-7, atol=1e-12)


def test_closed_form_derivatives(interpreted):
    """Against the textbook formulas (check_grads only compares modes with finite
    differences): I0' = I1, erfinv' = sqrt(pi)/2 exp(erfinv^2), d/dx P(a, x) = the gamma
    density, d/dx xlogy(x, y) = log(y) also at x == 0."""
    d = adjit.vmap(adjit.grad(asp.i0))(_x)
    np.testing.assert_allclose(d, ss.i1(_x), rtol=1e-13)
    d = adjit.vmap(adjit.grad(asp.i1))(np.array([0.0, 0.5, -3.0]))
    np.testing.assert_allclose(d, [0.5, *(ss.i0([0.5, -3.0]) - ss.i1([0.5, -3.0]) /
                                          np.array([0.5, -3.0]))], rtol=1e-13)
    y = 2 * _p - 1
    np.testing.assert_allclose(adjit.vmap(adjit.grad(asp.erfinv))(y),
                               math.sqrt(math.pi) / 2 * np.exp(ss.erfinv(y) ** 2), rtol=1e-13)
    np.testing.assert_allclose(adjit.vmap(adjit.grad(lambda x: asp.gammainc(2.5, x)))(_pos),
                               sst.gamma.pdf(_pos, 2.5), rtol=1e-13)
    np.testing.assert_allclose(adjit.vmap(adjit.grad(lambda x: asp.betainc(2.5, 1.5, x)))(_p),
                               sst.beta.pdf(_p, 2.5, 1.5), rtol=1e-12)
    assert adjit.grad(lambda x: asp.xlogy(x, 3.0))(0.0) == pytest.approx(math.log(3.0))
    assert adjit.grad(lambda y: asp.xlogy(0.0, y))(3.0) == 0.0
    # t's CDF at its centre: the density, not the nan of the incomplete beta's endpoint.
    assert adjit.grad(lambda x: ast.t.cdf(x, 3.0))(0.0) == pytest.approx(sst.t.pdf(0.0, 3.0))
    # log_ndtr far in the lower tail: -x asymptotically, no overflow.
    np.testing.assert_allclose(adjit.grad(asp.log_ndtr)(-1e3), 1e3, rtol=1e-5)


def test_compiled_derivatives_match_interpreted():
    def loss(x, p):
        return anp.sum(asp.log_ndtr(x) * asp.i1e(x) + asp.j1(x) + asp.gammaincc(2.5, p * 3)
                       + asp.betainc(1.5, 2.0, p) * asp.erfinv(p) + asp.ndtri(p)
                       + ast.t.logcdf(x, 2.5) + asp.xlogy(x, p))

    args = (_x, _p)
    compiled = adjit.jit(adjit.value_and_grad(loss, argnums=(0, 1)))(*args)
    config_jit, config.jit = config.jit, False
    try:
        interpreted = adjit.value_and_grad(loss, argnums=(0, 1))(*args)
    finally:
        config.jit = config_jit
    for got, want in zip(adjit.tree.leaves(compiled), adjit.tree.leaves(interpreted)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("fn, function, argument", [
    (adjit.grad(lambda a: asp.gammainc(a, 2.0)), "gammainc", "a"),
    (adjit.grad(lambda a: asp.gammaincc(a, 2.0)), "gammainc", "a"),
    (lambda b: asp.betainc(2.0, b, 0.3), "betainc", "b"),
    (lambda a: asp.betaincinv(a, 2.0, 0.3), "betaincinv", "a"),
    (lambda df: ast.t.cdf(0.5, df), "betainc", "[ab]"),
])
def test_no_derivative_in_a_shape_parameter_is_an_error(interpreted, fn, function, argument):
    """No closed form: the beta function's shape parameters, and the second derivative of the
    incomplete gamma function in a (first order exists, here differentiated again)."""
    for transform in (adjit.grad, lambda f: lambda x: adjit.jvp(f, (x,), (1.0,))):
        with pytest.raises(MissingRuleError, match=rf"{function} .*argument '{argument}'"):
            transform(fn)(1.5)


def test_scipy_ufuncs_on_traced_arrays():
    # scipy.special's functions are ufuncs: they reach adjit.scipy.special.
    x = np.array([0.5, 2.5])
    np.testing.assert_allclose(adjit.jit(lambda x: ss.gamma(x) + ss.i0e(x))(x),
                               ss.gamma(x) + ss.i0e(x))


def test_bad_arguments():
    with pytest.raises(AdjitValueError, match="multigammaln needs an integer d >= 1"):
        asp.multigammaln(3.0, 0)
    with pytest.raises(AdjitValueError, match="x must have 3 or 2 components"):
        ast.dirichlet.logpdf(np.ones((4, 2)) / 4, np.ones(3))
    with pytest.raises(AdjitValueError, match="alpha must be 1-D"):
        ast.dirichlet.logpdf(np.ones(3) / 3, np.ones((3, 1)))


# --------------------------------------------------------------------------- disk cache

_CACHED = r"""
import numpy as np, scipy.special as ss, adjit, adjit.scipy.special as asp
from adjit.backend.numba_cpu import cache
x = np.array([0.2, 0.7])
f = adjit.jit(lambda x: asp.betainc(2.0, 3.0, x) + asp.i0e(x) + asp.gammaincc(1.5, x))
assert np.allclose(f(x), ss.betainc(2.0, 3.0, x) + ss.i0e(x) + ss.gammaincc(1.5, x)), f(x)
g = adjit.jit(adjit.vmap(adjit.grad(asp.gammainc)))  # gammainc_da's compiled helper
h = 1e-6
assert np.allclose(g(x, x), (ss.gammainc(x + h, x) - ss.gammainc(x - h, x)) / (2 * h))
info = cache.cache_info()
print(info["compiles"], info["disk_hits"])
"""


@pytest.mark.slow
def test_scipy_calls_survive_the_disk_cache(tmp_path):
    """A kernel calling SciPy's compiled code, loaded from the disk cache by a new process
    (where SciPy's library may sit at another address), gives the right values."""
    env = {**os.environ, "ADJIT_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    runs = [subprocess.run([sys.executable, "-W", "error", "-c", _CACHED], capture_output=True,
                           text=True, env=env, timeout=300) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    assert [r.stdout.split() for r in runs] == [["2", "0"], ["0", "2"]]


# --------------------------------------------------------------------------- JAX


@pytest.mark.slow  # importing JAX and compiling its gradients: ~10 s
def test_gradients_match_jax(interpreted):
    jax = pytest.importorskip("jax")
    jsp = pytest.importorskip("jax.scipy.special")
    jst = pytest.importorskip("jax.scipy.stats")
    checks = [  # (adjit function, JAX function, point)
        (asp.log_ndtr, jsp.log_ndtr, (-30.0,)),
        (asp.log_ndtr, jsp.log_ndtr, (4.0,)),
        (asp.erfinv, jsp.erfinv, (0.9,)),
        (asp.ndtri, jsp.ndtri, (1e-5,)),
        (asp.i1e, jsp.i1e, (-2.0,)),
        (asp.gammainc, jsp.gammainc, (2.5, 1.5)),
        (asp.gammaincc, jsp.gammaincc, (0.7, 4.0)),
        (lambda x: asp.betainc(2.5, 1.5, x), lambda x: jsp.betainc(2.5, 1.5, x), (0.3,)),
        (asp.xlogy, jsp.xlogy, (0.0, 2.0)),
        (asp.xlog1py, jsp.xlog1py, (0.0, 2.0)),
        (lambda a: asp.multigammaln(a, 3), lambda a: jsp.multigammaln(a, 3), (2.7,)),
        (lambda x, df: ast.t.logpdf(x, df, 0.5, 2.0), lambda x, df: jst.t.logpdf(x, df, 0.5, 2.0),
         (1.3, 3.5)),
        (lambda x, a: ast.gamma.logpdf(x, a, 0.0, 2.0),
         lambda x, a: jst.gamma.logpdf(x, a, 0.0, 2.0), (1.3, 2.5)),
        (lambda x, m: ast.norm.logcdf(x, m), lambda x, m: jst.norm.logcdf(x, m), (-9.0, 0.5)),
        (lambda k, p: ast.bernoulli.logpmf(1.0, p), lambda k, p: jst.bernoulli.logpmf(1.0, p),
         (1.0, 0.3)),
        (lambda mu: ast.poisson.logpmf(3.0, mu), lambda mu: jst.poisson.logpmf(3.0, mu), (2.5,)),
        (lambda a: ast.dirichlet.logpdf(np.array([0.2, 0.3, 0.5]), a),
         lambda a: jst.dirichlet.logpdf(np.array([0.2, 0.3, 0.5]), a), (np.array([1.5, 2., 3.]),)),
    ]
    with jax.enable_x64(True):
        for k, (ours, theirs, point) in enumerate(checks):
            n = len(point)
            got = adjit.grad(ours, argnums=tuple(range(n)))(*point)
            want = jax.grad(theirs, argnums=tuple(range(n)))(*point)
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, np.asarray(w), rtol=1e-9, err_msg=str(k))


@pytest.mark.slow
def test_ahead_of_time_build(tmp_path):
    """gamma and erfc are libm calls, so they build into a library of their own; SciPy's
    compiled functions exist only inside a Python process: the link error names the call."""
    from adjit import aot

    x = np.array([0.5, 2.5, 6.0])
    built = aot.build({"g": (lambda x: asp.gamma(x) * asp.erfc(x), (x,))}, "spec", str(tmp_path))
    assert pathlib.Path(built.library).exists()
    with pytest.raises(adjit.AdjitError, match="adjit_scipy_special_gammainc"):
        aot.build({"p": (lambda x: asp.gammainc(2.0, x), (x,))}, "spec2", str(tmp_path))


def test_multivariate_normal_against_scipy(interpreted):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 3))
    cov, mean = a @ a.T + np.eye(3), rng.standard_normal(3)
    xs = rng.standard_normal((2, 4, 3))
    mvn = ast.multivariate_normal
    np.testing.assert_allclose(mvn.logpdf(xs, mean, cov), sst.multivariate_normal.logpdf(
        xs, mean, cov), rtol=1e-12)
    np.testing.assert_allclose(mvn.pdf(xs[0, 0], mean, cov),
                               sst.multivariate_normal.pdf(xs[0, 0], mean, cov), rtol=1e-12)
    for c in (np.array([0.5, 2.0, 3.0]), 1.7):  # a diagonal, a multiple of the identity
        np.testing.assert_allclose(mvn.logpdf(xs, mean, c),
                                   sst.multivariate_normal.logpdf(xs, mean, c), rtol=1e-12)
    np.testing.assert_allclose(mvn.logpdf(xs), sst.multivariate_normal.logpdf(
        xs, np.zeros(3)), rtol=1e-12)
    # every argument differentiated: the points, the mean, the covariance (through a factor)
    check_grads(lambda x, m, f: mvn.logpdf(x, m, f @ f.T + anp.eye(3)), (xs[0], mean, a),
                order=2)
    with pytest.raises(AdjitValueError, match="cov has shape"):
        mvn.logpdf(xs, mean, np.eye(2))
