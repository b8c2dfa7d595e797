"""Matrix product. Vector and batched products are built from it (or from mul + reduce_sum)
by adjit.numpy, so one bilinear primitive with two transpose cases covers them all."""

from __future__ import annotations

import numpy as np

from adjit.errors import AdjitValueError
from adjit.ir.graph import ShapedArray, same_shape
from adjit.primitives.registry import defjvp, defprim, deftranspose, is_linear
from adjit.primitives.structural import bind, transpose


def matmul(x, y):
    return bind("matmul", x, y)


def _matmul_abstract(x, y):
    if x.ndim != 2 or y.ndim != 2 or x.dtype != y.dtype or not (
        same_shape(x.shape[1:], y.shape[:1]) or x.shape[1] == y.shape[0]
    ):
        raise AdjitValueError(f"matmul: shapes {x} and {y} do not align")
    return ShapedArray((x.shape[0], y.shape[1]), x.dtype)


defprim("matmul", _matmul_abstract, np.matmul)
defjvp("matmul", lambda t, x, y, **_: matmul(t, y), lambda t, x, y, **_: matmul(x, t))
deftranspose("matmul", lambda ct, x, y: [
    matmul(ct, transpose(y, (1, 0))) if is_linear(x) else None,
    matmul(transpose(x, (1, 0)), ct) if is_linear(y) else None,
])
