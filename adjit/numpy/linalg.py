"""adjit.numpy.linalg: norms (factorizations come with the linear-algebra primitives)."""

from __future__ import annotations

import numpy as np

from adjit.errors import AdjitValueError
from adjit.numpy import core as anp


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
    else:
        raise AdjitValueError(f"adjit.numpy.linalg.norm: the matrix norm ord={ord!r} needs a "
                              "singular value decomposition, which adjit does not have")
    return out if keepdims else anp.squeeze(out, axis=axes)
