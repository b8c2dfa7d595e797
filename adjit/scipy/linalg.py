"""adjit.scipy.linalg: SciPy's triangular and Cholesky solves over ``triangular_solve`` and
``cholesky`` (leading axes batch, as in NumPy), and the NumPy functions SciPy shares."""

from __future__ import annotations

import adjit.numpy as anp
from adjit.errors import AdjitValueError
from adjit.numpy.linalg import _solve_with, det, inv, solve  # noqa: F401  (SciPy's names)
from adjit.primitives import decompositions as dec

_TRANS = {0: False, "N": False, 1: True, "T": True, 2: True, "C": True}


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    """x with op(a) x = b for triangular ``a`` (only its ``lower`` or upper triangle read);
    ``trans`` 0/'N': op(a) = a, 1/'T' or 2/'C': a^T; ``unit_diagonal`` takes the diagonal as
    ones. ``b`` a vector or a stack of matrices."""
    if trans not in _TRANS:
        raise AdjitValueError(f"adjit.scipy.linalg.solve_triangular: trans must be 0, 1, 2, "
                              f"'N', 'T' or 'C', not {trans!r}")

    def prim(a, b):
        return dec.triangular_solve(a, b, lower=lower, transpose_a=_TRANS[trans],
                                    unit_diagonal=unit_diagonal)

    return _solve_with(prim, a, b, "solve_triangular")


def cholesky(a, lower=False, overwrite_a=False, check_finite=True):
    """The Cholesky factor: upper U with a = U^T U (SciPy's default, a's upper triangle read),
    or lower L with a = L L^T."""
    a = anp.asarray(a)
    # The lower factor of a^T reads a's upper triangle; its transpose is U.
    return anp.linalg.cholesky(a) if lower else anp.swapaxes(
        anp.linalg.cholesky(anp.swapaxes(a, -1, -2)), -1, -2)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """(c, lower) for ``cho_solve``: c the factor, zeros in its other triangle (SciPy leaves
    whatever was there)."""
    return cholesky(a, lower=lower), lower


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """x with a x = b, from ``cho_factor(a)``: two triangular solves."""
    c, lower = c_and_lower

    def prim(c, b):
        # a = L L^T (lower) or U^T U: solve with the first factor, then with its transpose.
        y = dec.triangular_solve(c, b, lower=lower, transpose_a=not lower)
        return dec.triangular_solve(c, y, lower=lower, transpose_a=lower)

    return _solve_with(prim, c, b, "cho_solve")


__all__ = ["cho_factor", "cho_solve", "cholesky", "det", "inv", "solve", "solve_triangular"]
