"""adjit.scipy.stats: densities, mass functions and distribution functions of ``scipy.stats``
with its parametrization (shape parameters, then ``loc`` and ``scale``) and its broadcasting,
written over adjit.numpy and adjit.scipy.special, so they trace, compile and differentiate.

Each distribution is a namespace of functions, as ``scipy.stats.norm.logpdf(x, loc, scale)``.
Outside the support a density is 0 (its log -inf), as in SciPy; parameters are not checked
(they may be traced), so an invalid one gives nan or a meaningless value rather than an error.

Derivatives: with respect to ``x``, ``loc``, ``scale`` and every shape parameter, except where a
distribution function or its inverse is an incomplete beta function of that parameter (the CDF
and survival function of ``t`` in ``df``; those and the ppf of ``beta`` in ``a`` and ``b``):
there it is a MissingRuleError naming the special function and the argument. Those of
``gamma`` in ``a`` exist to first order.
"""

from __future__ import annotations

import math

import adjit.numpy as anp
from adjit.errors import AdjitValueError
from adjit.scipy import linalg as slinalg
from adjit.scipy import special

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _standardize(x, loc, scale):
    return anp.divide(anp.subtract(x, loc), scale)


def _log_scaled(logpdf, x, loc, scale):
    """The density of loc + scale * X in logs, from X's ``logpdf(z)``."""
    return anp.subtract(logpdf(_standardize(x, loc, scale)), anp.log(scale))


def _inside(z, lo, hi):
    """z in [lo, hi], and z with the points outside replaced by a point inside, so the branch
    not taken has a finite derivative (a ``where`` gradient is 0 * that derivative)."""
    ok = anp.logical_and(anp.greater_equal(z, lo), anp.less_equal(z, hi))
    return ok, anp.where(ok, z, (lo + hi) / 2 if math.isfinite(hi) else lo + 1.0)


def _log(fn):
    return lambda *args, **kwargs: anp.log(fn(*args, **kwargs))


def _exp(fn):
    return lambda *args, **kwargs: anp.exp(fn(*args, **kwargs))


# --------------------------------------------------------------------------- norm


class norm:
    """The normal distribution with mean ``loc`` and standard deviation ``scale``."""

    @staticmethod
    def logpdf(x, loc=0.0, scale=1.0):
        return _log_scaled(lambda z: anp.subtract(anp.multiply(anp.square(z), -0.5),
                                                  _LOG_SQRT_2PI), x, loc, scale)

    @staticmethod
    def cdf(x, loc=0.0, scale=1.0):
        return special.ndtr(_standardize(x, loc, scale))

    @staticmethod
    def logcdf(x, loc=0.0, scale=1.0):
        return special.log_ndtr(_standardize(x, loc, scale))

    @staticmethod
    def sf(x, loc=0.0, scale=1.0):
        return special.ndtr(anp.negative(_standardize(x, loc, scale)))

    @staticmethod
    def logsf(x, loc=0.0, scale=1.0):
        return special.log_ndtr(anp.negative(_standardize(x, loc, scale)))

    @staticmethod
    def ppf(q, loc=0.0, scale=1.0):
        return anp.add(loc, anp.multiply(scale, special.ndtri(q)))

    @staticmethod
    def isf(q, loc=0.0, scale=1.0):
        return anp.subtract(loc, anp.multiply(scale, special.ndtri(q)))


norm.pdf = staticmethod(_exp(norm.logpdf))

# --------------------------------------------------------------------------- t


def _t_log_density(z, df):
    return anp.subtract(
        anp.subtract(anp.subtract(special.gammaln(anp.multiply(anp.add(df, 1.0), 0.5)),
                                  special.gammaln(anp.multiply(df, 0.5))),
                     anp.multiply(anp.log(anp.multiply(df, math.pi)), 0.5)),
        anp.multiply(anp.multiply(anp.add(df, 1.0), 0.5),
                     anp.log1p(anp.divide(anp.square(z), df))))


def _t_cdf(z, df):
    """P(T <= z) through the incomplete beta function, in the form accurate for each z: for
    z^2 >= df the tail I_{df / (df + z^2)}(df / 2, 1 / 2) / 2; nearer the centre
    1/2 + sign(z) I_{z^2 / (df + z^2)}(1 / 2, df / 2) / 2, whose argument has no cancellation.
    At z = 0 that form's derivative is infinite times zero, so there the value is its tangent
    line 1/2 + z pdf(0), right to the second derivative. Each form reads a z replaced where it
    is not used, so its derivative there is finite and adds nothing."""
    z2 = anp.square(z)
    centre = anp.less(z2, df)
    zero = anp.equal(z, 0.0)
    z_centre = anp.where(anp.logical_and(centre, anp.logical_not(zero)), z, 1.0)
    z_tail = anp.where(centre, 1.0, z)
    near = anp.multiply(anp.multiply(anp.sign(z_centre), 0.5), special.betainc(
        0.5, anp.multiply(df, 0.5), anp.divide(anp.square(z_centre),
                                               anp.add(df, anp.square(z_centre)))))
    tail = anp.multiply(special.betainc(anp.multiply(df, 0.5), 0.5,
                                        anp.divide(df, anp.add(df, anp.square(z_tail)))), 0.5)
    far = anp.where(anp.less(z_tail, 0.0), tail, anp.subtract(1.0, tail))
    at_zero = anp.multiply(z, anp.exp(_t_log_density(0.0, df)))
    return anp.where(centre, anp.add(0.5, anp.where(zero, at_zero, near)), far)


class t:
    """Student's t distribution with ``df`` degrees of freedom, shifted by ``loc``, scaled by
    ``scale``."""

    @staticmethod
    def logpdf(x, df, loc=0.0, scale=1.0):
        return _log_scaled(lambda z: _t_log_density(z, df), x, loc, scale)

    @staticmethod
    def cdf(x, df, loc=0.0, scale=1.0):
        return _t_cdf(_standardize(x, loc, scale), df)

    @staticmethod
    def sf(x, df, loc=0.0, scale=1.0):
        return _t_cdf(anp.negative(_standardize(x, loc, scale)), df)


t.pdf = staticmethod(_exp(t.logpdf))
t.logcdf = staticmethod(_log(t.cdf))
t.logsf = staticmethod(_log(t.sf))

# --------------------------------------------------------------------------- gamma


class gamma:
    """The gamma distribution with shape ``a`` (density z^(a-1) e^-z / Gamma(a), z >= 0),
    shifted by ``loc``, scaled by ``scale``."""

    @staticmethod
    def logpdf(x, a, loc=0.0, scale=1.0):
        def standard(z):
            ok, z = _inside(z, 0.0, math.inf)
            value = anp.subtract(anp.subtract(special.xlogy(anp.subtract(a, 1.0), z), z),
                                 special.gammaln(a))
            return anp.where(ok, value, -math.inf)

        return _log_scaled(standard, x, loc, scale)

    @staticmethod
    def cdf(x, a, loc=0.0, scale=1.0):
        return special.gammainc(a, anp.maximum(_standardize(x, loc, scale), 0.0))

    @staticmethod
    def sf(x, a, loc=0.0, scale=1.0):
        return special.gammaincc(a, anp.maximum(_standardize(x, loc, scale), 0.0))

    @staticmethod
    def ppf(q, a, loc=0.0, scale=1.0):
        return anp.add(loc, anp.multiply(scale, special.gammaincinv(a, q)))


gamma.pdf = staticmethod(_exp(gamma.logpdf))
gamma.logcdf = staticmethod(_log(gamma.cdf))
gamma.logsf = staticmethod(_log(gamma.sf))

# --------------------------------------------------------------------------- beta


class beta:
    """The beta distribution with shapes ``a`` and ``b`` on [loc, loc + scale]."""

    @staticmethod
    def logpdf(x, a, b, loc=0.0, scale=1.0):
        def standard(z):
            ok, z = _inside(z, 0.0, 1.0)
            value = anp.subtract(anp.add(special.xlogy(anp.subtract(a, 1.0), z),
                                         special.xlog1py(anp.subtract(b, 1.0), anp.negative(z))),
                                 special.betaln(a, b))
            return anp.where(ok, value, -math.inf)

        return _log_scaled(standard, x, loc, scale)

    @staticmethod
    def cdf(x, a, b, loc=0.0, scale=1.0):
        return special.betainc(a, b, anp.clip(_standardize(x, loc, scale), 0.0, 1.0))

    @staticmethod
    def sf(x, a, b, loc=0.0, scale=1.0):
        """I_{1-z}(b, a): accurate where the CDF is near 1."""
        return special.betainc(b, a, anp.clip(anp.subtract(1.0, _standardize(x, loc, scale)),
                                              0.0, 1.0))

    @staticmethod
    def ppf(q, a, b, loc=0.0, scale=1.0):
        return anp.add(loc, anp.multiply(scale, special.betaincinv(a, b, q)))


beta.pdf = staticmethod(_exp(beta.logpdf))
beta.logcdf = staticmethod(_log(beta.cdf))
beta.logsf = staticmethod(_log(beta.sf))

# --------------------------------------------------------------------------- poisson


def _counts(k, loc):
    """k - loc, and whether it is a count (an integer >= 0): the support of a mass function."""
    k = anp.subtract(k, loc)
    ok = anp.logical_and(anp.greater_equal(k, 0.0), anp.equal(k, anp.floor(k)))
    return k, ok


class poisson:
    """The Poisson distribution with mean ``mu``, shifted by ``loc``."""

    @staticmethod
    def logpmf(k, mu, loc=0):
        k, ok = _counts(k, loc)
        k = anp.where(ok, k, 0.0)
        value = anp.subtract(anp.subtract(special.xlogy(k, mu), special.gammaln(anp.add(k, 1.0))),
                             mu)
        return anp.where(ok, value, -math.inf)

    @staticmethod
    def cdf(k, mu, loc=0):
        """Q(floor(k) + 1, mu), 0 below the support."""
        k = anp.floor(anp.subtract(k, loc))
        below = anp.less(k, 0.0)
        value = special.gammaincc(anp.add(anp.where(below, 0.0, k), 1.0), mu)
        return anp.where(below, 0.0, value)

    @staticmethod
    def sf(k, mu, loc=0):
        """P(floor(k) + 1, mu), 1 below the support."""
        k = anp.floor(anp.subtract(k, loc))
        below = anp.less(k, 0.0)
        value = special.gammainc(anp.add(anp.where(below, 0.0, k), 1.0), mu)
        return anp.where(below, 1.0, value)


poisson.pmf = staticmethod(_exp(poisson.logpmf))
poisson.logcdf = staticmethod(_log(poisson.cdf))
poisson.logsf = staticmethod(_log(poisson.sf))

# --------------------------------------------------------------------------- bernoulli


class bernoulli:
    """The Bernoulli distribution: 1 with probability ``p``, 0 otherwise, shifted by ``loc``."""

    @staticmethod
    def logpmf(k, p, loc=0):
        k = anp.subtract(k, loc)
        ok = anp.logical_or(anp.equal(k, 0.0), anp.equal(k, 1.0))
        value = anp.add(special.xlogy(k, p), special.xlog1py(anp.subtract(1.0, k),
                                                             anp.negative(p)))
        return anp.where(ok, value, -math.inf)

    @staticmethod
    def cdf(k, p, loc=0):
        k = anp.subtract(k, loc)
        return anp.where(anp.less(k, 0.0), 0.0,
                         anp.where(anp.less(k, 1.0), anp.subtract(1.0, p), 1.0))

    @staticmethod
    def sf(k, p, loc=0):
        k = anp.subtract(k, loc)
        return anp.where(anp.less(k, 0.0), 1.0,
                         anp.where(anp.less(k, 1.0), p, 0.0))


bernoulli.pmf = staticmethod(_exp(bernoulli.logpmf))
bernoulli.logcdf = staticmethod(_log(bernoulli.cdf))
bernoulli.logsf = staticmethod(_log(bernoulli.sf))

# --------------------------------------------------------------------------- dirichlet


class dirichlet:
    """The Dirichlet distribution with concentrations ``alpha`` (K of them). As in SciPy, the
    components of ``x`` are along its FIRST axis (shape (K,) or (K, N)); K - 1 of them may be
    given, the last then being 1 minus their sum."""

    @staticmethod
    def logpdf(x, alpha):
        alpha = anp.asarray(alpha)
        x = anp.asarray(x)
        if anp.ndim(alpha) != 1:
            raise AdjitValueError(f"adjit.scipy.stats.dirichlet: alpha must be 1-D, got shape "
                                  f"{anp.shape(alpha)}")
        n = anp.shape(alpha)[0]
        if anp.ndim(x) not in (1, 2) or anp.shape(x)[0] not in (n, n - 1):
            raise AdjitValueError(f"adjit.scipy.stats.dirichlet: x must have {n} or {n - 1} "
                                  f"components along its first axis, got shape {anp.shape(x)}")
        if anp.shape(x)[0] == n - 1:
            x = anp.concatenate([x, anp.subtract(1.0, anp.sum(x, axis=0, keepdims=True))])
        alpha = anp.reshape(alpha, (n,) + (1,) * (anp.ndim(x) - 1))
        log_norm = anp.subtract(anp.sum(special.gammaln(alpha), axis=0),
                                special.gammaln(anp.sum(alpha, axis=0)))
        return anp.subtract(anp.sum(special.xlogy(anp.subtract(alpha, 1.0), x), axis=0),
                            log_norm)


dirichlet.pdf = staticmethod(_exp(dirichlet.logpdf))

# --------------------------------------------------------------------------- multivariate_normal


class multivariate_normal:
    """The normal distribution in d dimensions with ``mean`` (d,) and covariance ``cov``: a
    (d, d) symmetric positive definite matrix, a (d,) diagonal or a number times the identity.
    As in SciPy, ``x`` holds points along its LAST axis: (d,) gives a number, (..., d) an array
    of shape (...). The log density reads the Cholesky factor L of ``cov`` (its lower triangle):
    -(d log 2 pi + 2 sum log diag L + |L^-1 (x - mean)|^2) / 2."""

    @staticmethod
    def logpdf(x, mean=None, cov=1.0):
        x = anp.asarray(x)
        d = anp.shape(x)[-1] if anp.ndim(x) else 1
        mean = anp.zeros(d) if mean is None else anp.asarray(mean)
        cov = anp.asarray(cov)
        if anp.shape(mean) not in ((), (d,)):
            raise AdjitValueError(f"adjit.scipy.stats.multivariate_normal: mean has shape "
                                  f"{anp.shape(mean)}, the points have {d} components")
        if anp.ndim(cov) < 2:
            cov = anp.multiply(anp.eye(d), cov)
        if anp.shape(cov) != (d, d):
            raise AdjitValueError(f"adjit.scipy.stats.multivariate_normal: cov has shape "
                                  f"{anp.shape(cov)}, expected ({d}, {d}), (d,) or a number")
        points = anp.reshape(anp.subtract(x, mean), (-1, d))
        chol = slinalg.cholesky(cov, lower=True)
        z = slinalg.solve_triangular(chol, anp.transpose(points), lower=True)
        log_det = anp.multiply(2.0, anp.sum(anp.log(anp.diagonal(chol))))
        out = anp.multiply(-0.5, anp.add(anp.sum(anp.square(z), axis=0),
                                         d * 2 * _LOG_SQRT_2PI + log_det))
        return anp.reshape(out, anp.shape(x)[:-1])


multivariate_normal.pdf = staticmethod(_exp(multivariate_normal.logpdf))
