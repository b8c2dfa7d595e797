"""Gather and scatter-add along one axis with an integer index array.

Indices are wrapped (negative counts from the end) and then clamped into range, so a compiled
kernel never reads or writes out of bounds; adjit.numpy checks concrete indices eagerly.
"""

from __future__ import annotations

import numpy as np

from adjit.errors import AdjitTypeError
from adjit.ir.graph import ShapedArray, is_symbolic, same_shape
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
from adjit.primitives.structural import (
    bind,
    broadcast_in_dim,
    instantiate,
    iota,
    reshape,
    shape_size,
    transpose,
    zeros_like_aval,
)
from adjit.trace import get_aval


def take(x, idx, axis):
    return bind("take", x, idx, axis=axis)


def scatter_add(x, idx, updates, axis):
    return bind("scatter_add", x, idx, updates, axis=axis)


def _clamped(idx, n):
    idx = np.where(idx < 0, idx + n, idx)
    return np.clip(idx, 0, max(n - 1, 0))


def _gathered_shape(x, idx, axis):
    return (*x.shape[:axis], *idx.shape, *x.shape[axis + 1:])


def _take_abstract(x, idx, *, axis):
    if idx.dtype.kind not in "iu":
        raise AdjitTypeError(f"take: indices must be integers, got {idx}")
    return ShapedArray(_gathered_shape(x, idx, axis), x.dtype)


defprim("take", _take_abstract,
        lambda x, idx, *, axis: np.take(x, _clamped(idx, x.shape[axis]), axis=axis), kind="gather")
defjvp("take", lambda t, x, idx, *, axis, **_: take(t, idx, axis), None)
deftranspose("take", lambda ct, x, idx, *, axis: [
    scatter_add(zeros_like_aval(x.aval), idx, ct, axis), None])


def _take_batch(args, dims, *, axis):
    (x, idx), (dx, di) = args, dims
    if di is None:
        return take(x, idx, axis + 1), 0
    if dx is None:
        out = take(x, idx, axis)  # the batch axis of idx lands at ``axis``
        ndim = get_aval(out).ndim
        return transpose(out, (axis, *range(axis), *range(axis + 1, ndim))), 0
    x_flat, idx_flat, _ = _merge_batch(x, idx, axis)
    out = take(x_flat, idx_flat, 0)  # (B, *idx, *before, *after); the idx axes go back in place
    ni, ndim = get_aval(idx).ndim - 1, get_aval(out).ndim
    return transpose(out, (0, *range(ni + 1, ni + 1 + axis), *range(1, ni + 1),
                           *range(ni + 1 + axis, ndim))), 0


def _merge_batch(x, idx, axis):
    """Batched x and idx as one gather along axis 0 of x with the batch and ``axis`` merged:
    (B, *before, n, *after) -> (B*n, *before, *after), idx -> b*n + idx (wrapped, clamped)."""
    from adjit.primitives.elementwise import add, lt, max_p, min_p, mul, select

    shape = get_aval(x).shape
    size, n, ndim = shape[0], shape[axis + 1], len(shape)
    perm = (0, axis + 1, *range(1, axis + 1), *range(axis + 2, ndim))
    # Merging reads both lengths, so a graph with a per-example gather is traced for this batch
    # size (a guard, then a retrace): correct, only less general.
    merged = (int(size) * int(n), *shape[1:axis + 1], *shape[axis + 2:])
    x_flat = reshape(transpose(x, perm), merged)
    ia = get_aval(idx)

    def full(v):
        v = shape_size((v,), ia.dtype) if is_symbolic(v) else np.asarray(v, ia.dtype)
        return broadcast_in_dim(v, ia.shape, ())

    idx = select(lt(idx, full(0)), add(idx, full(n)), idx)
    idx = max_p(min_p(idx, full(n - 1)), full(0))
    offsets = mul(iota(ia.dtype, ia.shape, 0), full(n))
    return x_flat, add(idx, offsets), perm


def _scatter_add_batch(args, dims, *, axis):
    x, idx, updates = args
    if dims[1] is None:
        x, updates = batch_all([x, updates], [dims[0], dims[2]])
        return scatter_add(x, idx, updates, axis + 1), 0
    x, idx, updates = batch_all(args, dims)
    shape = get_aval(x).shape
    x_flat, idx_flat, perm = _merge_batch(x, idx, axis)
    ni, nu = get_aval(idx).ndim - 1, get_aval(updates).ndim
    updates = transpose(updates, (0, *range(axis + 1, axis + 1 + ni), *range(1, axis + 1),
                                  *range(axis + 1 + ni, nu)))
    out = scatter_add(x_flat, idx_flat, updates, 0)
    out = reshape(out, [shape[p] for p in perm])
    return transpose(out, np.argsort(perm).tolist()), 0


batching_rules["take"] = _take_batch


def _scatter_add_abstract(x, idx, updates, *, axis):
    _take_abstract(x, idx, axis=axis)
    if not same_shape(updates.shape, _gathered_shape(x, idx, axis)) or updates.dtype != x.dtype:
        raise AdjitTypeError(f"scatter_add: updates {updates} do not fit {x} at {idx}")
    return x


def _scatter_add_impl(x, idx, updates, *, axis):
    out = np.array(x, copy=True)
    np.add.at(out, (slice(None),) * axis + (_clamped(idx, x.shape[axis]),), updates)
    return out


def _scatter_add_jvp(primals, tangents, *, axis):
    x, idx, updates = primals
    out = scatter_add(x, idx, updates, axis)
    t_x, _, t_updates = tangents
    if isinstance(t_x, Zero) and isinstance(t_updates, Zero):
        return out, Zero(get_aval(out))
    return out, scatter_add(instantiate(t_x), idx, instantiate(t_updates), axis)


defprim("scatter_add", _scatter_add_abstract, _scatter_add_impl)
defjvp_full("scatter_add", _scatter_add_jvp)
deftranspose("scatter_add", lambda ct, x, idx, updates, *, axis: [
    ct if is_linear(x) else None, None,
    take(ct, idx, axis) if is_linear(updates) else None])
batching_rules["scatter_add"] = _scatter_add_batch
