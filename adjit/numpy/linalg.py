"""adjit.numpy.linalg: norms (factorizations come with the linear-algebra primitives)."""

from __future__ import annotations

import numpy as np

from adjit.errors import AdjitValueError


def norm(x, ord=None, axis=None, keepdims=False):
    import adjit.numpy as anp

    x = anp.asarray(x)
    if ord in (None, 2, "fro") and (axis is None or isinstance(axis, int) or ord != 2):
        return anp.sqrt(anp.sum(anp.square(x), axis=axis, keepdims=keepdims))
    if ord == 1:
        return anp.sum(anp.abs(x), axis=axis, keepdims=keepdims)
    if ord == np.inf:
        return anp.max(anp.abs(x), axis=axis, keepdims=keepdims)
    if isinstance(ord, (int, float)) and ord > 0:
        total = anp.sum(anp.power(anp.abs(x), float(ord)), axis=axis, keepdims=keepdims)
        return anp.power(total, 1.0 / ord)
    raise AdjitValueError(f"adjit.numpy.linalg.norm: ord={ord!r} is not supported")
