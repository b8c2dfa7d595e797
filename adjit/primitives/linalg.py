"""Matrix product. Vector and batched products are built from it (or from mul + reduce_sum)
by adjit.numpy, so one bilinear primitive with two transpose cases covers them all."""

from __future__ import annotations

import numpy as np

from adjit.errors import AdjitValueError
from adjit.ir.graph import ShapedArray, is_symbolic, same_shape
from adjit.primitives.registry import (
    batch_size,
    batching_rules,
    defjvp,
    defprim,
    deftranspose,
    is_linear,
)
from adjit.primitives.structural import bind, broadcast_in_dim, reduce_sum, reshape, transpose
from adjit.trace import get_aval


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


def _matmul_batch(args, dims):
    from adjit.primitives.elementwise import mul

    (x, y), (dx, dy), size = args, dims, batch_size(args, dims)
    xs, ys = get_aval(x).shape, get_aval(y).shape
    if dy is None and not is_symbolic(xs[1]) and xs[1] == 1:
        # A batch of row vectors times one matrix is one matrix product.
        return reshape(matmul(reshape(x, (size, xs[2])), y), (size, 1, ys[1])), 0
    if dx is None and not is_symbolic(ys[2]) and ys[2] == 1:
        cols = reshape(y, (size, ys[1]))
        return reshape(transpose(matmul(x, transpose(cols, (1, 0))), (1, 0)),
                       (size, xs[0], 1)), 0
    # Otherwise out[b, i, j] = sum_k x[b, i, k] y[b, k, j], which the compiler fuses.
    m, k = xs[-2:]
    n = ys[-1]
    shape = (size, m, k, n)
    x4 = broadcast_in_dim(x, shape, (0, 1, 2) if dx is not None else (1, 2))
    y4 = broadcast_in_dim(y, shape, (0, 2, 3) if dy is not None else (2, 3))
    return reduce_sum(mul(x4, y4), (2,)), 0


batching_rules["matmul"] = _matmul_batch
