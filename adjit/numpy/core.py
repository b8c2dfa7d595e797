"""The core of ``adjit.numpy``: NumPy's names and semantics over adjit's primitives
(broadcasting, type promotion, axes). The sibling modules (indexing, contraction, linalg, the
protocols) build on this one; the package ``adjit.numpy`` gathers them all.

Every function works on traced arrays (staging primitives) and on concrete arrays (running the
reference implementations). Python scalars are weakly typed, as in JAX: ``x * 2.0`` keeps a
float32 ``x`` float32, and ``x * 1j`` makes it complex64.
"""

from __future__ import annotations

import builtins
import math

import numpy as np

from adjit.errors import AdjitTypeError, AdjitValueError
from adjit.ir.graph import Dim, LengthsNeeded, is_one, is_symbolic, same_shape
from adjit.primitives import elementwise as ew
from adjit.primitives import indexing as ix
from adjit.primitives import linalg as la
from adjit.primitives import reductions as rd
from adjit.primitives import sorting as so
from adjit.primitives import structural as st
from adjit.trace import Tracer, canonical_dtype, get_aval, note_numpy_scalar

pi, e, inf, nan, newaxis = np.pi, np.e, np.inf, np.nan, None
float32, float64, int32, int64, bool_ = np.float32, np.float64, np.int32, np.int64, np.bool_
complex64, complex128 = np.complex64, np.complex128
ndarray = np.ndarray

# --------------------------------------------------------------------------- conversion


def _is_weak(x) -> bool:
    return isinstance(x, (int, float, complex, bool, Dim)) and not isinstance(x, np.generic)


def asarray(x, dtype=None):
    """A traced array as it is, anything else as a NumPy array of a supported dtype."""
    if isinstance(x, Tracer):
        return astype(x, dtype) if dtype is not None else x
    if isinstance(x, Dim):  # a symbolic length used as a number: read at run time
        return st.shape_size((x,), np.int64 if dtype is None else dtype)
    if isinstance(x, (list, tuple)) and any(isinstance(v, Tracer) for v in _leaves(x)):
        return stack([asarray(v) for v in x]) if dtype is None else astype(
            stack([asarray(v) for v in x]), dtype)
    if x is None or isinstance(x, (str, bytes, dict, set)):
        raise AdjitTypeError(f"adjit: expected an array or a number, got {type(x).__name__}")
    if isinstance(x, np.generic):
        note_numpy_scalar()  # it may have been computed from an outside array: see dispatch
    try:
        value = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise AdjitTypeError(
            f"adjit: cannot convert {type(x).__name__} to an array: {err}") from None
    if value.dtype == object:
        raise AdjitTypeError(f"adjit: cannot convert {type(x).__name__} to a numeric array")
    return value.astype(canonical_dtype(value.dtype), copy=False)


array = asarray


def _leaves(x):
    for v in x:
        if isinstance(v, (list, tuple)):
            yield from _leaves(v)
        else:
            yield v


def astype(x, dtype):
    return ew.convert_element_type(asarray(x), canonical_dtype(dtype))


def _result_dtype(*args) -> np.dtype:
    strong = [get_aval(asarray(a)).dtype for a in args if not _is_weak(a)]
    weak = [a for a in args if _is_weak(a)]
    dtype = np.result_type(*strong) if strong else None
    if dtype is None:
        dtype = np.result_type(*[np.asarray(0 if isinstance(w, Dim) else w).dtype
                                 for w in weak])
    elif any(isinstance(w, complex) for w in weak) and dtype.kind != "c":
        # A weak complex keeps the precision of a float array (float32 * 1j is complex64).
        dtype = ew.complex_dtype(dtype if dtype.kind == "f" else np.float64)
    elif any(isinstance(w, float) for w in weak) and dtype.kind in "biu":
        dtype = np.dtype(np.float64)
    elif any(isinstance(w, (int, Dim)) and not isinstance(w, bool) for w in weak) and \
            dtype.kind == "b":
        dtype = np.dtype(np.int64)
    return canonical_dtype(dtype)


def broadcast_shapes(*shapes):
    ndim = builtins.max(len(s) for s in shapes)
    out = []
    for axis in range(ndim):
        dims = [s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 0]
        chosen = 1
        for d in dims:
            if is_one(d):
                continue
            if is_one(chosen):
                chosen = d
            elif not same_shape((chosen,), (d,)):
                if is_symbolic(chosen) or is_symbolic(d):
                    # Reading the lengths fixes them (a retrace); equal, they broadcast.
                    if int(chosen) == int(d):
                        continue
                    if int(chosen) == 1 or int(d) == 1:  # n0-1 against n0, with n0 == 2
                        raise LengthsNeeded(
                            "adjit: operands could not be broadcast together with shapes "
                            + " ".join(str(tuple(s)) for s in shapes))
                raise AdjitValueError(
                    "adjit: operands could not be broadcast together with shapes "
                    + " ".join(str(tuple(s)) for s in shapes))
        out.append(chosen)
    return tuple(out)


def broadcast_to(x, shape):
    x = asarray(x)
    aval = get_aval(x)
    shape = tuple(shape)
    if len(shape) < aval.ndim:
        raise AdjitValueError(f"adjit: cannot broadcast shape {aval.shape} to {shape}")
    lead = len(shape) - aval.ndim
    broadcast_shapes(aval.shape, shape)
    keep = [i for i, d in enumerate(aval.shape)
            if is_symbolic(d) or d != 1 or is_one(shape[lead + i])]
    squeezed = st.reshape(x, [aval.shape[i] for i in keep])
    return st.broadcast_in_dim(squeezed, shape, [lead + i for i in keep])


def _prepare(*args, dtype=None):
    """Promote to one dtype and broadcast to one shape: what every elementwise op needs."""
    dtype = dtype or _result_dtype(*args)
    arrays = [asarray(a, dtype) if _is_weak(a) else astype(a, dtype) for a in args]
    shape = broadcast_shapes(*[get_aval(a).shape for a in arrays])
    return [broadcast_to(a, shape) for a in arrays]


def _float_dtype(*args):
    """The promoted dtype if it is float or complex, else float64."""
    dtype = _result_dtype(*args)
    return dtype if dtype.kind in "fc" else np.dtype(np.float64)


# --------------------------------------------------------------------------- elementwise


def _unary(prim, float_only=True):
    def fn(x):
        x = asarray(x)
        if float_only:
            x = astype(x, _float_dtype(x))
        return prim(x)

    fn.__name__ = prim.__name__
    return fn


def _binary(prim, float_only=False):
    def fn(x, y):
        dtype = _float_dtype(x, y) if float_only else None
        return prim(*_prepare(x, y, dtype=dtype))

    fn.__name__ = prim.__name__
    return fn


sin, cos, tan = _unary(ew.sin), _unary(ew.cos), _unary(ew.tan)
arcsin, arccos, arctan = _unary(ew.asin), _unary(ew.acos), _unary(ew.atan)
sinh, cosh, tanh = _unary(ew.sinh), _unary(ew.cosh), _unary(ew.tanh)
arcsinh, arccosh, arctanh = _unary(ew.asinh), _unary(ew.acosh), _unary(ew.atanh)
exp, expm1, log, log1p = _unary(ew.exp), _unary(ew.expm1), _unary(ew.log), _unary(ew.log1p)
sqrt, cbrt = _unary(ew.sqrt), _unary(ew.cbrt)
floor, ceil = _unary(ew.floor), _unary(ew.ceil)
negative = _unary(ew.neg, float_only=False)
abs = absolute = _unary(ew.abs_p, float_only=False)
sign = _unary(ew.sign, float_only=False)
add, subtract, multiply = _binary(ew.add), _binary(ew.sub), _binary(ew.mul)
maximum, minimum = _binary(ew.max_p), _binary(ew.min_p)
arctan2 = _binary(ew.atan2, float_only=True)
true_divide = divide = _binary(ew.div, float_only=True)
equal, not_equal = _binary(ew.eq), _binary(ew.ne)
less, less_equal = _binary(ew.lt), _binary(ew.le)
greater, greater_equal = _binary(ew.gt), _binary(ew.ge)


# --------------------------------------------------------------------------- complex parts


def real(x):
    x = asarray(x)
    return ew.real(x) if get_aval(x).is_complex else x


def imag(x):
    x = asarray(x)
    return ew.imag(x) if get_aval(x).is_complex else zeros_like(x)


def conj(x):
    x = asarray(x)
    return ew.conj(x) if get_aval(x).is_complex else x


conjugate = conj


def angle(z, deg=False):
    z = asarray(z)
    if not get_aval(z).is_complex:
        z = astype(z, _float_dtype(z))
    out = arctan2(imag(z), real(z))
    return multiply(out, 180.0 / np.pi) if deg else out


def iscomplexobj(x):
    return get_aval(asarray(x)).is_complex


def round(x, decimals=0):
    x = astype(x, _float_dtype(x))
    if decimals == 0:
        return ew.round_p(x)
    scale = 10.0 ** decimals
    return divide(ew.round_p(multiply(x, scale)), scale)


around = round


def _bool(x):
    return astype(x, np.bool_)


def logical_and(x, y):
    return ew.logical_and(*_prepare(_bool(x), _bool(y)))


def logical_or(x, y):
    return ew.logical_or(*_prepare(_bool(x), _bool(y)))


def logical_not(x):
    return ew.logical_not(_bool(x))


def power(x, y):
    if isinstance(y, (int, np.integer)) and not isinstance(y, bool) and builtins.abs(y) <= 64:
        x = asarray(x)
        if y < 0:
            return reciprocal(power(x, -y))
        if y == 1:
            return x
        return ew.integer_pow(x, y=int(y))
    return ew.pow_p(*_prepare(x, y, dtype=_float_dtype(x, y)))


def square(x):
    return power(x, 2)


def reciprocal(x):
    return divide(1.0, x)


def log2(x):
    return divide(log(x), math.log(2.0))


def log10(x):
    return divide(log(x), math.log(10.0))


def hypot(x, y):
    # Promoted first: square(1.5) alone would be a float64 array, not a weak Python scalar.
    x, y = _prepare(x, y, dtype=_float_dtype(x, y))
    return sqrt(add(square(x), square(y)))


def logaddexp(x, y):
    # s + log(exp(x - s) + exp(y - s)) with the larger input s as a constant (its derivative
    # cancels): overflow-free, and smooth at x == y to every order, where max and |x - y| are
    # not (their second derivatives vanish there). One of x - s, y - s is 0, so expm1 of that
    # one keeps the small term exact: log1p(expm1(0) + exp(-d)) is log1p(exp(-d)).
    x, y = _prepare(x, y, dtype=_float_dtype(x, y))
    shift = stop_gradient(maximum(x, y))
    shift = where(isfinite(shift), shift, 0.0)  # both -inf (or one inf): no inf - inf
    a, b = subtract(x, shift), subtract(y, shift)
    return add(shift, where(greater_equal(x, y), log1p(add(expm1(a), exp(b))),
                            log1p(add(exp(a), expm1(b)))))


def clip(x, a_min=None, a_max=None):
    if a_min is not None:
        x = maximum(x, a_min)
    if a_max is not None:
        x = minimum(x, a_max)
    return x


def floor_divide(x, y):
    x, y = _prepare(x, y)
    if get_aval(x).dtype.kind == "f":
        return floor(divide(x, y))
    return ew.div(x, y)


def mod(x, y):
    return subtract(x, multiply(floor_divide(x, y), y))


remainder = mod


def where(condition, x=None, y=None):
    if x is None or y is None:
        raise AdjitTypeError("adjit.numpy.where needs three arguments (condition, x, y)")
    dtype = _result_dtype(x, y)
    cond = _bool(condition)
    x, y = (asarray(a, dtype) if _is_weak(a) else astype(a, dtype) for a in (x, y))
    shape = broadcast_shapes(*[get_aval(a).shape for a in (cond, x, y)])
    return ew.select(*[broadcast_to(a, shape) for a in (cond, x, y)])


# --------------------------------------------------------------------------- reductions


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise AdjitValueError(f"adjit: axis {a} is out of bounds for an array of rank {ndim}")
        out.append(a % ndim)
    return tuple(sorted(set(out)))


def _keepdims(out, x_shape, axes, keepdims):
    if not keepdims:
        return out
    return st.reshape(out, [1 if i in axes else d for i, d in enumerate(x_shape)])


def _reducer(prim, float_result=False):
    def fn(a, axis=None, keepdims=False, dtype=None):
        x = asarray(a)
        if dtype is not None:
            x = astype(x, dtype)
        elif float_result or get_aval(x).dtype == np.bool_:
            x = astype(x, np.int64 if not float_result else _float_dtype(x))
        shape = get_aval(x).shape
        axes = _axes(axis, len(shape))
        return _keepdims(prim(x, axes), shape, axes, keepdims)

    fn.__name__ = prim.__name__
    return fn


sum = _reducer(st.reduce_sum)
prod = _reducer(rd.reduce_prod)
max = amax = _reducer(rd.reduce_max)
min = amin = _reducer(rd.reduce_min)


def _count(shape, axes, dtype):
    return st.shape_size([shape[i] for i in axes], dtype)


def mean(a, axis=None, keepdims=False, dtype=None):
    x = asarray(a)
    x = astype(x, dtype or _float_dtype(x))
    shape = get_aval(x).shape
    axes = _axes(axis, len(shape))
    total = sum(x, axes, keepdims)
    return divide(total, _count(shape, axes, get_aval(x).dtype))


def var(a, axis=None, keepdims=False, ddof=0):
    x = asarray(a)
    x = astype(x, _float_dtype(x))
    shape = get_aval(x).shape
    axes = _axes(axis, len(shape))
    centered = subtract(x, mean(x, axes, keepdims=True))
    if get_aval(x).is_complex:  # NumPy's: the mean of |x - mean|^2, a real number
        squares = real(multiply(centered, conj(centered)))
    else:
        squares = square(centered)
    n = _count(shape, axes, get_aval(squares).dtype)
    return divide(sum(squares, axes, keepdims), subtract(n, float(ddof)))


def std(a, axis=None, keepdims=False, ddof=0):
    # Where the variance is 0 (one value, or all equal) sqrt's derivative is inf times a zero
    # tangent: NaN, or anything once the compiler reassociates. Its derivative there is 0
    # instead, in every mode (exact for one value, whose std is constant; the smallest
    # subgradient otherwise, as for abs at 0).
    v = var(a, axis, keepdims, ddof)
    zero = equal(v, 0.0)
    return where(zero, 0.0, sqrt(where(zero, 1.0, v)))


def logsumexp(a, axis=None, keepdims=False):
    """log(sum(exp(a))) computed as max + log(sum(exp(a - max))), so it never overflows."""
    x = asarray(a)
    x = astype(x, _float_dtype(x))
    shape = get_aval(x).shape
    axes = _axes(axis, len(shape))
    # The shift is a constant of the formula: its derivative cancels, so stop it to keep the
    # gradient clean (and finite when a row is all -inf).
    shift = stop_gradient(max(x, axes, keepdims=True))
    shift = where(isfinite(shift), shift, 0.0)
    total = sum(exp(subtract(x, shift)), axes, keepdims=True)
    out = add(log(total), shift)
    return _keepdims(st.reshape(out, [d for i, d in enumerate(shape) if i not in axes]),
                     shape, axes, keepdims)


def isfinite(x):
    x = asarray(x)
    if get_aval(x).is_complex:
        return logical_and(isfinite(real(x)), isfinite(imag(x)))
    if get_aval(x).dtype.kind != "f":
        return full_like(x, True, dtype=np.bool_)
    return less(abs(x), inf)


def isnan(x):
    return not_equal(x, x)


def stop_gradient(x):
    """``x`` with a zero derivative."""
    return ew.stop_gradient(x)


def _one_axis(a, axis):
    """The array and the one normalized axis an along-axis function works on; axis=None
    means the flattened array, as in NumPy."""
    x = asarray(a)
    if axis is None:
        x, axis = ravel(x), 0
    return x, _axes(axis, ndim(x))[0]


def argmax(a, axis=None):
    return rd.argmax(*_one_axis(a, axis))


def argmin(a, axis=None):
    return rd.argmin(*_one_axis(a, axis))


def cumsum(a, axis=None):
    return rd.cumsum(*_one_axis(a, axis))


def _sortable(a, axis):
    if axis is not None and ndim(a) == 0:
        raise AdjitValueError("adjit: cannot sort a zero-dimensional array along an axis")
    return _one_axis(a, axis)


def sort(a, axis=-1):
    return so.sort(*_sortable(a, axis))


def argsort(a, axis=-1):
    return so.argsort(*_sortable(a, axis))


# --------------------------------------------------------------------------- products


def matmul(a, b):
    a, b = asarray(a), asarray(b)
    dtype = _result_dtype(a, b)
    a, b = astype(a, dtype), astype(b, dtype)
    sa, sb = get_aval(a).shape, get_aval(b).shape
    if len(sa) == 0 or len(sb) == 0:
        raise AdjitValueError("adjit: matmul does not take scalars; use multiply")
    if len(sa) == 1 and len(sb) == 1:
        return sum(multiply(a, b))
    if len(sa) <= 2 and len(sb) <= 2:
        a2 = st.reshape(a, (1, sa[0])) if len(sa) == 1 else a
        b2 = st.reshape(b, (sb[0], 1)) if len(sb) == 1 else b
        out = la.matmul(a2, b2)
        shape = (*sa[:-1], *sb[1:]) if len(sb) == 2 else (*sa[:-1],)
        if len(sa) == 1:
            shape = (sb[1],)
        return st.reshape(out, shape)
    # A vector is a matrix of one row (a) or one column (b), dropped from the result.
    if len(sa) == 1:
        return squeeze(matmul(expand_dims(a, 0), b), -2)
    if len(sb) == 1:
        return squeeze(matmul(a, expand_dims(b, -1)), -1)
    # Batched: the batch axes broadcast against each other (views), one batched product.
    batch = broadcast_shapes(sa[:-2], sb[:-2])
    return la.matmul(broadcast_to(a, (*batch, *sa[-2:])), broadcast_to(b, (*batch, *sb[-2:])))


def dot(a, b):
    a, b = asarray(a), asarray(b)
    na, nb = get_aval(a).ndim, get_aval(b).ndim
    if na == 0 or nb == 0:
        return multiply(a, b)
    if nb <= 2:
        return matmul(a, b)
    raise AdjitValueError("adjit: dot of arrays of rank > 2 is not supported; use einsum")


def outer(a, b):
    return multiply(expand_dims(ravel(a), 1), expand_dims(ravel(b), 0))


def vdot(a, b):
    """NumPy's vdot conjugates its first argument."""
    return sum(multiply(conj(ravel(a)), ravel(b)))



def shape(a):
    return get_aval(asarray(a)).shape


def ndim(a):
    return get_aval(asarray(a)).ndim


def size(a):
    return math.prod(shape(a))


def reshape(a, newshape, order="C"):
    if order != "C":
        raise AdjitValueError("adjit: only C-order reshape is supported")
    x = asarray(a)
    old = get_aval(x).shape
    if isinstance(newshape, (int, Dim, np.integer)):
        newshape = (newshape,)
    newshape = list(newshape)
    if any(not is_symbolic(d) and d == -1 for d in newshape):
        known = [d for d in newshape if is_symbolic(d) or d != -1]
        nonunit_old = [d for d in old if is_symbolic(d) or d != 1]
        nonunit_known = [d for d in known if is_symbolic(d) or d != 1]
        if len(nonunit_old) == len(nonunit_known) + 1 and same_shape(
                nonunit_old[:len(nonunit_known)], nonunit_known):
            fill = nonunit_old[-1]
        else:
            fill = math.prod(int(d) for d in old) // builtins.max(
                1, math.prod(int(d) for d in known))
        newshape = [fill if not is_symbolic(d) and d == -1 else d for d in newshape]
    return st.reshape(x, newshape)


def ravel(a):
    return reshape(a, -1)


def transpose(a, axes=None):
    x = asarray(a)
    n = get_aval(x).ndim
    axes = tuple(reversed(range(n))) if axes is None else tuple(int(i) % n for i in axes)
    return st.transpose(x, axes)


def swapaxes(a, axis1, axis2):
    n = ndim(a)
    perm = list(range(n))
    perm[axis1 % n], perm[axis2 % n] = perm[axis2 % n], perm[axis1 % n]
    return transpose(a, perm)


def moveaxis(a, source, destination):
    n = ndim(a)
    perm = [i for i in range(n) if i != source % n]
    perm.insert(destination % n, source % n)
    return transpose(a, perm)


def expand_dims(a, axis):
    x = asarray(a)
    old = list(get_aval(x).shape)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    n = len(old) + len(axes)
    axes = sorted(int(a) % n for a in axes)
    for a in axes:
        old.insert(a, 1)
    return st.reshape(x, old)


def squeeze(a, axis=None):
    x = asarray(a)
    old = get_aval(x).shape
    if axis is None:
        axes = [i for i, d in enumerate(old) if is_one(d)]
    else:
        axes = _axes(axis, len(old))
        if any(is_symbolic(old[i]) or old[i] != 1 for i in axes):
            raise AdjitValueError("adjit: cannot squeeze an axis whose length is not 1")
    return st.reshape(x, [d for i, d in enumerate(old) if i not in axes])


def atleast_1d(a):
    x = asarray(a)
    return reshape(x, (1,)) if ndim(x) == 0 else x


def concatenate(arrays, axis=0, *, dtype=None, casting="same_kind"):
    if len(arrays) == 0:
        raise AdjitValueError("adjit: need at least one array to concatenate")
    arrays = [asarray(a) for a in arrays]
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    if dtype is None:
        dtype = _result_dtype(*arrays)
    else:
        for a in arrays:
            if not np.can_cast(get_aval(a).dtype, dtype, casting):
                raise AdjitTypeError(f"adjit: cannot cast {get_aval(a).dtype} to "
                                     f"{np.dtype(dtype)} with casting={casting!r}")
    arrays = [astype(a, dtype) for a in arrays]
    nd = ndim(arrays[0])
    if nd == 0:
        raise AdjitValueError("adjit: zero-dimensional arrays cannot be concatenated")
    return st.concatenate(arrays, _axes(axis, nd)[0])


def stack(arrays, axis=0, *, dtype=None, casting="same_kind"):
    arrays = [asarray(a) for a in arrays]
    if not arrays:
        raise AdjitValueError("adjit: need at least one array to stack")
    n = ndim(arrays[0]) + 1
    return concatenate([expand_dims(a, axis % n) for a in arrays], axis % n, dtype=dtype,
                       casting=casting)


def hstack(arrays, *, dtype=None, casting="same_kind"):
    arrays = [atleast_1d(a) for a in arrays]
    return concatenate(arrays, 0 if ndim(arrays[0]) == 1 else 1, dtype=dtype, casting=casting)


def vstack(arrays, *, dtype=None, casting="same_kind"):
    return concatenate([reshape(a, (1, -1)) if ndim(a) < 2 else a for a in arrays], 0,
                       dtype=dtype, casting=casting)


# --------------------------------------------------------------------------- creation


def _shape_arg(shape):
    return tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)


def full(shape, fill_value, dtype=None):
    if dtype is None:
        value = asarray(fill_value)
    else:
        value = asarray(fill_value, canonical_dtype(dtype)) if _is_weak(fill_value) else astype(
            fill_value, dtype)
    return broadcast_to(value, _shape_arg(shape))


def zeros(shape, dtype=np.float64):
    return full(shape, 0, dtype)


def ones(shape, dtype=np.float64):
    return full(shape, 1, dtype)


def full_like(a, fill_value, dtype=None):
    aval = get_aval(asarray(a))
    return full(aval.shape, fill_value, dtype or aval.dtype)


def zeros_like(a, dtype=None):
    return full_like(a, 0, dtype)


def ones_like(a, dtype=None):
    return full_like(a, 1, dtype)


def arange(start, stop=None, step=None, dtype=None):
    if stop is None:
        start, stop = 0, start
    step = 1 if step is None else step
    if dtype is None:
        dtype = np.float64 if builtins.any(isinstance(v, float) for v in (start, stop, step)) \
            else np.int64
    if is_symbolic(stop) and start == 0 and step == 1:
        return st.iota(dtype, (stop,), 0)
    n = builtins.max(0, math.ceil((float(stop) - float(start)) / float(step)))
    index = st.iota(dtype, (n,), 0)
    if step != 1:
        index = multiply(index, asarray(step, dtype))
    if start != 0:
        index = add(index, asarray(start, dtype))
    return index


def linspace(start, stop, num=50, endpoint=True, dtype=np.float64):
    index = st.iota(dtype, (num,), 0)
    div = (num - 1) if endpoint else num
    step = divide(subtract(stop, start), float(builtins.max(div, 1)))
    return add(multiply(index, step), start)


def eye(N, M=None, k=0, dtype=np.float64):
    M = N if M is None else M
    rows = st.iota(np.int64, (N, M), 0)
    cols = st.iota(np.int64, (N, M), 1)
    return astype(equal(add(rows, k), cols), dtype)


def identity(n, dtype=np.float64):
    return eye(n, dtype=dtype)


# --------------------------------------------------------------------------- indexing


def take(a, indices, axis=None):
    x = asarray(a)
    if axis is None:
        x, axis = ravel(x), 0
    idx = astype(indices, np.int64)
    return ix.take(x, idx, _axes(axis, ndim(x))[0])
