"""Reductions over axes (``reduce_sum`` lives with the structural primitives it transposes to)."""

from __future__ import annotations

import numpy as np

from adjit.errors import AdjitValueError
from adjit.ir.graph import ShapedArray
from adjit.primitives.elementwise import convert_element_type, div, eq, mul
from adjit.primitives.registry import (
    Zero,
    defbatch_params,
    defjvp,
    defjvp_full,
    deflinear,
    defnondiff,
    defprim,
    real_only,
)
from adjit.primitives.structural import (
    _reduce_abstract,
    bind,
    broadcast_in_dim,
    instantiate,
    reduce_sum,
)
from adjit.trace import get_aval


def _reduction(name):
    def apply(x, axes):
        axes = tuple(sorted(set(axes)))
        return bind(name, x, axes=axes) if axes else x

    apply.__name__ = name
    return apply


def _expand_back(out, x, axes):
    """Broadcast a reduction's result back over the reduced axes of ``x``."""
    shape = get_aval(x).shape
    return broadcast_in_dim(out, shape, tuple(i for i in range(len(shape)) if i not in axes))


def _shift_axes(*, axes):
    """Batching: the reduced axes, one further along past the leading batch axis."""
    return {"axes": tuple(a + 1 for a in axes)}


# --------------------------------------------------------------------------- max, min
# The tangent is the mean of the tangents at the positions that attain the extremum.


def _extremum_jvp(name):
    def jvp(primals, tangents, *, axes):
        (x,), (t,) = primals, tangents
        out = bind(name, x, axes=axes)
        if isinstance(t, Zero):
            return out, Zero(get_aval(out))
        mask = convert_element_type(eq(x, _expand_back(out, x, axes)), get_aval(x).dtype)
        count = reduce_sum(mask, axes)
        return out, div(reduce_sum(mul(t, mask), axes), count)

    return jvp


def _nonempty(what, x, axes):
    # NumPy raises for these too: a maximum over nothing has no value (and the kernel's
    # loop would return its -inf start). Lengths 0 and 1 are never symbolic, so this is known.
    if any(isinstance(x.shape[a], int) and x.shape[a] == 0 for a in axes):
        raise AdjitValueError(f"adjit: {what} of a zero-size array {x} along axes "
                              f"{tuple(axes)}: NumPy has no value for it either")


def _extremum_abstract(what):
    def abstract(x, *, axes):
        real_only(what, x)
        _nonempty(what, x, axes)
        return _reduce_abstract(x, axes=axes)

    return abstract


reduce_max = _reduction("reduce_max")
defprim("reduce_max", _extremum_abstract("max"), lambda x, *, axes: np.max(x, axis=axes),
        kind="reduction")
defjvp_full("reduce_max", _extremum_jvp("reduce_max"))
defbatch_params("reduce_max", _shift_axes)

reduce_min = _reduction("reduce_min")
defprim("reduce_min", _extremum_abstract("min"), lambda x, *, axes: np.min(x, axis=axes),
        kind="reduction")
defjvp_full("reduce_min", _extremum_jvp("reduce_min"))
defbatch_params("reduce_min", _shift_axes)

# --------------------------------------------------------------------------- prod
# d prod = prod * sum(t / x): exact wherever no factor is zero (a known limit, see the docs).

reduce_prod = _reduction("reduce_prod")
defprim("reduce_prod", _reduce_abstract, lambda x, *, axes: np.prod(x, axis=axes), kind="reduction")
defjvp("reduce_prod", lambda t, x, *, axes, out:
       mul(out, reduce_sum(div(t, x), axes)))
defbatch_params("reduce_prod", _shift_axes)

# --------------------------------------------------------------------------- argmax, argmin


def _arg_abstract(x, *, axis):
    real_only("argmax/argmin", x)
    _nonempty("argmax/argmin", x, (axis,))
    return ShapedArray([d for i, d in enumerate(x.shape) if i != axis], np.int64)


def argmax(x, axis):
    return bind("argmax", x, axis=axis)


def argmin(x, axis):
    return bind("argmin", x, axis=axis)


defprim("argmax", _arg_abstract, lambda x, *, axis: np.argmax(x, axis=axis).astype(np.int64))
defnondiff("argmax")
defprim("argmin", _arg_abstract, lambda x, *, axis: np.argmin(x, axis=axis).astype(np.int64))
defnondiff("argmin")
defbatch_params("argmax", lambda *, axis: {"axis": axis + 1})
defbatch_params("argmin", lambda *, axis: {"axis": axis + 1})

# --------------------------------------------------------------------------- cumsum
# Inclusive running sum along one axis; its transpose runs the other way.


def cumsum(x, axis, reverse=False):
    return bind("cumsum", x, axis=axis, reverse=reverse)


def _cumsum_impl(x, *, axis, reverse):
    if reverse:
        return np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis)
    return np.cumsum(x, axis=axis)


defprim("cumsum", lambda x, *, axis, reverse: x, _cumsum_impl)
deflinear("cumsum", lambda ct, x, *, axis, reverse: [cumsum(ct, axis, not reverse)])
defbatch_params("cumsum", lambda *, axis, reverse: {"axis": axis + 1, "reverse": reverse})

__all__ = ["argmax", "argmin", "cumsum", "instantiate", "reduce_max", "reduce_min",
           "reduce_prod"]
