"""Special-function primitives beyond the elementary ones (gamma, erfc and their inverses,
modified and ordinary Bessel functions of order 0 and 1, the regularized incomplete gamma and
beta functions).

Their reference implementations are SciPy's ufuncs, evaluated in float64 and rounded to the
operands' dtype, as the compiled kernels do: the CPU target calls the same compiled C functions
through ``scipy.special.cython_special`` (``adjit.backend.numba_cpu.scipy_special``).

Each derivative is written with primitives that have rules of their own, so every order is
defined. The incomplete gamma and beta functions have no closed-form derivative with respect to
their shape parameters: asking for one is a ``MissingRuleError`` naming the function and the
argument, not a silently wrong zero.
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


def _no_derivative(function, argument):
    def rule(*_, **__):
        raise MissingRuleError(
            f"adjit: scipy.special.{function} has no derivative with respect to its argument "
            f"{argument!r} (no closed form; primitive {function!r}): differentiate with respect "
            f"to the other arguments only, or wrap it in adjit.stop_gradient")

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


gammainc = _special("gammainc", "P(a, x), the regularized lower incomplete gamma function; "
                    "jvp in x only",
                    _no_derivative("gammainc", "a"),
                    lambda t, a, x, **_: mul(t, _gamma_density(a, x)))
gammaincc = _special("gammaincc", "Q(a, x) = 1 - P(a, x), the regularized upper incomplete "
                     "gamma function; jvp in x only", _no_derivative("gammaincc", "a"),
                     lambda t, a, x, **_: neg(mul(t, _gamma_density(a, x))))
# The inverse in y: its derivative is the reciprocal of the density at the result.
gammaincinv = _special("gammaincinv", "the x with P(a, x) = y; jvp in y only",
                       _no_derivative("gammaincinv", "a"),
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
