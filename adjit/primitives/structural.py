"""Primitives that move, copy or sum data without arithmetic on it. All are linear."""

from __future__ import annotations

import math

import numpy as np

from adjit.errors import AdjitValueError
from adjit.ir.graph import Dim, ShapedArray, dim_add, dim_sub, is_symbolic, same_shape
from adjit.primitives.registry import (  # noqa: F401  (add_tangents..: the names users import)
    Zero,
    add_tangents,
    batch_all,
    batch_size,
    batching_rules,
    defbatch_params,
    deflinear,
    defnondiff,
    defprim,
    instantiate,
    is_linear,
    zeros_like_aval,
)
from adjit.trace import bind, get_aval

# --------------------------------------------------------------------------- helpers


def _dims_match(a, b) -> bool:
    return same_shape((a,), (b,)) or (not is_symbolic(a) and not is_symbolic(b) and a == b)


# --------------------------------------------------------------------------- broadcast_in_dim
# out[idx] = x[idx at broadcast_dimensions], where x's length-1 axes repeat.


def broadcast_in_dim(x, shape, broadcast_dimensions):
    shape, dims = tuple(shape), tuple(broadcast_dimensions)
    aval = get_aval(x)
    if same_shape(aval.shape, shape) and dims == tuple(range(len(shape))):
        return x
    return bind("broadcast_in_dim", x, shape=shape, broadcast_dimensions=dims)


def materialize(x):
    """A scalar constant as the output of an equation (graph outputs are variables)."""
    return bind("broadcast_in_dim", x, shape=(), broadcast_dimensions=())


def _broadcast_in_dim_abstract(x, *, shape, broadcast_dimensions):
    if len(broadcast_dimensions) != x.ndim:
        raise AdjitValueError(f"broadcast_in_dim: {x} needs {x.ndim} broadcast dimensions")
    for i, d in enumerate(broadcast_dimensions):
        # is_symbolic first: ``Dim == 1`` reads the length and would pin it in the trace.
        if not (not is_symbolic(x.shape[i]) and x.shape[i] == 1) and not _dims_match(
            x.shape[i], shape[d]
        ):
            raise AdjitValueError(f"broadcast_in_dim: cannot broadcast {x} to {list(shape)}")
    return ShapedArray(shape, x.dtype)


def _broadcast_in_dim_impl(x, *, shape, broadcast_dimensions):
    expanded = np.reshape(x, [x.shape[broadcast_dimensions.index(i)] if i in broadcast_dimensions
                              else 1 for i in range(len(shape))])
    return np.broadcast_to(expanded, shape).copy()


def _broadcast_in_dim_transpose(ct, x, *, shape, broadcast_dimensions):
    in_shape = x.aval.shape
    summed = tuple(i for i in range(len(shape)) if i not in broadcast_dimensions)
    ones = tuple(i for i, d in enumerate(broadcast_dimensions)
                 if not is_symbolic(in_shape[i]) and in_shape[i] == 1 and not (
                     not is_symbolic(shape[d]) and shape[d] == 1))
    out = reduce_sum(ct, summed + tuple(broadcast_dimensions[i] for i in ones))
    return [reshape(out, in_shape)]


defprim("broadcast_in_dim", _broadcast_in_dim_abstract, _broadcast_in_dim_impl, kind="view")
deflinear("broadcast_in_dim", _broadcast_in_dim_transpose)
batching_rules["broadcast_in_dim"] = lambda args, dims, *, shape, broadcast_dimensions: (
    bind("broadcast_in_dim", args[0], shape=(batch_size(args, dims), *shape),
         broadcast_dimensions=(0, *(d + 1 for d in broadcast_dimensions))), 0)


# --------------------------------------------------------------------------- reshape
# Row-major reinterpretation; with symbolic lengths only 1s may be inserted or removed.


def reshape(x, new_sizes):
    new_sizes = tuple(new_sizes)
    if same_shape(get_aval(x).shape, new_sizes):
        return x
    return bind("reshape", x, new_sizes=new_sizes)


def _non_unit(shape):
    return [d for d in shape if is_symbolic(d) or d != 1]


def _reshape_abstract(x, *, new_sizes):
    if not same_shape(_non_unit(x.shape), _non_unit(new_sizes)):
        old = math.prod(int(d) for d in x.shape)
        new = math.prod(int(d) for d in new_sizes)
        if old != new:
            raise AdjitValueError(f"cannot reshape an array of shape {x.shape} into {new_sizes}")
    return ShapedArray(new_sizes, x.dtype)


defprim("reshape", _reshape_abstract, lambda x, *, new_sizes: np.reshape(x, new_sizes))
deflinear("reshape", lambda ct, x, *, new_sizes: [reshape(ct, x.aval.shape)])
batching_rules["reshape"] = lambda args, dims, *, new_sizes: (
    reshape(args[0], (batch_size(args, dims), *new_sizes)), 0)


# --------------------------------------------------------------------------- transpose


def transpose(x, permutation):
    permutation = tuple(permutation)
    if permutation == tuple(range(len(permutation))):
        return x
    return bind("transpose", x, permutation=permutation)


def _transpose_abstract(x, *, permutation):
    if sorted(permutation) != list(range(x.ndim)):
        raise AdjitValueError(f"transpose: {permutation} is not a permutation of {x.ndim} axes")
    return ShapedArray([x.shape[p] for p in permutation], x.dtype)


defprim("transpose", _transpose_abstract, lambda x, *, permutation: np.transpose(x, permutation),
        kind="view")
deflinear("transpose", lambda ct, x, *, permutation:
          [transpose(ct, np.argsort(permutation).tolist())])
defbatch_params("transpose", lambda *, permutation: {
    "permutation": (0, *(p + 1 for p in permutation))})


# --------------------------------------------------------------------------- reduce_sum


def reduce_sum(x, axes):
    axes = tuple(sorted(set(axes)))
    if not axes:
        return x
    return bind("reduce_sum", x, axes=axes)


def _reduce_abstract(x, *, axes):
    if any(a < 0 or a >= x.ndim for a in axes):
        raise AdjitValueError(f"axis {axes} is out of bounds for an array of rank {x.ndim}")
    return ShapedArray([d for i, d in enumerate(x.shape) if i not in axes], x.dtype)


def _reduce_sum_transpose(ct, x, *, axes):
    kept = tuple(i for i in range(x.aval.ndim) if i not in axes)
    return [broadcast_in_dim(ct, x.aval.shape, kept)]


defprim("reduce_sum", _reduce_abstract, lambda x, *, axes: np.sum(x, axis=axes), kind="reduction")
deflinear("reduce_sum", _reduce_sum_transpose)
defbatch_params("reduce_sum", lambda *, axes: {"axes": tuple(a + 1 for a in axes)})


# --------------------------------------------------------------------------- slice
# out = x[start:limit:stride] along every axis.


def slice_p(x, start_indices, limit_indices, strides=None):
    aval = get_aval(x)
    strides = tuple(strides) if strides is not None else (1,) * aval.ndim
    if all(not is_symbolic(s) and s == 0 for s in start_indices) and same_shape(
        tuple(limit_indices), aval.shape) and all(s == 1 for s in strides):
        return x
    return bind("slice", x, start_indices=tuple(start_indices),
                limit_indices=tuple(limit_indices), strides=strides)


def _slice_length(start, limit, stride):
    extent = dim_sub(limit, start)
    if stride == 1:
        return extent
    extent = int(extent)
    return max(0, -(-extent // stride))


def _slice_abstract(x, *, start_indices, limit_indices, strides):
    shape = [_slice_length(s, lim, st) for s, lim, st in zip(start_indices, limit_indices, strides)]
    return ShapedArray(shape, x.dtype)


def _slice_impl(x, *, start_indices, limit_indices, strides):
    return x[tuple(slice(s, lim, st) for s, lim, st in zip(start_indices, limit_indices, strides))]


def _slice_transpose(ct, x, *, start_indices, limit_indices, strides):
    in_shape = x.aval.shape
    out_shape = get_aval(ct).shape
    lo, hi, interior = [], [], []
    for n, s, st, m in zip(in_shape, start_indices, strides, out_shape):
        # The last element the slice read, plus one: what lies after it is padding.
        used = dim_add(s, m) if st == 1 else int(s) + (int(m) - 1) * st + 1 if int(m) else s
        lo.append(s)
        hi.append(dim_sub(n, used))
        interior.append(st - 1)
    return [pad(ct, tuple(lo), tuple(hi), tuple(interior))]


defprim("slice", _slice_abstract, _slice_impl, kind="view")
deflinear("slice", _slice_transpose)
batching_rules["slice"] = lambda args, dims, *, start_indices, limit_indices, strides: (
    bind("slice", args[0], start_indices=(0, *start_indices),
         limit_indices=(batch_size(args, dims), *limit_indices), strides=(1, *strides)), 0)


# --------------------------------------------------------------------------- pad
# Zeros around (lo, hi) and between (interior) the elements of every axis.


def pad(x, lo, hi, interior):
    return bind("pad", x, lo=tuple(lo), hi=tuple(hi), interior=tuple(interior))


def _pad_abstract(x, *, lo, hi, interior):
    shape = []
    for n, a, b, k in zip(x.shape, lo, hi, interior):
        body = n if k == 0 else (int(n) - 1) * (k + 1) + 1 if int(n) > 0 else 0
        shape.append(dim_add(dim_add(a, body), b))
    return ShapedArray(shape, x.dtype)


def _pad_impl(x, *, lo, hi, interior):
    shape = _pad_abstract(get_aval(x), lo=lo, hi=hi, interior=interior).shape
    out = np.zeros(shape, x.dtype)
    out[tuple(slice(a, a + (int(n) - 1) * (k + 1) + 1 if int(n) else a, k + 1)
              for a, n, k in zip(lo, x.shape, interior))] = x
    return out


def _pad_transpose(ct, x, *, lo, hi, interior):
    shape = get_aval(ct).shape
    limits = [dim_sub(n, b) for n, b in zip(shape, hi)]
    return [slice_p(ct, lo, limits, [k + 1 for k in interior])]


defprim("pad", _pad_abstract, _pad_impl)
deflinear("pad", _pad_transpose)
defbatch_params("pad", lambda *, lo, hi, interior: {
    "lo": (0, *lo), "hi": (0, *hi), "interior": (0, *interior)})


# --------------------------------------------------------------------------- concatenate


def concatenate(xs, dimension):
    if len(xs) == 1:
        return xs[0]
    return bind("concatenate", *xs, dimension=dimension)


def _concatenate_abstract(*xs, dimension):
    first = xs[0]
    for x in xs[1:]:
        if x.ndim != first.ndim or x.dtype != first.dtype or not all(
            _dims_match(a, b) for i, (a, b) in enumerate(zip(x.shape, first.shape))
            if i != dimension
        ):
            raise AdjitValueError(
                f"concatenate: arrays {list(xs)} must match except along axis {dimension}")
    length = 0
    for x in xs:
        length = dim_add(length, x.shape[dimension])
    shape = list(first.shape)
    shape[dimension] = length
    return ShapedArray(shape, first.dtype)


def _concatenate_transpose(ct, *xs, dimension):
    cts, start = [], 0
    shape = get_aval(ct).shape
    for x in xs:
        stop = dim_add(start, x.aval.shape[dimension])
        if is_linear(x):
            starts = [0] * len(shape)
            limits = list(shape)
            starts[dimension], limits[dimension] = start, stop
            cts.append(slice_p(ct, starts, limits))
        else:
            cts.append(None)
        start = stop
    return cts


defprim("concatenate", _concatenate_abstract,
        lambda *xs, dimension: np.concatenate(xs, axis=dimension))
deflinear("concatenate", _concatenate_transpose)
batching_rules["concatenate"] = lambda args, dims, *, dimension: (
    bind("concatenate", *batch_all(args, dims), dimension=dimension + 1), 0)


# --------------------------------------------------------------------------- iota
# out[idx] = idx[dimension], the building block of arange, eye and masks.


def iota(dtype, shape, dimension):
    return bind("iota", dtype=np.dtype(dtype), shape=tuple(shape), dimension=dimension)


def _iota_impl(*, dtype, shape, dimension):
    index = np.arange(shape[dimension], dtype=dtype)
    return np.broadcast_to(
        index.reshape([-1 if i == dimension else 1 for i in range(len(shape))]), shape).copy()


defprim("iota", lambda *, dtype, shape, dimension: ShapedArray(shape, dtype), _iota_impl,
        kind="gather")
defnondiff("iota")
batching_rules["iota"] = lambda args, dims, **params: (bind("iota", **params), None)  # no inputs


# --------------------------------------------------------------------------- shape_size
# The number of elements of a (possibly symbolic) shape, as a scalar: a mean's n at run time.


def shape_size(dims, dtype):
    if not any(is_symbolic(d) for d in dims):
        return np.asarray(math.prod(dims), dtype)
    return bind("shape_size", dims=tuple(dims), dtype=np.dtype(dtype))


defprim("shape_size", lambda *, dims, dtype: ShapedArray((), dtype),
        lambda *, dims, dtype: np.asarray(math.prod(dims), dtype))
defnondiff("shape_size")
batching_rules["shape_size"] = lambda args, dims, **params: (bind("shape_size", **params), None)


__all__ = [
    "Dim", "add_tangents", "bind", "broadcast_in_dim", "concatenate", "instantiate", "iota",
    "materialize", "pad", "reduce_sum", "reshape", "shape_size", "slice_p", "transpose",
    "zeros_like_aval",
]
