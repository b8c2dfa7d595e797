"""Gather and scatter-add along one axis with an integer index array.

Indices are wrapped (negative counts from the end) and then clamped into range, so a compiled
kernel never reads or writes out of bounds; adjit.numpy checks concrete indices eagerly.
"""

from __future__ import annotations

import numpy as np

from adjit.errors import AdjitTypeError
from adjit.ir.graph import ShapedArray, same_shape
from adjit.primitives.registry import Zero, defjvp, defjvp_full, defprim, deftranspose, is_linear
from adjit.primitives.structural import bind, instantiate, zeros_like_aval
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
        lambda x, idx, *, axis: np.take(x, _clamped(idx, x.shape[axis]), axis=axis))
defjvp("take", lambda t, x, idx, *, axis, **_: take(t, idx, axis), None)
deftranspose("take", lambda ct, x, idx, *, axis: [
    scatter_add(zeros_like_aval(x.aval), idx, ct, axis), None])


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
