"""Matrix factorizations and solves, each over a stack of matrices (leading batch axes, as in
NumPy), so one batching rule serves: broadcast the unbatched operands along the batch, bind.

Seven primitives; ``adjit.numpy.linalg`` and ``adjit.scipy.linalg`` build the rest over them
(inv and det from solve and slogdet, pinv and the spectral norms from svd, cho_solve from two
triangular solves). Every JVP is written with linear operations on the tangent (products and
solves with a primal matrix, transposes, masks), so reverse mode is its transpose and needs
only ``solve`` and ``triangular_solve`` to be transposable in their right-hand side.

``cholesky`` and ``eigh`` read the lower triangle only, as NumPy's do; their JVPs differentiate
that function (the tangent's upper triangle is ignored, its strict lower one counts twice).
The formulas are the standard ones (JAX's ``lax.linalg``): eigh's eigenvector tangent divides
by eigenvalue gaps and svd's singular vector tangents by gaps of squared singular values, so
at repeated values those tangents are inf or NaN (JAX's documented behaviour), while the
eigenvalue and singular value tangents stay finite.
"""

from __future__ import annotations

import numpy as np

from adjit.errors import AdjitTypeError, AdjitValueError
from adjit.ir.graph import ShapedArray, same_shape
from adjit.primitives.elementwise import add, div, eq, full_like, ge, gt, mul, neg, select, sub
from adjit.primitives.linalg import batched_matmul as bmm
from adjit.primitives.registry import (
    Zero,
    batch_all,
    batching_rules,
    defjvp,
    defjvp_full,
    defprim,
    deftranspose,
    is_linear,
)
from adjit.primitives.structural import bind, broadcast_in_dim, iota, reduce_sum, transpose
from adjit.trace import get_aval

# --------------------------------------------------------------------------- helpers


def _mT(x):
    """The matrices of a stack transposed (the last two axes swapped)."""
    r = get_aval(x).ndim
    return transpose(x, (*range(r - 2), r - 1, r - 2))


def _where_ij(x, keep, other=0.0):
    """``x`` where ``keep(i, j)`` holds for an element's (row, column), else ``other``."""
    aval = get_aval(x)
    i = iota(np.int64, aval.shape, aval.ndim - 2)
    j = iota(np.int64, aval.shape, aval.ndim - 1)
    return select(keep(i, j), x, full_like(x, other))


def _tril(x, strict=False):
    return _where_ij(x, gt if strict else ge)


def _triu(x, strict=False):
    return _where_ij(x, (lambda i, j: gt(j, i)) if strict else (lambda i, j: ge(j, i)))


def _eye_like(x):
    return _where_ij(full_like(x, 1.0), eq)


def _diagonal(x):
    """(..., n, n) -> (..., n): the diagonal of each matrix."""
    return reduce_sum(_where_ij(x, eq), (get_aval(x).ndim - 1,))


def _rows(v, n):
    """(..., k) -> (..., n, k): ``v`` repeated down n rows (v[..., None, :])."""
    shape = get_aval(v).shape
    r = len(shape) + 1
    return broadcast_in_dim(v, (*shape[:-1], n, shape[-1]), (*range(r - 2), r - 1))


def _cols(v, n):
    """(..., k) -> (..., k, n): ``v`` repeated along n columns (v[..., :, None])."""
    shape = get_aval(v).shape
    r = len(shape) + 1
    return broadcast_in_dim(v, (*shape, n), tuple(range(r - 1)))


def _sym_lower(t):
    """The symmetric matrix whose lower triangle is ``t``'s: what a routine reading only the
    lower triangle sees of a tangent."""
    return add(_tril(t), _mT(_tril(t, strict=True)))


def _gap_reciprocals(v):
    """F[..., i, j] = 1 / (v_j - v_i) off the diagonal, 0 on it, inf where values repeat
    (written so, not divided by zero: a tangent that is never used warns of nothing)."""
    n = get_aval(v).shape[-1]
    diffs = sub(_rows(v, n), _cols(v, n))
    eye = _eye_like(diffs)
    gaps = add(diffs, eye)
    tie = eq(gaps, full_like(gaps, 0.0))
    inv = div(full_like(gaps, 1.0), select(tie, full_like(gaps, 1.0), gaps))
    return sub(select(tie, full_like(gaps, np.inf), inv), eye)


def longer(m, n) -> bool:
    """Whether length m exceeds n (a tall matrix); reading two different lengths fixes them in
    the trace."""
    return not same_shape((m,), (n,)) and int(m) > int(n)


def _shorter(m, n):
    return n if longer(m, n) else m


def _square(x, name):
    if not x.is_float:
        raise AdjitTypeError(f"{name}: expected a floating-point matrix, got {x}")
    if x.ndim < 2 or not same_shape(x.shape[-1:], x.shape[-2:-1]):
        raise AdjitValueError(f"{name}: expected a square matrix or a stack of them, got {x}")
    return x


def _solve_abstract(name):
    def abstract(a, b, **_):
        _square(a, name)
        if b.dtype != a.dtype or b.ndim != a.ndim or not same_shape(
                b.shape[:-1], a.shape[:-1]):
            raise AdjitValueError(f"{name}: right-hand side {b} does not fit the matrix {a} "
                                  "(same batch axes, as many rows)")
        return b

    return abstract


def _batch_rule(name, n_outs=1):
    """Every operand with the batch on axis 0; the primitive takes the stack as it is."""
    def rule(args, dims, **params):
        out = bind(name, *batch_all(args, dims), **params)
        return (out, 0) if n_outs == 1 else (out, [0] * n_outs)

    batching_rules[name] = rule


# --------------------------------------------------------------------------- triangular_solve
# X with op(A) X = B, op(A) = A or A^T, A triangular (only its triangle is read; with
# unit_diagonal its diagonal is taken as ones). Linear in B.


def triangular_solve(a, b, lower=True, transpose_a=False, unit_diagonal=False):
    return bind("triangular_solve", a, b, lower=bool(lower), transpose_a=bool(transpose_a),
                unit_diagonal=bool(unit_diagonal))


def _triangular_solve_impl(a, b, *, lower, transpose_a, unit_diagonal):
    """X with op(A) X = B, A triangular (`lower`, `transpose_a`, `unit_diagonal`)"""
    a = np.tril(a) if lower else np.triu(a)
    if unit_diagonal:
        n = a.shape[-1]
        a = a.copy()
        a[..., np.arange(n), np.arange(n)] = 1
    return np.linalg.solve(np.swapaxes(a, -1, -2) if transpose_a else a, b)


def _triangular_solve_jvp_a(t, a, b, *, out, lower, transpose_a, unit_diagonal):
    # d(op(A)^-1 B) = -op(A)^-1 op(dA) X, dA restricted to the triangle the solve reads.
    t = (_tril if lower else _triu)(t, strict=unit_diagonal)
    return neg(triangular_solve(a, bmm(_mT(t) if transpose_a else t, out), lower, transpose_a,
                                unit_diagonal))


defprim("triangular_solve", _solve_abstract("triangular_solve"), _triangular_solve_impl)
defjvp("triangular_solve", _triangular_solve_jvp_a,
       lambda t, a, b, *, out, **p: triangular_solve(a, t, **p))
deftranspose("triangular_solve", lambda ct, a, b, *, lower, transpose_a, unit_diagonal: [
    None, triangular_solve(a, ct, lower, not transpose_a, unit_diagonal) if is_linear(b) else None])
_batch_rule("triangular_solve")


# --------------------------------------------------------------------------- solve
# X with A X = B for a general square A (LU with partial pivoting). Linear in B.


def solve(a, b):
    return bind("solve", a, b)


def _solve_impl(a, b):
    """X with A X = B for a general square A (LU with partial pivoting)"""
    return np.linalg.solve(a, b)


defprim("solve", _solve_abstract("solve"), _solve_impl)
defjvp("solve", lambda t, a, b, *, out: neg(solve(a, bmm(t, out))),
       lambda t, a, b, **_: solve(a, t))
deftranspose("solve", lambda ct, a, b: [None, solve(_mT(a), ct) if is_linear(b) else None])
_batch_rule("solve")


# --------------------------------------------------------------------------- slogdet
# (sign, log|det A|): d log|det A| = tr(A^-1 dA); the sign is piecewise constant.


def slogdet(a):
    return bind("slogdet", a)


def _slogdet_abstract(a):
    _square(a, "slogdet")
    return [ShapedArray(a.shape[:-2], a.dtype)] * 2


def _slogdet_impl(a):
    """sign and log of the absolute value of the determinant"""
    sign, logdet = np.linalg.slogdet(a)
    return [np.asarray(sign, a.dtype), np.asarray(logdet, a.dtype)]


def _slogdet_jvp(primals, tangents):
    # Called with a nonzero tangent only (adjit.ad.jvp answers all-zero ones), as every rule
    # here with one operand.
    (a,), (t,) = primals, tangents
    sign, logdet = slogdet(a)
    return [sign, logdet], [Zero(get_aval(sign)),
                            reduce_sum(_diagonal(solve(a, t)), (get_aval(a).ndim - 2,))]


defprim("slogdet", _slogdet_abstract, _slogdet_impl, multiple=True)
defjvp_full("slogdet", _slogdet_jvp)
_batch_rule("slogdet", 2)


# --------------------------------------------------------------------------- cholesky
# L lower with A = L L^T (A's lower triangle read). dL = L Phi(L^-1 dA L^-T), Phi taking the
# strict lower triangle and half the diagonal.


def cholesky(a):
    return bind("cholesky", a)


def _cholesky_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    low = cholesky(a)
    # L^-1 S L^-T as two solves (S symmetric, so (L^-1 S)^T = S L^-T).
    x = triangular_solve(low, _mT(triangular_solve(low, _sym_lower(t))))
    phi = _where_ij(x, gt, other=0.0)
    phi = add(phi, mul(_where_ij(x, eq), full_like(x, 0.5)))
    return low, bmm(low, phi)


def _cholesky_impl(a):
    """lower Cholesky factor L, A = L L^T (lower triangle read)"""
    return np.linalg.cholesky(a)


defprim("cholesky", lambda a: _square(a, "cholesky"), _cholesky_impl)
defjvp_full("cholesky", _cholesky_jvp)
_batch_rule("cholesky")


# --------------------------------------------------------------------------- eigh
# Eigenvalues (ascending) and eigenvectors of a symmetric matrix (its lower triangle read).
# With M = V^T dA V: dw = diag(M), dV = V (F * M), F[i, j] = 1 / (w_j - w_i) off the diagonal.


def eigh(a):
    return bind("eigh", a)


def _eigh_abstract(a):
    _square(a, "eigh")
    return [ShapedArray(a.shape[:-1], a.dtype), a]


def _eigh_impl(a):
    """eigenvalues (ascending) and eigenvectors of a symmetric matrix (lower triangle read)"""
    return list(np.linalg.eigh(a))


def _eigh_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    w, v = eigh(a)
    m = bmm(_mT(v), bmm(_sym_lower(t), v))
    return [w, v], [_diagonal(m), bmm(v, mul(_gap_reciprocals(w), m))]


defprim("eigh", _eigh_abstract, _eigh_impl, multiple=True)
defjvp_full("eigh", _eigh_jvp)
_batch_rule("eigh", 2)


# --------------------------------------------------------------------------- svd
# The reduced SVD A = U diag(s) Vh, U (m, k), s (k,), Vh (k, n), k = min(m, n).


def svd(a):
    return bind("svd", a)


def _svd_abstract(a):
    if not a.is_float or a.ndim < 2:
        raise AdjitValueError(f"svd: expected a floating-point matrix or a stack of them, "
                              f"got {a}")
    *batch, m, n = a.shape
    k = _shorter(m, n)
    return [ShapedArray((*batch, m, k), a.dtype), ShapedArray((*batch, k), a.dtype),
            ShapedArray((*batch, k, n), a.dtype)]


def _svd_impl(a):
    """reduced singular value decomposition (U, s, Vh), s descending"""
    return list(np.linalg.svd(a, full_matrices=False))


def _svd_jvp(primals, tangents):
    # JAX's svd_jvp_rule for real matrices: with dS = U^T dA V, ds = diag(dS), and the
    # singular vectors' tangents from dS and the gaps of the squared singular values; a
    # non-square matrix adds the part of dA outside the span of U (tall) or V (wide).
    (a,), (t,) = primals, tangents
    u, s, vh = svd(a)
    *_, m, n = get_aval(a).shape
    k = get_aval(s).shape[-1]
    v = _mT(vh)
    ds = bmm(_mT(u), bmm(t, v))
    s_row, s_col = _rows(s, k), _cols(s, k)
    f = _gap_reciprocals(mul(s, s))
    dss, sds = mul(s_row, ds), mul(s_col, ds)
    du = bmm(u, mul(f, add(dss, _mT(dss))))
    dv = bmm(v, mul(f, add(sds, _mT(sds))))
    if longer(m, n):
        dav = bmm(t, v)
        du = add(du, div(sub(dav, bmm(u, bmm(_mT(u), dav))), _rows(s, m)))
    if longer(n, m):
        dau = bmm(_mT(t), u)
        dv = add(dv, div(sub(dau, bmm(v, bmm(vh, dau))), _rows(s, n)))
    return [u, s, vh], [du, _diagonal(ds), _mT(dv)]


defprim("svd", _svd_abstract, _svd_impl, multiple=True)
defjvp_full("svd", _svd_jvp)
_batch_rule("svd", 3)


# --------------------------------------------------------------------------- qr
# The reduced QR decomposition A = Q R, Q (m, k) orthonormal columns, R (k, n) upper.


def qr(a):
    return bind("qr", a)


def _qr_abstract(a):
    if not a.is_float or a.ndim < 2:
        raise AdjitValueError(f"qr: expected a floating-point matrix or a stack of them, got {a}")
    *batch, m, n = a.shape
    k = _shorter(m, n)
    return [ShapedArray((*batch, m, k), a.dtype), ShapedArray((*batch, k, n), a.dtype)]


def _qr_impl(a):
    """reduced QR decomposition (Q, R), R upper triangular"""
    return list(np.linalg.qr(a))


def _qr_jvp(primals, tangents):
    # JAX's qr_jvp_rule (j-towns.github.io/papers/qr-derivative.pdf), defined for m >= n.
    (a,), (t,) = primals, tangents
    q, r = qr(a)
    *_, m, n = get_aval(a).shape
    if longer(n, m):
        raise AdjitValueError(f"qr: the derivative is defined for square or tall matrices "
                              f"(m >= n), not {get_aval(a)}")
    dx_rinv = _mT(triangular_solve(r, _mT(t), lower=False, transpose_a=True))  # dA R^-1
    qt_dx_rinv = bmm(_mT(q), dx_rinv)
    low = _tril(qt_dx_rinv, strict=True)
    do = sub(low, _mT(low))  # skew-symmetric
    dq = add(bmm(q, sub(do, qt_dx_rinv)), dx_rinv)
    dr = bmm(sub(qt_dx_rinv, do), r)
    return [q, r], [dq, dr]


defprim("qr", _qr_abstract, _qr_impl, multiple=True)
defjvp_full("qr", _qr_jvp)
_batch_rule("qr", 2)


__all__ = ["cholesky", "eigh", "qr", "slogdet", "solve", "svd", "triangular_solve"]
