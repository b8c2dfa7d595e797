"""adjit.numpy.linalg: NumPy's linear algebra over a stack of matrices (leading axes batch,
as in NumPy). The factorizations and solves are the primitives of
``adjit.primitives.decompositions``; everything else is built over them: inv and det from
solve and slogdet, pinv and the spectral and nuclear norms from svd, matrix_power from
products."""

from __future__ import annotations

import numpy as np

from adjit.errors import AdjitValueError
from adjit.ir.graph import same_shape
from adjit.numpy import core as anp
from adjit.primitives import decompositions as dec
from adjit.trace import get_aval

# --------------------------------------------------------------------------- helpers


def _matrices(a, name, square=True):
    """``a`` as a float array of rank >= 2 (a matrix or a stack of them)."""
    a = anp.asarray(a)
    a = anp.astype(a, anp._float_dtype(a))
    aval = get_aval(a)
    if aval.ndim < 2:
        raise AdjitValueError(f"adjit.numpy.linalg.{name}: expected a matrix (an array of at "
                              f"least 2 dimensions), got shape {aval.shape}")
    if square and not same_shape(aval.shape[-1:], aval.shape[-2:-1]):
        raise AdjitValueError(f"adjit.numpy.linalg.{name}: the last two dimensions must be "
                              f"square, got shape {aval.shape}")
    return a


def _identity_like(a):
    """Identity matrices in the shape and dtype of the stack ``a``."""
    aval = get_aval(a)
    return anp.broadcast_to(anp.eye(aval.shape[-1], dtype=aval.dtype), aval.shape)


def _swap(a):
    return anp.swapaxes(a, -1, -2)


def _broadcast_batch(a, b, name):
    """``a`` and ``b`` broadcast to one stack of batch axes (NumPy's rule for solve)."""
    sa, sb = get_aval(a).shape, get_aval(b).shape
    try:
        batch = anp.broadcast_shapes(sa[:-2], sb[:-2])
    except AdjitValueError:
        raise AdjitValueError(f"adjit.numpy.linalg.{name}: the batch axes of shapes {sa} and "
                              f"{sb} do not broadcast") from None
    return anp.broadcast_to(a, (*batch, *sa[-2:])), anp.broadcast_to(b, (*batch, *sb[-2:]))


def _solve_with(prim_solve, a, b, name):
    """``prim_solve(a, b)`` for b a vector (b.ndim == 1) or a stack of matrices, as NumPy 2."""
    a = _matrices(a, name)
    b = anp.astype(anp.asarray(b), get_aval(a).dtype)
    n = get_aval(a).shape[-1]
    vector = anp.ndim(b) == 1
    if vector:
        b = anp.expand_dims(b, -1)
    if anp.ndim(b) < 2 or not same_shape(get_aval(b).shape[-2:-1], (n,)):
        raise AdjitValueError(f"adjit.numpy.linalg.{name}: right-hand side of shape "
                              f"{anp.shape(b)} does not fit a matrix of shape {anp.shape(a)}")
    a, b = _broadcast_batch(a, b, name)
    x = prim_solve(a, b)
    return anp.squeeze(x, -1) if vector else x


# --------------------------------------------------------------------------- solves


def solve(a, b):
    """x with a @ x = b; b a vector or a stack of matrices (NumPy 2's rule)."""
    return _solve_with(dec.solve, a, b, "solve")


def inv(a):
    a = _matrices(a, "inv")
    return dec.solve(a, _identity_like(a))


def slogdet(a):
    """(sign, log|det a|)."""
    sign, logdet = dec.slogdet(_matrices(a, "slogdet"))
    return sign, logdet


def det(a):
    sign, logdet = slogdet(a)
    return anp.multiply(sign, anp.exp(logdet))


def matrix_power(a, n):
    """a @ a @ ... (n times) by repeated squaring; n < 0 powers the inverse, n == 0 gives I."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise AdjitValueError(f"adjit.numpy.linalg.matrix_power: the exponent must be an "
                              f"integer, got {n!r}")
    a = _matrices(a, "matrix_power")
    if n < 0:
        a, n = inv(a), -n
    result = None
    while n:
        if n & 1:
            result = a if result is None else anp.matmul(result, a)
        n >>= 1
        if n:
            a = anp.matmul(a, a)
    return _identity_like(a) if result is None else result


# --------------------------------------------------------------------------- factorizations


def cholesky(a, upper=False):
    """L lower with a = L L^T (a's lower triangle read); ``upper=True`` gives L^T."""
    low = dec.cholesky(_matrices(a, "cholesky"))
    return _swap(low) if upper else low


def eigh(a, UPLO="L"):
    """(eigenvalues ascending, eigenvectors) of a symmetric matrix, one triangle read."""
    a = _matrices(a, "eigh")
    if UPLO not in ("L", "U"):
        raise AdjitValueError(f"adjit.numpy.linalg.eigh: UPLO must be 'L' or 'U', not {UPLO!r}")
    w, v = dec.eigh(a if UPLO == "L" else _swap(a))
    return w, v


def eigvalsh(a, UPLO="L"):
    return eigh(a, UPLO)[0]


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """(U, S, Vh), or S alone with ``compute_uv=False``. The full U or Vh of a non-square
    matrix is not supported: its extra columns are not determined by ``a`` (no derivative)."""
    a = _matrices(a, "svd", square=False)
    u, s, vh = dec.svd(a)
    if not compute_uv:
        return s
    m, n = get_aval(a).shape[-2:]
    if full_matrices and not same_shape((m,), (n,)):
        raise AdjitValueError("adjit.numpy.linalg.svd: full_matrices=True for a non-square "
                              "matrix is not supported; pass full_matrices=False")
    return u, s, vh


def qr(a, mode="reduced"):
    """(Q, R) of the reduced decomposition; ``mode='r'`` gives R alone. 'complete' is the
    same for square and wide matrices only."""
    a = _matrices(a, "qr", square=False)
    if mode not in ("reduced", "r", "complete"):
        raise AdjitValueError(f"adjit.numpy.linalg.qr: mode {mode!r} is not supported "
                              "('reduced', 'complete', 'r')")
    m, n = get_aval(a).shape[-2:]
    if mode == "complete" and dec.longer(m, n):
        raise AdjitValueError("adjit.numpy.linalg.qr: mode='complete' for a tall matrix is "
                              "not supported; use mode='reduced'")
    q, r = dec.qr(a)
    return r if mode == "r" else (q, r)


def pinv(a, rcond=None, hermitian=False, *, rtol=None):
    """The Moore-Penrose pseudo-inverse from the SVD: singular values at most
    ``rcond * max(s)`` (default ``max(m, n) * eps``) are dropped."""
    a = _matrices(a, "pinv", square=False)
    cut = rcond if rcond is not None else rtol
    dtype = get_aval(a).dtype
    if cut is None:  # max(m, n) * eps, the lengths read at run time
        m, n = (anp.asarray(d, dtype) for d in get_aval(a).shape[-2:])
        cut = anp.multiply(anp.maximum(m, n), float(np.finfo(dtype).eps))
    u, s, vh = dec.svd(a)
    keep = anp.greater(s, anp.multiply(cut, anp.max(s, axis=-1, keepdims=True)))
    # 1/s only where it is kept, so a dropped (zero) value gives no inf and no NaN gradient.
    s_inv = anp.where(keep, anp.divide(1.0, anp.where(keep, s, 1.0)), 0.0)
    return anp.matmul(anp.multiply(_swap(vh), anp.expand_dims(s_inv, -2)), _swap(u))


def svdvals(x):
    """The singular values, descending."""
    return svd(x, compute_uv=False)


def multi_dot(arrays):
    """The product of the matrices in order (left to right; NumPy picks the cheapest order)."""
    if len(arrays) < 2:
        raise AdjitValueError("adjit.numpy.linalg.multi_dot: expected at least two arrays")
    out = arrays[0]
    for a in arrays[1:]:
        out = anp.matmul(out, a)
    return out


# --------------------------------------------------------------------------- norms


def cond(x, p=None):
    """The condition number in the norm ``p``: from the singular values for None, 2 and -2,
    else norm(x) * norm(inv(x))."""
    if p in (None, 2, -2):
        s = svdvals(x)
        big, small = anp.max(s, axis=-1), anp.min(s, axis=-1)
        return anp.divide(small, big) if p == -2 else anp.divide(big, small)
    x = _matrices(x, "cond")
    return anp.multiply(norm(x, p, axis=(-2, -1)), norm(inv(x), p, axis=(-2, -1)))


def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    return norm(x, ord, axis=(-2, -1), keepdims=keepdims)


def norm(x, ord=None, axis=None, keepdims=False):
    """NumPy's vector and matrix norms: a matrix norm for a 2-d array with ``axis=None`` or a
    pair of axes; a vector norm for one axis (or a flattened array with ``ord=None``)."""
    x = anp.asarray(x)
    nd = anp.ndim(x)
    if axis is None and (ord is None or nd == 1):
        if nd != 1 and not keepdims:
            x = anp.ravel(x)
        axis = tuple(range(anp.ndim(x)))
    elif axis is None:
        if nd != 2:
            raise AdjitValueError("adjit.numpy.linalg.norm: ord needs a 1-d or 2-d array, or "
                                  "an axis")
        axis = (0, 1)
    if isinstance(axis, (tuple, list)) and len(axis) == 2 and nd >= 2:
        return _matrix_norm(anp, x, ord, tuple(a % nd for a in axis), keepdims)
    if isinstance(axis, (tuple, list)) and len(axis) == 1:
        axis = axis[0]
    return _vector_norm(anp, x, ord, axis, keepdims)


def _vector_norm(anp, x, ord, axis, keepdims):
    if ord is None or ord == 2:
        return anp.sqrt(anp.sum(anp.square(x), axis=axis, keepdims=keepdims))
    if ord == 1:
        return anp.sum(anp.abs(x), axis=axis, keepdims=keepdims)
    if ord == np.inf:
        return anp.max(anp.abs(x), axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return anp.min(anp.abs(x), axis=axis, keepdims=keepdims)
    if ord == 0:
        return anp.sum(anp.astype(anp.not_equal(x, 0.0), anp._float_dtype(x)), axis=axis,
                       keepdims=keepdims)
    if isinstance(ord, (int, float)) and not isinstance(ord, bool):
        total = anp.sum(anp.power(anp.abs(x), float(ord)), axis=axis, keepdims=keepdims)
        return anp.power(total, 1.0 / ord)
    raise AdjitValueError(f"adjit.numpy.linalg.norm: ord={ord!r} is not a vector norm")


def _matrix_norm(anp, x, ord, axes, keepdims):
    rows, cols = axes
    if ord in (None, "fro"):
        out = anp.sqrt(anp.sum(anp.square(x), axis=axes, keepdims=True))
    elif ord in (1, -1):  # the largest (smallest) column sum
        sums = anp.sum(anp.abs(x), axis=rows, keepdims=True)
        out = (anp.max if ord == 1 else anp.min)(sums, axis=cols, keepdims=True)
    elif ord in (np.inf, -np.inf):  # the largest (smallest) row sum
        sums = anp.sum(anp.abs(x), axis=cols, keepdims=True)
        out = (anp.max if ord == np.inf else anp.min)(sums, axis=rows, keepdims=True)
    elif ord in ("nuc", 2, -2):  # from the singular values of each matrix
        rest = [i for i in range(anp.ndim(x)) if i not in axes]
        s = svd(anp.transpose(x, [*rest, rows, cols]), compute_uv=False)
        pick = {"nuc": anp.sum, 2: anp.max, -2: anp.min}[ord]
        out = anp.expand_dims(pick(s, axis=-1), sorted(axes))
    else:
        raise AdjitValueError(f"adjit.numpy.linalg.norm: ord={ord!r} is not a matrix norm")
    return out if keepdims else anp.squeeze(out, axis=axes)
