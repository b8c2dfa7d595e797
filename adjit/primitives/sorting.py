"""Sorting along one axis. ``sort``'s derivative permutes the tangent the way the values were
permuted: ``argsort`` gives the permutation and a gather applies it."""

from __future__ import annotations

import numpy as np

from adjit.errors import AdjitValueError
from adjit.ir.graph import ShapedArray
from adjit.primitives.indexing import take
from adjit.primitives.registry import (
    Zero,
    defbatch_params,
    defjvp_full,
    defnondiff,
    defprim,
    real_only,
)
from adjit.primitives.structural import bind, broadcast_in_dim, iota, reshape
from adjit.trace import get_aval


def sort(x, axis):
    return bind("sort", x, axis=axis)


def argsort(x, axis):
    return bind("argsort", x, axis=axis)


def take_along_axis(x, idx, axis):
    """``out[..., i, ...] = x[..., idx[..., i, ...], ...]`` for ``idx`` shaped like ``x``: one
    gather from x flattened, at the flat (row-major) position of each element."""
    from adjit.primitives.elementwise import add, mul

    shape = get_aval(x).shape
    if len(shape) == 1:
        return take(x, idx, 0)
    # Flattening reads the lengths, so the graph is traced for them (a guard, as for batched
    # gathers): correct, only less general.
    lengths = [int(d) for d in shape]
    strides = [int(np.prod(lengths[k + 1:])) for k in range(len(shape))]

    def scaled(v, stride):
        return mul(v, broadcast_in_dim(np.asarray(stride, np.int64), lengths, ()))

    flat = scaled(idx, strides[axis])
    for k in range(len(shape)):
        if k != axis:
            flat = add(flat, scaled(iota(np.int64, lengths, k), strides[k]))
    return take(reshape(x, (int(np.prod(lengths)),)), flat, 0)


def _sort_abstract(x, *, axis):
    real_only("sort", x)
    if x.ndim == 0 or not 0 <= axis < x.ndim:
        raise AdjitValueError(f"sort: axis {axis} does not fit {x}")
    return x


def _sort_jvp(primals, tangents, *, axis):
    (x,), (t,) = primals, tangents
    out = sort(x, axis)
    if isinstance(t, Zero):
        return out, Zero(get_aval(out))
    return out, take_along_axis(t, argsort(x, axis), axis)


# A stable sort, so equal values keep their order and sort and argsort agree.
defprim("sort", _sort_abstract, lambda x, *, axis: np.sort(x, axis=axis, kind="stable"))
defjvp_full("sort", _sort_jvp)
defbatch_params("sort", lambda *, axis: {"axis": axis + 1})

defprim("argsort", lambda x, *, axis: ShapedArray(_sort_abstract(x, axis=axis).shape, np.int64),
        lambda x, *, axis: np.argsort(x, axis=axis, kind="stable").astype(np.int64))
defnondiff("argsort")
defbatch_params("argsort", lambda *, axis: {"axis": axis + 1})

__all__ = ["argsort", "sort", "take_along_axis"]
