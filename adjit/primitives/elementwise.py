"""Elementwise primitives. Binary ones take arrays of one shape and dtype: adjit.numpy
broadcasts and promotes before it binds, so these rules never deal with broadcasting."""

from __future__ import annotations

import math

import numpy as np

from adjit.errors import AdjitTypeError, AdjitValueError
from adjit.ir.graph import ShapedArray, same_shape
from adjit.primitives.registry import (
    defbatch_elementwise,
    defjvp,
    defjvp_full,
    deflinear,
    defnondiff,
    defprim,
    deftranspose,
    is_linear,
    real_only,
)
from adjit.primitives.structural import bind, broadcast_in_dim, instantiate
from adjit.trace import get_aval


def _binder(name):
    def apply(*args, **params):
        return bind(name, *args, **params)

    apply.__name__ = name
    return apply


def full_like(x, value):
    """``value`` in the shape and dtype of ``x``: the typed constant rules multiply by."""
    aval = get_aval(x)
    return broadcast_in_dim(np.asarray(value, aval.dtype), aval.shape, ())


def _unary_abstract(x, **_):
    return x


def _float_unary_abstract(x, **_):
    # Float or complex: the functions NumPy defines on complex numbers too.
    if not x.is_inexact:
        raise AdjitTypeError(f"expected a floating-point or complex array, got {x}")
    return x


def _real_unary_abstract(what):
    def abstract(x, **_):
        real_only(what, x)
        if not x.is_float:
            raise AdjitTypeError(f"expected a floating-point array, got {x}")
        return x

    return abstract


def _binary_abstract(x, y, **_):
    if x.dtype != y.dtype or not same_shape(x.shape, y.shape):
        raise AdjitValueError(f"elementwise operands differ: {x} and {y}")
    return x


def _real_binary_abstract(what):
    def abstract(x, y, **_):
        real_only(what, x)
        return _binary_abstract(x, y)

    return abstract


def _compare_abstract(x, y, **_):
    _binary_abstract(x, y)
    return ShapedArray(x.shape, np.bool_)


def _order_abstract(what):
    def abstract(x, y, **_):
        real_only(what, x)
        return _compare_abstract(x, y)

    return abstract


def real_dtype(dtype) -> np.dtype:
    """float32 for complex64, float64 for complex128; a real dtype as it is."""
    dtype = np.dtype(dtype)
    return np.finfo(dtype).dtype if dtype.kind == "c" else dtype


def complex_dtype(dtype) -> np.dtype:
    """complex64 for float32, complex128 for float64; a complex dtype as it is."""
    return np.result_type(dtype, np.complex64)


# --------------------------------------------------------------------------- arithmetic

neg = _binder("neg")
defprim("neg", _unary_abstract, np.negative, kind="elementwise")
defbatch_elementwise("neg")
deflinear("neg", lambda ct, x: [neg(ct)])

add = _binder("add")
defprim("add", _binary_abstract, np.add, kind="elementwise")
defbatch_elementwise("add")
deflinear("add", lambda ct, x, y: [ct if is_linear(x) else None, ct if is_linear(y) else None])

sub = _binder("sub")
defprim("sub", _binary_abstract, np.subtract, kind="elementwise")
defbatch_elementwise("sub")
deflinear("sub", lambda ct, x, y: [ct if is_linear(x) else None,
                                   neg(ct) if is_linear(y) else None])

mul = _binder("mul")
defprim("mul", _binary_abstract, np.multiply, kind="elementwise")
defbatch_elementwise("mul")
defjvp("mul", lambda t, x, y, **_: mul(t, y), lambda t, x, y, **_: mul(x, t))
# Linear in whichever argument carries the tangent; the other is a primal coefficient.
deftranspose("mul", lambda ct, x, y: [mul(ct, y) if is_linear(x) else None,
                                      mul(x, ct) if is_linear(y) else None])

div = _binder("div")
defprim("div", _binary_abstract, lambda x, y: np.divide(x, y) if x.dtype.kind in "fc"
        else np.floor_divide(x, y), kind="elementwise")
defbatch_elementwise("div")
defjvp("div", lambda t, x, y, **_: div(t, y),
       lambda t, x, y, out, **_: neg(mul(t, div(out, y))))
deftranspose("div", lambda ct, x, y: [div(ct, y), None])

max_p = _binder("max")
defprim("max", _real_binary_abstract("maximum"), np.maximum, kind="elementwise")
defbatch_elementwise("max")


def _minmax_jvp(name, wins):
    # Where the operands tie each gets half the tangent, as JAX does: the mean of the one-sided
    # derivatives, which keeps max(x, x) = x differentiable with slope 1.
    def jvp(primals, tangents):
        x, y = primals
        out = bind(name, x, y)
        tx, ty = (instantiate(t) for t in tangents)
        half = full_like(x, 0.5)
        x_share = select(wins(x, y), full_like(x, 1.0),
                         select(eq(x, y), half, full_like(x, 0.0)))
        y_share = sub(full_like(x, 1.0), x_share)
        return out, add(mul(tx, x_share), mul(ty, y_share))

    return jvp


defjvp_full("max", _minmax_jvp("max", lambda x, y: gt(x, y)))

min_p = _binder("min")
defprim("min", _real_binary_abstract("minimum"), np.minimum, kind="elementwise")
defbatch_elementwise("min")
defjvp_full("min", _minmax_jvp("min", lambda x, y: lt(x, y)))

pow_p = _binder("pow")
defprim("pow", _binary_abstract, np.power, kind="elementwise")
defbatch_elementwise("pow")


def _pow_jvp_exponent(t, x, y, out, **_):
    # d/dy x**y = log(x) x**y; where x == 0 the term is 0 (the limit for y > 0), not nan.
    zero = eq(x, full_like(x, 0.0))
    safe_log = log(select(zero, full_like(x, 1.0), x))
    return mul(t, mul(safe_log, out))


defjvp("pow",
       lambda t, x, y, **_: mul(t, mul(y, pow_p(x, sub(y, full_like(y, 1.0))))),
       _pow_jvp_exponent)

integer_pow = _binder("integer_pow")
defprim("integer_pow", _unary_abstract, lambda x, *, y: np.power(x, y), kind="elementwise")
defbatch_elementwise("integer_pow")
defjvp("integer_pow", lambda t, x, *, y, **_:
       mul(t, full_like(x, 0.0)) if y == 0 else
       mul(t, mul(full_like(x, float(y)), integer_pow(x, y=y - 1) if y != 2 else x)))

atan2 = _binder("atan2")
defprim("atan2", _real_binary_abstract("arctan2"), np.arctan2, kind="elementwise")
defbatch_elementwise("atan2")
defjvp("atan2",
       lambda t, y, x, **_: mul(t, div(x, add(mul(x, x), mul(y, y)))),
       lambda t, y, x, **_: mul(t, neg(div(y, add(mul(x, x), mul(y, y))))))

# --------------------------------------------------------------------------- transcendental

sin = _binder("sin")
cos = _binder("cos")
defprim("sin", _float_unary_abstract, np.sin, kind="elementwise")
defbatch_elementwise("sin")
defjvp("sin", lambda t, x, **_: mul(t, cos(x)))
defprim("cos", _float_unary_abstract, np.cos, kind="elementwise")
defbatch_elementwise("cos")
defjvp("cos", lambda t, x, **_: neg(mul(t, sin(x))))

tan = _binder("tan")
defprim("tan", _float_unary_abstract, np.tan, kind="elementwise")
defbatch_elementwise("tan")
defjvp("tan", lambda t, x, out, **_: mul(t, add(full_like(x, 1.0), mul(out, out))))

sqrt = _binder("sqrt")
defprim("sqrt", _float_unary_abstract, np.sqrt, kind="elementwise")
defbatch_elementwise("sqrt")
defjvp("sqrt", lambda t, x, out, **_: div(t, mul(full_like(x, 2.0), out)))

cbrt = _binder("cbrt")
defprim("cbrt", _real_unary_abstract("cbrt"), np.cbrt, kind="elementwise")
defbatch_elementwise("cbrt")
defjvp("cbrt", lambda t, x, out, **_: div(t, mul(full_like(x, 3.0), mul(out, out))))


def _one_minus_square(x):
    return sub(full_like(x, 1.0), mul(x, x))


asin = _binder("asin")
defprim("asin", _float_unary_abstract, np.arcsin, kind="elementwise")
defbatch_elementwise("asin")
defjvp("asin", lambda t, x, **_: div(t, sqrt(_one_minus_square(x))))

acos = _binder("acos")
defprim("acos", _float_unary_abstract, np.arccos, kind="elementwise")
defbatch_elementwise("acos")
defjvp("acos", lambda t, x, **_: neg(div(t, sqrt(_one_minus_square(x)))))

atan = _binder("atan")
defprim("atan", _float_unary_abstract, np.arctan, kind="elementwise")
defbatch_elementwise("atan")
defjvp("atan", lambda t, x, **_: div(t, add(full_like(x, 1.0), mul(x, x))))

sinh = _binder("sinh")
cosh = _binder("cosh")
defprim("sinh", _float_unary_abstract, np.sinh, kind="elementwise")
defbatch_elementwise("sinh")
defjvp("sinh", lambda t, x, **_: mul(t, cosh(x)))
defprim("cosh", _float_unary_abstract, np.cosh, kind="elementwise")
defbatch_elementwise("cosh")
defjvp("cosh", lambda t, x, **_: mul(t, sinh(x)))

tanh = _binder("tanh")
defprim("tanh", _float_unary_abstract, np.tanh, kind="elementwise")
defbatch_elementwise("tanh")
defjvp("tanh", lambda t, x, out, **_: mul(t, _one_minus_square(out)))

asinh = _binder("asinh")
defprim("asinh", _float_unary_abstract, np.arcsinh, kind="elementwise")
defbatch_elementwise("asinh")
defjvp("asinh", lambda t, x, **_: div(t, sqrt(add(mul(x, x), full_like(x, 1.0)))))

acosh = _binder("acosh")
defprim("acosh", _float_unary_abstract, np.arccosh, kind="elementwise")
defbatch_elementwise("acosh")
defjvp("acosh", lambda t, x, **_: div(t, sqrt(sub(mul(x, x), full_like(x, 1.0)))))

atanh = _binder("atanh")
defprim("atanh", _float_unary_abstract, np.arctanh, kind="elementwise")
defbatch_elementwise("atanh")
defjvp("atanh", lambda t, x, **_: div(t, _one_minus_square(x)))

exp = _binder("exp")
defprim("exp", _float_unary_abstract, np.exp, kind="elementwise")
defbatch_elementwise("exp")
defjvp("exp", lambda t, x, out, **_: mul(t, out))

expm1 = _binder("expm1")
defprim("expm1", _float_unary_abstract, np.expm1, kind="elementwise")
defbatch_elementwise("expm1")
defjvp("expm1", lambda t, x, out, **_: mul(t, add(out, full_like(x, 1.0))))

log = _binder("log")
defprim("log", _float_unary_abstract, np.log, kind="elementwise")
defbatch_elementwise("log")
defjvp("log", lambda t, x, **_: div(t, x))

log1p = _binder("log1p")
defprim("log1p", _float_unary_abstract, np.log1p, kind="elementwise")
defbatch_elementwise("log1p")
defjvp("log1p", lambda t, x, **_: div(t, add(x, full_like(x, 1.0))))

logistic = _binder("logistic")


def _logistic_impl(x):
    # 1 / (1 + e^-x) keeps its relative accuracy in the lower tail, where 0.5 (tanh(x/2) + 1)
    # cancels; e^-x overflowing to inf gives the right 0.
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-x))).astype(x.dtype)


defprim("logistic", _real_unary_abstract("logistic"), _logistic_impl, kind="elementwise")
defbatch_elementwise("logistic")
# logistic' = logistic(x) logistic(-x): 1 - logistic(x) would round to 0 in the upper tail.
defjvp("logistic", lambda t, x, out, **_: mul(t, mul(out, logistic(neg(x)))))

_erf = np.vectorize(math.erf, otypes=[np.float64])
erf = _binder("erf")
defprim("erf", _real_unary_abstract("erf"), lambda x: _erf(x).astype(x.dtype), kind="elementwise")
defbatch_elementwise("erf")
defjvp("erf", lambda t, x, **_: mul(t, mul(full_like(x, 2.0 / math.sqrt(math.pi)),
                                          exp(neg(mul(x, x))))))

_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
lgamma = _binder("lgamma")
defprim("lgamma", _real_unary_abstract("lgamma"), lambda x: _lgamma(x).astype(x.dtype),
        kind="elementwise")
defbatch_elementwise("lgamma")
defjvp("lgamma", lambda t, x, **_: mul(t, digamma(x)))

digamma = _binder("digamma")


def _digamma_impl(x):
    # Recurrence up to x >= 6, then the asymptotic series: accurate to ~1e-12 for x > 0.
    x = np.asarray(x, np.float64)
    shift = np.zeros_like(x)
    for _ in range(6):
        small = x < 6
        shift = shift - np.where(small, 1.0 / x, 0.0)
        x = np.where(small, x + 1.0, x)
    inv2 = 1.0 / (x * x)
    series = np.log(x) - 0.5 / x - inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (
        1 / 240 - inv2 / 132))))
    return series + shift


defprim("digamma", _real_unary_abstract("digamma"), lambda x: _digamma_impl(x).astype(x.dtype),
        kind="elementwise")
defbatch_elementwise("digamma")
defjvp("digamma", lambda t, x, **_: mul(t, polygamma(x, m=1)))

# polygamma[m] is the m-th derivative of digamma (m >= 1), so every order of lgamma has a rule.
polygamma = _binder("polygamma")
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730)


def _polygamma_impl(x, *, m):
    # psi^(m)(x) = (-1)^(m+1) m! zeta(m+1, x). The recurrence zeta(s, x) = x^-s + zeta(s, x+1)
    # moves x past 10, where the Euler-Maclaurin tail is accurate to ~1e-13 for x > 0.
    dtype, x, s = x.dtype, np.asarray(x, np.float64), m + 1
    with np.errstate(divide="ignore", invalid="ignore"):
        head = np.zeros_like(x)
        for _ in range(10):
            small = x < 10
            head = head + np.where(small, x ** -s, 0.0)
            x = np.where(small, x + 1.0, x)
        tail = x ** (1 - s) / (s - 1) + 0.5 * x ** -s
        rising, factorial = float(s), 2.0  # (s)_(2j-1) and (2j)!
        for j, b in enumerate(_BERNOULLI, start=1):
            tail = tail + b / factorial * rising * x ** (-s - 2 * j + 1)
            rising *= (s + 2 * j - 1) * (s + 2 * j)
            factorial *= (2 * j + 1) * (2 * j + 2)
    return ((-1) ** (m + 1) * math.factorial(m) * (head + tail)).astype(dtype)


defprim("polygamma", lambda x, *, m: _real_unary_abstract("polygamma")(x), _polygamma_impl,
        kind="elementwise")
defbatch_elementwise("polygamma")
defjvp("polygamma", lambda t, x, *, m, **_: mul(t, polygamma(x, m=m + 1)))

# --------------------------------------------------------------------------- piecewise constant

abs_p = _binder("abs")
sign = _binder("sign")


def _abs_jvp(t, x, out, **_):
    if not get_aval(x).is_complex:
        return mul(t, sign(x))
    # d|x| = Re(t conj(x) / |x|), as JAX has it; 0 at x == 0 (|x| replaced by 1 there).
    safe = select(eq(out, full_like(out, 0.0)), full_like(out, 1.0), out)
    return real(mul(t, div(conj(x), convert_element_type(safe, get_aval(x).dtype))))


defprim("abs", lambda x: x.update(dtype=real_dtype(x.dtype)), np.abs, kind="elementwise")
defbatch_elementwise("abs")
defjvp("abs", _abs_jvp)


def _sign_abstract(x):
    # NumPy's sign of a complex number is x / |x|, not piecewise constant: reach it that way.
    real_only("sign", x)
    return x


defprim("sign", _sign_abstract, np.sign, kind="elementwise")
defbatch_elementwise("sign")
defnondiff("sign")

floor = _binder("floor")
defprim("floor", _real_unary_abstract("floor"), np.floor, kind="elementwise")
defbatch_elementwise("floor")
defnondiff("floor")

ceil = _binder("ceil")
defprim("ceil", _real_unary_abstract("ceil"), np.ceil, kind="elementwise")
defbatch_elementwise("ceil")
defnondiff("ceil")

round_p = _binder("round")
defprim("round", _real_unary_abstract("round"), np.round, kind="elementwise")
defbatch_elementwise("round")
defnondiff("round")

# --------------------------------------------------------------------------- comparisons, logic

eq, ne, lt, le, gt, ge = (_binder(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))
for _name, _fn in [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                   ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)]:
    defprim(_name, _compare_abstract if _name in ("eq", "ne") else _order_abstract(_fn.__name__),
            _fn, kind="elementwise")
    defbatch_elementwise(_name)
    defnondiff(_name)

logical_and, logical_or = _binder("and"), _binder("or")
logical_not = _binder("not")
defprim("and", _compare_abstract, np.logical_and, kind="elementwise")
defbatch_elementwise("and")
defnondiff("and")
defprim("or", _compare_abstract, np.logical_or, kind="elementwise")
defbatch_elementwise("or")
defnondiff("or")
defprim("not", lambda x: ShapedArray(x.shape, np.bool_), np.logical_not, kind="elementwise")
defbatch_elementwise("not")
defnondiff("not")

# --------------------------------------------------------------------------- select
# out = on_true where pred else on_false; linear in the two branches.

select = _binder("select")


def _select_abstract(pred, on_true, on_false):
    if pred.dtype != np.bool_ or not same_shape(pred.shape, on_true.shape):
        raise AdjitValueError(f"select: predicate {pred} does not match {on_true}")
    return _binary_abstract(on_true, on_false)


def _select_jvp(primals, tangents):
    pred, on_true, on_false = primals
    out = select(pred, on_true, on_false)
    _, t_true, t_false = tangents
    from adjit.primitives.registry import Zero

    if isinstance(t_true, Zero) and isinstance(t_false, Zero):
        return out, Zero(get_aval(out))
    return out, select(pred, instantiate(t_true), instantiate(t_false))


def _select_transpose(ct, pred, on_true, on_false):
    zeros = full_like(ct, 0.0)
    return [None,
            select(pred, ct, zeros) if is_linear(on_true) else None,
            select(pred, zeros, ct) if is_linear(on_false) else None]


defprim("select", _select_abstract, np.where, kind="elementwise")
defbatch_elementwise("select")
defjvp_full("select", _select_jvp)
deftranspose("select", _select_transpose)

# --------------------------------------------------------------------------- convert_element_type

convert_p = _binder("convert_element_type")


def convert_element_type(x, new_dtype):
    new_dtype = np.dtype(new_dtype)
    if get_aval(x).dtype == new_dtype:
        return x
    return convert_p(x, new_dtype=new_dtype)


def _convert_abstract(x, *, new_dtype):
    if x.is_complex and new_dtype.kind != "c":
        # NumPy drops the imaginary part with a warning; a program means real() or abs().
        raise AdjitTypeError(f"adjit: cannot convert a complex array {x} to {new_dtype}; "
                             "take real() or abs() of it")
    return x.update(dtype=new_dtype)


def _convert_transpose(ct, x, *, new_dtype):
    # A real array made complex: the transpose of that embedding takes the real part (JAX's).
    if new_dtype.kind == "c" and x.aval.dtype.kind != "c":
        return [convert_element_type(real(ct), x.aval.dtype)]
    return [convert_element_type(ct, x.aval.dtype)]


def _convert_jvp(primals, tangents, *, new_dtype):
    from adjit.primitives.registry import Zero

    (x,), (t,) = primals, tangents
    out = convert_p(x, new_dtype=new_dtype)
    if isinstance(t, Zero) or new_dtype.kind not in "fc":
        return out, Zero(get_aval(out))
    return out, convert_p(t, new_dtype=new_dtype)


defprim("convert_element_type", _convert_abstract,
        lambda x, *, new_dtype: x.astype(new_dtype), kind="elementwise")
defbatch_elementwise("convert_element_type")
defjvp_full("convert_element_type", _convert_jvp)
deftranspose("convert_element_type", _convert_transpose)

# --------------------------------------------------------------------------- complex parts
# real, imag, conj and complex are linear over the reals, not over the complex numbers; their
# transposes are JAX's, which with a real cotangent 1 make grad of a real function of z the
# conjugate of df/dRe(z) + i df/dIm(z) (see adjit.api.grad).


def _complex_only(what):
    def abstract(x, **_):
        if not x.is_complex:
            raise AdjitTypeError(f"adjit: the {what} primitive takes a complex array, got {x}")
        return x

    return abstract


def _part_abstract(what):
    def abstract(x, **_):
        return _complex_only(what)(x).update(dtype=real_dtype(x.dtype))

    return abstract


def _complex_abstract(x, y):
    real_only("complex", x)
    if not x.is_float:
        raise AdjitTypeError(f"adjit: complex takes floating-point parts, got {x}")
    return _binary_abstract(x, y).update(dtype=complex_dtype(x.dtype))


real = _binder("real")
imag = _binder("imag")
conj = _binder("conj")
complex_p = _binder("complex")


def _real_zeros(ct):
    return full_like(ct, 0.0)


defprim("real", _part_abstract("real"), np.real, kind="elementwise")
defbatch_elementwise("real")
deflinear("real", lambda ct, x: [complex_p(ct, _real_zeros(ct))])

defprim("imag", _part_abstract("imag"), np.imag, kind="elementwise")
defbatch_elementwise("imag")
deflinear("imag", lambda ct, x: [complex_p(_real_zeros(ct), neg(ct))])

def _conj_impl(x):
    """The complex conjugate."""
    return np.conjugate(x)


defprim("conj", _complex_only("conj"), _conj_impl, kind="elementwise")
defbatch_elementwise("conj")
deflinear("conj", lambda ct, x: [conj(ct)])


def _complex_impl(x, y):
    """``x + i y`` from two real arrays."""
    # Not x + 1j * y, which makes an infinite y's real part nan.
    out = np.empty(np.shape(x), complex_dtype(np.asarray(x).dtype))
    out.real, out.imag = x, y
    return out


defprim("complex", _complex_abstract, _complex_impl, kind="elementwise")
defbatch_elementwise("complex")
deflinear("complex", lambda ct, x, y: [real(ct) if is_linear(x) else None,
                                       neg(imag(ct)) if is_linear(y) else None])

# --------------------------------------------------------------------------- stop_gradient
# The identity with a zero derivative.

stop_gradient = _binder("stop_gradient")
defprim("stop_gradient", _unary_abstract, lambda x: x, kind="elementwise")
defbatch_elementwise("stop_gradient")
defnondiff("stop_gradient")
