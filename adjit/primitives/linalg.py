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
    (x, y), (dx, dy), size = args, dims, batch_size(args, dims)
    xs, ys = get_aval(x).shape, get_aval(y).shape
    if dy is None and not is_symbolic(xs[1]) and xs[1] == 1:
        # A batch of row vectors times one matrix is one matrix product.
        return reshape(matmul(reshape(x, (size, xs[2])), y), (size, 1, ys[1])), 0
    if dx is None and not is_symbolic(ys[2]) and ys[2] == 1:
        cols = reshape(y, (size, ys[1]))
        return reshape(transpose(matmul(x, transpose(cols, (1, 0))), (1, 0)),
                       (size, xs[0], 1)), 0
    return batched_matmul(x, y), 0


batching_rules["matmul"] = _matmul_batch


def batched_matmul(x, y):
    """``x @ y`` over leading batch axes, which a matrix operand (rank 2) shares with the other
    operand: ``matmul`` for two matrices, else out[..., i, j] = sum_k x[..., i, k] y[..., k, j],
    a product and a sum the compiler fuses (a batch length may be symbolic, so the batch axes
    cannot be folded into one matrix product)."""
    from adjit.primitives.elementwise import mul

    xs, ys = get_aval(x).shape, get_aval(y).shape
    if len(xs) == len(ys) == 2:
        return matmul(x, y)
    batch = (xs if len(xs) > 2 else ys)[:-2]
    r = len(batch)
    shape = (*batch, xs[-2], xs[-1], ys[-1])
    x4 = broadcast_in_dim(x, shape, (*range(r), r, r + 1) if len(xs) > 2 else (r, r + 1))
    y4 = broadcast_in_dim(y, shape, (*range(r), r + 1, r + 2) if len(ys) > 2 else (r + 1, r + 2))
    return reduce_sum(mul(x4, y4), (r + 1,))
