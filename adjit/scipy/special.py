"""adjit.scipy.special: the special functions of ``scipy.special`` that adjit differentiates
to every order (their derivatives are special functions with rules of their own).

Derivatives exist with respect to every argument, to every order, except where no closed form
exists: with respect to the shape parameters ``a`` and ``b`` of ``betainc``/``betaincinv``, and
the second derivative with respect to ``a`` of ``gammainc``/``gammaincc``/``gammaincinv`` (the
first is computed). Asking for one is a MissingRuleError naming the function and the argument.
Functions of several arguments broadcast them as SciPy does.
"""

from __future__ import annotations

import math
import sys

import adjit.numpy as anp
from adjit.errors import AdjitValueError
from adjit.numpy import protocol
from adjit.numpy.core import _prepare
from adjit.primitives import elementwise as ew
from adjit.primitives import special as sp

_SQRT_HALF = math.sqrt(0.5)  # 1/sqrt(2) correctly rounded, as SciPy's M_SQRT1_2


def _float(x):
    x = anp.asarray(x)
    return anp.astype(x, anp._float_dtype(x))


def _floats(*args):
    """The arguments promoted to one float dtype and broadcast to one shape."""
    return _prepare(*args, dtype=anp._float_dtype(*args))


def expit(x):
    """The logistic sigmoid 1 / (1 + exp(-x))."""
    return ew.logistic(_float(x))


def logit(x):
    """log(x / (1 - x)), the inverse of expit."""
    x = _float(x)
    return anp.subtract(anp.log(x), anp.log1p(anp.negative(x)))


def erf(x):
    return ew.erf(_float(x))


def erfc(x):
    """1 - erf(x), with relative accuracy in the far tail."""
    return sp.erfc(_float(x))


def erfcx(x):
    """exp(x**2) erfc(x)."""
    return sp.erfcx(_float(x))


def erfinv(x):
    return sp.erfinv(_float(x))


def erfcinv(y):
    """The inverse of erfc on (0, 2), through ndtri: erfc(x) = 2 ndtr(-x sqrt(2)), so it keeps
    its relative accuracy for tiny y, which erfinv(1 - y) would lose."""
    return anp.multiply(ndtri(anp.multiply(_float(y), 0.5)), -_SQRT_HALF)


def ndtr(x):
    """The standard normal CDF."""
    return anp.multiply(erfc(anp.multiply(_float(x), -_SQRT_HALF)), 0.5)


def log_ndtr(x):
    """log(ndtr(x)), accurate in both tails: for x < 0 through erfcx, as
    log(erfcx(-x / sqrt 2) / 2) - x**2 / 2 (no underflow however far out); for x >= 0 as
    log1p(-ndtr(-x)). Each branch reads an input clamped to its own side, so the branch not
    taken has a finite derivative and adds nothing to the gradient."""
    x = _float(x)
    negative = anp.less(x, 0.0)
    lo = anp.where(negative, x, 0.0)
    hi = anp.where(negative, 0.0, x)
    lower = anp.subtract(anp.log(anp.multiply(erfcx(anp.multiply(lo, -_SQRT_HALF)),
                                              0.5)),
                         anp.multiply(anp.square(lo), 0.5))
    upper = anp.log1p(anp.negative(ndtr(anp.negative(hi))))
    return anp.where(negative, lower, upper)


def ndtri(y):
    """The inverse of ndtr on (0, 1)."""
    return sp.ndtri(_float(y))


def gammaln(x):
    """log |Gamma(x)|."""
    return ew.lgamma(_float(x))


def gamma(x):
    return sp.gamma(_float(x))


def betaln(a, b):
    """log |B(a, b)|."""
    a, b = _floats(a, b)
    return anp.subtract(anp.add(gammaln(a), gammaln(b)), gammaln(anp.add(a, b)))


def beta(a, b):
    """B(a, b) = Gamma(a) Gamma(b) / Gamma(a + b), as sign * exp(betaln): no overflow of the
    Gamma functions on the way."""
    a, b = _floats(a, b)
    sign = anp.multiply(anp.multiply(anp.sign(gamma(a)), anp.sign(gamma(b))),
                        anp.sign(gamma(anp.add(a, b))))
    return anp.multiply(sign, anp.exp(betaln(a, b)))


def multigammaln(a, d):
    """The log of the multivariate gamma function of dimension ``d`` (a concrete integer):
    d (d - 1) / 4 log(pi) + sum_j gammaln(a - j / 2), j = 0 .. d - 1."""
    d = int(d)
    if d < 1:
        raise AdjitValueError("adjit.scipy.special.multigammaln needs an integer d >= 1")
    a = _float(a)
    out = anp.add(gammaln(a), d * (d - 1) / 4 * math.log(math.pi))
    for j in range(1, d):
        out = anp.add(out, gammaln(anp.subtract(a, j / 2)))
    return out


def gammainc(a, x):
    """The regularized lower incomplete gamma function P(a, x)."""
    return sp.gammainc(*_floats(a, x))


def gammaincc(a, x):
    """The regularized upper incomplete gamma function 1 - P(a, x)."""
    return sp.gammaincc(*_floats(a, x))


def betainc(a, b, x):
    """The regularized incomplete beta function I_x(a, b); differentiable in x only."""
    return sp.betainc(*_floats(a, b, x))


def gammaincinv(a, y):
    """The inverse of gammainc in its second argument."""
    return sp.gammaincinv(*_floats(a, y))


def betaincinv(a, b, y):
    """The inverse of betainc in its third argument; differentiable in y only."""
    return sp.betaincinv(*_floats(a, b, y))


def digamma(x):
    return ew.digamma(_float(x))


psi = digamma


def polygamma(n, x):
    """The n-th derivative of digamma, for a concrete integer ``n >= 0``."""
    n = int(n)
    if n < 0:
        raise AdjitValueError("adjit.scipy.special.polygamma needs n >= 0")
    return digamma(x) if n == 0 else ew.polygamma(_float(x), m=n)


def logsumexp(a, axis=None, b=None, keepdims=False):
    """log(sum(b * exp(a))) without overflow; ``b`` scales the terms (b > 0)."""
    if b is not None:
        a = anp.add(a, anp.log(b))
    return anp.logsumexp(a, axis=axis, keepdims=keepdims)


def softmax(x, axis=None):
    return anp.exp(anp.subtract(x, logsumexp(x, axis=axis, keepdims=True)))


def log_softmax(x, axis=None):
    return anp.subtract(x, logsumexp(x, axis=axis, keepdims=True))


def _x_times(f, x, y, y_ok):
    """x * f(y), 0 where x == 0 even where f(y) is not finite. Where x == 0 and y is in f's
    domain y stays as it is, so the derivatives are JAX's: d/dx = f(y) (also at x == 0) and
    d/dy = x f'(y); only where x == 0 and y is out of it does y become 1."""
    x, y = _floats(x, y)
    return anp.multiply(x, f(anp.where(anp.logical_and(anp.equal(x, 0.0),
                                                       anp.logical_not(y_ok(y))), 1.0, y)))


def xlogy(x, y):
    """x * log(y), 0 where x == 0."""
    return _x_times(anp.log, x, y, lambda y: anp.logical_and(anp.greater(y, 0.0),
                                                             anp.less(y, math.inf)))


def xlog1py(x, y):
    """x * log1p(y), 0 where x == 0."""
    return _x_times(anp.log1p, x, y, lambda y: anp.logical_and(anp.greater(y, -1.0),
                                                               anp.less(y, math.inf)))


def i0(x):
    """The modified Bessel function I0, as exp(|x|) i0e(x)."""
    x = _float(x)
    return anp.multiply(sp.i0e(x), anp.exp(anp.abs(x)))


def i1(x):
    """The modified Bessel function I1, as exp(|x|) i1e(x)."""
    x = _float(x)
    return anp.multiply(sp.i1e(x), anp.exp(anp.abs(x)))


def i0e(x):
    return sp.i0e(_float(x))


def i1e(x):
    return sp.i1e(_float(x))


def j0(x):
    return sp.j0(_float(x))


def j1(x):
    return sp.j1(_float(x))


def y0(x):
    return sp.y0(_float(x))


def y1(x):
    return sp.y1(_float(x))


# scipy.special's functions are NumPy ufuncs: scipy.special.expit(traced) reaches adjit.numpy's
# protocol, which asks this module for the counterpart.
protocol.ufunc_namespaces.append(sys.modules[__name__])
