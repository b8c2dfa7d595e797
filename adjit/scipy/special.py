"""adjit.scipy.special: the special functions of ``scipy.special`` that adjit differentiates
to every order (their derivatives are special functions with rules of their own)."""

from __future__ import annotations

import sys

import adjit.numpy as anp
from adjit.errors import AdjitValueError
from adjit.numpy import protocol
from adjit.primitives import elementwise as ew


def _float(x):
    x = anp.asarray(x)
    return anp.astype(x, anp._float_dtype(x))


def expit(x):
    """The logistic sigmoid 1 / (1 + exp(-x))."""
    return ew.logistic(_float(x))


def logit(x):
    return anp.log(anp.divide(x, anp.subtract(1.0, x)))


def erf(x):
    return ew.erf(_float(x))


def erfc(x):
    """1 - erf(x): absolute, not relative, accuracy in the far tail."""
    return anp.subtract(1.0, erf(x))


def gammaln(x):
    """log |Gamma(x)|."""
    return ew.lgamma(_float(x))


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


def xlogy(x, y):
    """x * log(y), 0 where x == 0."""
    zero = anp.equal(x, 0.0)
    return anp.where(zero, 0.0, anp.multiply(x, anp.log(anp.where(zero, 1.0, y))))


# scipy.special's functions are NumPy ufuncs: scipy.special.expit(traced) reaches adjit.numpy's
# protocol, which asks this module for the counterpart.
protocol.ufunc_namespaces.append(sys.modules[__name__])
