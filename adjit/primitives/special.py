"""Special-function primitives beyond the elementary ones (gamma, erfc and their inverses,
modified and ordinary Bessel functions of order 0 and 1, the regularized incomplete gamma and
beta functions).

Their reference implementations are SciPy's ufuncs (``gammainc_da``: a function of its own),
evaluated in float64 and rounded to the operands' dtype, as the compiled kernels do: the CPU
target calls the same compiled C functions through ``scipy.special.cython_special``
(``adjit.backend.numba_cpu.scipy_special``).

Each derivative is written with primitives that have rules of their own, so every order is
defined, except where no closed form exists: the derivatives of the incomplete beta function and
its inverse with respect to the shape parameters ``a`` and ``b``, and the second derivative of
the incomplete gamma functions with respect to ``a`` (the first is the primitive
``gammainc_da``, which differentiates Cephes' series and continued fraction term by term, as
XLA's ``igamma_grad_a``). Asking for one of those is a ``MissingRuleError`` naming the function
and the argument, not a silently wrong zero.
"""

from __future__ import annotations

import math

import numpy as np

from adjit.errors import AdjitTypeError, AdjitValueError, MissingRuleError
from adjit.ir.graph import same_shape
from adjit.primitives.elementwise import (
    _binder,
    add,
    div,
    eq,
    exp,
    full_like,
    lgamma,
    log,
    log1p,
    mul,
    neg,
    select,
    sign,
    sub,
)
from adjit.primitives.elementwise import digamma as digamma_p
from adjit.primitives.registry import defbatch_elementwise, defjvp, defprim


def _float_abstract(*xs, **_):
    x = xs[0]
    if not x.is_float:
        raise AdjitTypeError(f"expected a floating-point array, got {x}")
    if any(y.dtype != x.dtype or not same_shape(y.shape, x.shape) for y in xs[1:]):
        raise AdjitValueError(f"elementwise operands differ: {', '.join(map(str, xs))}")
    return x


def _scipy_impl(name, doc):
    """SciPy's ufunc in float64, rounded to the operands' dtype (as the compiled kernels)."""
    def impl(*xs):
        import scipy.special  # on first use: importing it costs more than adjit's own import

        fn = getattr(scipy.special, name)
        with np.errstate(all="ignore"):
            return np.asarray(fn(*(np.asarray(x, np.float64) for x in xs))).astype(xs[0].dtype)

    impl.__doc__ = doc  # the primitive's line in docs/PRIMITIVES.md
    return impl


def _special(name, doc, *arg_rules):
    """A float elementwise primitive computed by SciPy's function ``name``, with one JVP rule
    per argument."""
    prim = _binder(name)
    defprim(name, _float_abstract, _scipy_impl(name, doc), kind="elementwise")
    defbatch_elementwise(name)
    defjvp(name, *arg_rules)
    return prim


def _no_derivative(function, argument, what="a derivative"):
    def rule(*_, **__):
        raise MissingRuleError(
            f"adjit: scipy.special.{function} has no rule for {what} with respect to its "
            f"argument {argument!r} (no closed form): differentiate with respect to the other "
            f"arguments only, or wrap it in adjit.stop_gradient")

    return rule


def _over_x(f, x):
    """f(x) / x for an odd f with f'(0) = 1/2 (I1, J1 and their scaled forms): 1/2 at 0."""
    zero = eq(x, full_like(x, 0.0))
    return select(zero, full_like(x, 0.5), div(f, select(zero, full_like(x, 1.0), x)))


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

# --------------------------------------------------------------------------- gamma, erfc family

gamma = _special("gamma", "Gamma(x)",
                 lambda t, x, out, **_: mul(t, mul(out, digamma_p(x))))

erfc = _special("erfc", "1 - erf(x), accurate in the tail", lambda t, x, **_: mul(
    t, mul(full_like(x, -_TWO_OVER_SQRT_PI), exp(neg(mul(x, x))))))

# erfcx' = 2x erfcx - 2/sqrt(pi). It gives log_ndtr in the far lower tail.
erfcx = _special("erfcx", "exp(x ** 2) erfc(x), the scaled complementary error function",
                 lambda t, x, out, **_: mul(t, sub(mul(full_like(x, 2.0), mul(x, out)),
                                                   full_like(x, _TWO_OVER_SQRT_PI))))

# erfinv' = sqrt(pi)/2 exp(erfinv^2), the reciprocal of erf' at the result.
erfinv = _special("erfinv", "inverse of erf, on (-1, 1)", lambda t, x, out, **_: mul(
    t, mul(full_like(x, math.sqrt(math.pi) / 2), exp(mul(out, out)))))

# ndtri' = sqrt(2 pi) exp(ndtri^2 / 2), the reciprocal of the normal density at the result.
ndtri = _special("ndtri", "inverse of the standard normal CDF, on (0, 1)",
                 lambda t, x, out, **_: mul(t, mul(full_like(x, math.sqrt(2 * math.pi)),
                                                   exp(mul(full_like(x, 0.5), mul(out, out))))))

# --------------------------------------------------------------------------- Bessel functions
# The exponentially scaled modified Bessel functions (adjit.scipy.special builds i0 and i1 on
# them, as exp(|x|) i0e(x)): from I0' = I1 and I1' = I0 - I1/x,
# i0e' = i1e - sign(x) i0e and i1e' = i0e - i1e/x - sign(x) i1e.

i0e = _special("i0e", "exp(-|x|) I0(x), the scaled modified Bessel function of order 0",
               lambda t, x, out, **_: mul(t, sub(i1e(x), mul(sign(x), out))))
i1e = _special("i1e", "exp(-|x|) I1(x), the scaled modified Bessel function of order 1",
               lambda t, x, out, **_: mul(t, sub(sub(i0e(x), _over_x(out, x)),
                                                 mul(sign(x), out))))

# J0' = -J1, J1' = J0 - J1/x; Y0' = -Y1, Y1' = Y0 - Y1/x (Y is defined for x > 0).
j0 = _special("j0", "J0(x), the Bessel function of the first kind of order 0",
              lambda t, x, **_: neg(mul(t, j1(x))))
j1 = _special("j1", "J1(x), the Bessel function of the first kind of order 1",
              lambda t, x, out, **_: mul(t, sub(j0(x), _over_x(out, x))))
y0 = _special("y0", "Y0(x), the Bessel function of the second kind of order 0 (x > 0)",
              lambda t, x, **_: neg(mul(t, y1(x))))
y1 = _special("y1", "Y1(x), the Bessel function of the second kind of order 1 (x > 0)",
              lambda t, x, out, **_: mul(t, sub(y0(x), div(out, x))))

# --------------------------------------------------------------------------- incomplete gamma, beta


def _gamma_log_density(a, x):
    """log of d/dx gammainc(a, x) = x^(a-1) exp(-x) / Gamma(a): in logs, it neither over- nor
    underflows before the end."""
    return sub(sub(mul(sub(a, full_like(a, 1.0)), log(x)), x), lgamma(a))


def _gamma_density(a, x):
    return exp(_gamma_log_density(a, x))


def gammainc_da_scalar(a, x, psi_a):
    """dP(a, x)/da for one a > 0 and x >= 0, given psi_a = digamma(a): Cephes' series for P
    (x <= 1 or x < a) or continued fraction for Q = 1 - P, each differentiated in a alongside
    its terms (as XLA's igamma_grad_a). Plain Python over ``math``: the reference
    implementation calls it per element, and the CPU and CUDA targets compile its source."""
    if not (a > 0.0 and x >= 0.0):
        return math.nan
    if x == 0.0:
        return 0.0
    eps = 1e-16
    if x > 1.0 and x > a:
        # Q = exp(a log x - x - lgamma(a)) * ans; y and z both fall by 1 as a grows by 1.
        y = 1.0 - a
        z = x + y + 1.0
        c = 0.0
        pkm2, qkm2, pkm1, qkm1 = 1.0, x, x + 1.0, z * x
        dpkm2, dqkm2, dpkm1, dqkm1 = 0.0, 0.0, 0.0, -x
        ans = pkm1 / qkm1
        dans = (dpkm1 - ans * dqkm1) / qkm1
        for _ in range(10000):
            c += 1.0
            y += 1.0
            z += 2.0
            yc = y * c
            pk = pkm1 * z - pkm2 * yc
            qk = qkm1 * z - qkm2 * yc
            dpk = dpkm1 * z - pkm1 - dpkm2 * yc + pkm2 * c
            dqk = dqkm1 * z - qkm1 - dqkm2 * yc + qkm2 * c
            done = False
            if qk != 0.0:
                r = pk / qk
                dr = (dpk - r * dqk) / qk
                done = abs(dr - dans) <= eps * abs(dr) and abs(r - ans) <= eps * abs(r)
                ans = r
                dans = dr
            pkm2, pkm1, qkm2, qkm1 = pkm1, pk, qkm1, qk
            dpkm2, dpkm1, dqkm2, dqkm1 = dpkm1, dpk, dqkm1, dqk
            if abs(pk) > 4503599627370496.0:  # 2^52: rescale by 2^-52, as Cephes
                pkm2 *= 2.220446049250313e-16
                pkm1 *= 2.220446049250313e-16
                qkm2 *= 2.220446049250313e-16
                qkm1 *= 2.220446049250313e-16
                dpkm2 *= 2.220446049250313e-16
                dpkm1 *= 2.220446049250313e-16
                dqkm2 *= 2.220446049250313e-16
                dqkm1 *= 2.220446049250313e-16
            if done:
                break
        return -math.exp(a * math.log(x) - x - math.lgamma(a)) * (
            dans + ans * (math.log(x) - psi_a))
    # P = exp(a log x - x - lgamma(a + 1)) * sum_n c_n, c_0 = 1, c_n = c_(n-1) x / (a + n).
    r = a
    c = 1.0
    ans = 1.0
    dc = 0.0
    dans = 0.0
    for _ in range(10000):
        r += 1.0
        dc = dc * (x / r) - c * x / (r * r)
        c *= x / r
        ans += c
        dans += dc
        if c <= eps * ans and abs(dc) <= eps * abs(dans):
            break
    # digamma(a + 1) = digamma(a) + 1 / a
    return math.exp(a * math.log(x) - x - math.lgamma(a + 1.0)) * (
        dans + ans * (math.log(x) - psi_a - 1.0 / a))


_gammainc_da_vec = np.vectorize(gammainc_da_scalar, otypes=[np.float64])


def _gammainc_da_impl(a, x, psi_a):
    """dP(a, x)/da of the incomplete gamma function, given digamma(a); jvp in x only"""
    return _gammainc_da_vec(a, x, psi_a).astype(a.dtype)


# Its third operand is digamma(a), computed by the digamma primitive (so no second copy of it
# here): d/dx of dP/da is the density times log(x) - digamma(a). A derivative in a (or in that
# operand, which follows a) would be P's second derivative in a, which has no rule.
gammainc_da = _binder("gammainc_da")
defprim("gammainc_da", _float_abstract, _gammainc_da_impl, kind="elementwise")
defbatch_elementwise("gammainc_da")
defjvp("gammainc_da", _no_derivative("gammainc", "a", "a second derivative"),
       lambda t, a, x, psi_a, **_: mul(t, mul(_gamma_density(a, x), sub(log(x), psi_a))),
       _no_derivative("gammainc", "a", "a second derivative"))


def _gammainc_da_of(a, x):
    return gammainc_da(a, x, digamma_p(a))


gammainc = _special("gammainc", "P(a, x), the regularized lower incomplete gamma function",
                    lambda t, a, x, **_: mul(t, _gammainc_da_of(a, x)),
                    lambda t, a, x, **_: mul(t, _gamma_density(a, x)))
gammaincc = _special("gammaincc", "Q(a, x) = 1 - P(a, x), the regularized upper incomplete "
                     "gamma function", lambda t, a, x, **_: neg(mul(t, _gammainc_da_of(a, x))),
                     lambda t, a, x, **_: neg(mul(t, _gamma_density(a, x))))
# The inverse in y: dx/dy is the reciprocal of the density at the result x, and (implicitly,
# from P(a, x) = y) dx/da = -(dP/da) / density.
gammaincinv = _special("gammaincinv", "the x with P(a, x) = y",
                       lambda t, a, y, out, **_: neg(mul(t, mul(
                           _gammainc_da_of(a, out), exp(neg(_gamma_log_density(a, out)))))),
                       lambda t, a, y, out, **_: mul(t, exp(neg(_gamma_log_density(a, out)))))


def _beta_log_density(a, b, x):
    """log of d/dx betainc(a, b, x) = x^(a-1) (1-x)^(b-1) / B(a, b)."""
    one = full_like(x, 1.0)
    log_beta = sub(add(lgamma(a), lgamma(b)), lgamma(add(a, b)))
    return sub(add(mul(sub(a, one), log(x)), mul(sub(b, one), log1p(neg(x)))), log_beta)


def _beta_density(a, b, x):
    return exp(_beta_log_density(a, b, x))


betainc = _special("betainc", "I_x(a, b), the regularized incomplete beta function; jvp in x only",
                   _no_derivative("betainc", "a"), _no_derivative("betainc", "b"),
                   lambda t, a, b, x, **_: mul(t, _beta_density(a, b, x)))
betaincinv = _special("betaincinv", "the x with I_x(a, b) = y; jvp in y only",
                      _no_derivative("betaincinv", "a"), _no_derivative("betaincinv", "b"),
                      lambda t, a, b, y, out, **_: mul(t, exp(neg(_beta_log_density(a, b, out)))))
