"""Matrix product over leading batch axes. Vector products are built from it (or from mul +
reduce_sum) by adjit.numpy, so one bilinear primitive with two transpose cases covers them all."""

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
from adjit.primitives.structural import bind, broadcast_in_dim, reshape, transpose
from adjit.trace import get_aval


def matmul(x, y):
    return bind("matmul", x, y)


def _matmul_abstract(x, y):
    if (x.ndim < 2 or y.ndim != x.ndim or x.dtype != y.dtype
            or not same_shape(x.shape[:-2], y.shape[:-2])
            or not (same_shape(x.shape[-1:], y.shape[-2:-1]) or x.shape[-1] == y.shape[-2])):
        raise AdjitValueError(f"matmul: shapes {x} and {y} do not align")
    return ShapedArray((*x.shape[:-1], y.shape[-1]), x.dtype)


def swap_last(x):
    """``x`` with its last two axes swapped (each matrix of a stack transposed)."""
    r = get_aval(x).ndim - 2
    return transpose(x, (*range(r), r + 1, r))


def _matmul_impl(x, y):
    """out[..., i, j] = sum_k x[..., i, k] y[..., k, j] over equal leading batch axes"""
    return np.matmul(x, y)


defprim("matmul", _matmul_abstract, _matmul_impl)
defjvp("matmul", lambda t, x, y, **_: matmul(t, y), lambda t, x, y, **_: matmul(x, t))
deftranspose("matmul", lambda ct, x, y: [
    matmul(ct, swap_last(y)) if is_linear(x) else None,
    matmul(swap_last(x), ct) if is_linear(y) else None,
])


def _matmul_batch(args, dims):
    (x, y), (dx, dy), size = args, dims, batch_size(args, dims)
    xs, ys = get_aval(x).shape, get_aval(y).shape
    if dy is None and len(ys) == 2 and not is_symbolic(xs[1]) and xs[1] == 1:
        # A batch of row vectors times one matrix is one matrix product.
        return reshape(matmul(reshape(x, (size, xs[2])), y), (size, 1, ys[1])), 0
    if dx is None and len(xs) == 2 and not is_symbolic(ys[2]) and ys[2] == 1:
        cols = reshape(y, (size, ys[1]))
        return reshape(transpose(matmul(x, transpose(cols, (1, 0))), (1, 0)),
                       (size, xs[0], 1)), 0
    return batched_matmul(x, y), 0


batching_rules["matmul"] = _matmul_batch


def batched_matmul(x, y):
    """``x @ y`` over leading batch axes, which an operand of lower rank shares with the other
    (it is broadcast along them: a view, which the CPU lowering reads without a copy)."""
    xs, ys = get_aval(x).shape, get_aval(y).shape
    if len(xs) < len(ys):
        x = broadcast_in_dim(x, (*ys[:-2], *xs[-2:]), range(len(ys) - len(xs), len(ys)))
    elif len(ys) < len(xs):
        y = broadcast_in_dim(y, (*xs[:-2], *ys[-2:]), range(len(xs) - len(ys), len(xs)))
    return matmul(x, y)
