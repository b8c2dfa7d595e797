"""NumPy indexing on traced arrays: integers, slices (with steps), None, Ellipsis and integer
arrays, built from slice, reshape, transpose and take. ``x.at[idx]`` updates are the transpose
of the same indexing, so they agree with it by construction."""

from __future__ import annotations

import numpy as np

from adjit.ad.transpose import vjp_eval
from adjit.errors import AdjitTypeError, AdjitValueError
from adjit.ir.graph import Dim, dim_add, dim_sub, is_symbolic
from adjit.numpy import core as anp
from adjit.primitives import indexing as ix
from adjit.primitives import structural as st
from adjit.trace import Tracer, get_aval, trace_to_graph


def _is_array_index(entry) -> bool:
    if isinstance(entry, Tracer):
        return True
    if isinstance(entry, (list, np.ndarray)):
        return True
    return False


def _normalize(idx, ndim):
    entries = list(idx) if isinstance(idx, tuple) else [idx]
    if sum(e is Ellipsis for e in entries) > 1:
        raise AdjitValueError("adjit: an index can only have a single ellipsis ('...')")
    used = sum(1 for e in entries if e is not None and e is not Ellipsis)
    if used > ndim:
        raise AdjitValueError(f"adjit: too many indices ({used}) for an array of rank {ndim}")
    if Ellipsis in [e for e in entries if not _is_array_index(e)]:
        at = next(i for i, e in enumerate(entries) if e is Ellipsis and not _is_array_index(e))
        entries[at:at + 1] = [slice(None)] * (ndim - used)
    # The axes no entry consumed (all of them already, if there was an ellipsis) stay whole.
    consumed = sum(1 for e in entries if e is not None)
    entries += [slice(None)] * (ndim - consumed)
    return entries


def _int_position(i, n):
    """The start of integer index ``i`` on an axis of length ``n`` (maybe symbolic)."""
    i = int(i)
    # A symbol stands for a length >= 2 (longer inputs retrace), so -2..1 fit every length it
    # can take; any other index reads the length, which fixes it in the trace.
    if is_symbolic(n) and -2 <= i < 2:
        return dim_add(n, i) if i < 0 else i
    n = int(n)
    if not -n <= i < n:
        raise AdjitValueError(f"adjit: index {i} is out of bounds for an axis of length {n}")
    return i % n


def _slice_bounds(s: slice, n):
    """(start, limit, step) for a slice of an axis of length n; symbolic n when step is 1."""
    step = 1 if s.step is None else int(s.step)
    if step == 0:
        raise AdjitValueError("adjit: slice step cannot be zero")
    if is_symbolic(n) and step == 1 and _symbolic_ok(s.start) and _symbolic_ok(s.stop):
        start = 0 if s.start is None else (dim_add(n, s.start) if s.start < 0 else s.start)
        stop = n if s.stop is None else (dim_add(n, s.stop) if s.stop < 0 else s.stop)
        if isinstance(start, int) and isinstance(stop, Dim) or (
                isinstance(start, Dim) and isinstance(stop, Dim)):
            # n-1 and n-2 are never negative (symbols stand for lengths >= 2), so they keep n
            # symbolic; any other length is checked against the traced one, which fixes it.
            length = dim_sub(stop, start)
            if is_symbolic(length) and length.offset >= -2 or int(length) >= 0:
                return start, stop, 1
    start, stop, step = slice(s.start, s.stop, step).indices(int(n))
    if step > 0 and stop < start:  # x[3:1] is empty, not of length -2
        stop = start
    return start, stop, step


def _symbolic_ok(bound) -> bool:
    # A bound counted from the end keeps the length symbolic; a positive stop fixes it.
    return bound is None or isinstance(bound, int)


def getitem(x, idx):
    x_aval = get_aval(x)
    entries = _normalize(idx, x_aval.ndim)
    if any(_is_array_index(e) for e in entries):
        return _advanced(x, entries)
    starts, limits, strides, out_shape, reversed_axes = [], [], [], [], []
    axis = 0
    for e in entries:
        if e is None:
            out_shape.append(1)
            continue
        n = x_aval.shape[axis]
        if isinstance(e, slice):
            start, stop, step = _slice_bounds(e, n)
            if step < 0:
                reversed_axes.append(axis)
                # Read the same elements forwards, then reverse them with a gather.
                count = len(range(start, stop, step))
                start, stop, step = start + (count - 1) * step if count else 0, start + 1, -step
                if not count:
                    stop = 0
            starts.append(start)
            limits.append(stop)
            strides.append(step)
            out_shape.append(st._slice_length(start, stop, step) if step != 1
                             else dim_sub(stop, start))
        elif isinstance(e, (int, np.integer)) and not isinstance(e, bool):
            start = _int_position(e, n)
            starts.append(start)
            limits.append(dim_add(start, 1))
            strides.append(1)
        else:
            raise AdjitTypeError(f"adjit: unsupported index {e!r} of type {type(e).__name__}")
        axis += 1
    out = st.slice_p(x, starts, limits, strides)
    sliced_shape = get_aval(out).shape
    for a in reversed_axes:
        length = int(sliced_shape[a])
        out = ix.take(out, np.arange(length - 1, -1, -1, dtype=np.int64), a)
    return st.reshape(out, out_shape)


def _advanced(x, entries):
    if any(e is None for e in entries):
        raise AdjitValueError("adjit: None cannot be combined with integer-array indexing")
    # First the basic part: slices and integers on their axes, arrays keep their axis whole.
    basic = [slice(None) if _is_array_index(e) else e for e in entries]
    x = getitem(x, tuple(basic))
    remaining = [e for e in entries if not isinstance(e, (int, np.integer))]
    array_axes = [i for i, e in enumerate(remaining) if _is_array_index(e)]
    arrays = []
    for e in (remaining[i] for i in array_axes):
        arr = anp.asarray(e)
        if get_aval(arr).dtype == np.bool_:
            if isinstance(arr, Tracer):
                raise AdjitTypeError("adjit: boolean-mask indexing with a traced mask has a "
                                     "data-dependent shape; use anp.where(mask, x, 0) instead")
            arr = np.nonzero(arr)[0]
        if get_aval(arr).dtype.kind not in "iu":
            raise AdjitTypeError(f"adjit: array indices must be integers, got {get_aval(arr)}")
        arrays.append(anp.astype(arr, np.int64))
    shape = get_aval(x).shape
    if len(arrays) == 1:
        flat_index, axis = arrays[0], array_axes[0]
        flat_index = anp.where(anp.less(flat_index, 0), anp.add(flat_index, shape[axis]),
                               flat_index)
        return ix.take(x, flat_index, axis)
    # Several arrays: move their axes to the front, merge them, and gather with a flat index.
    adjacent = array_axes == list(range(array_axes[0], array_axes[-1] + 1))
    rest = [i for i in range(len(shape)) if i not in array_axes]
    moved = st.transpose(x, array_axes + rest)
    lengths = [int(shape[i]) for i in array_axes]
    merged = st.reshape(moved, (int(np.prod(lengths)), *[shape[i] for i in rest]))
    flat_index = 0
    for arr, n in zip(arrays, lengths):
        arr = anp.where(anp.less(arr, 0), anp.add(arr, n), arr)
        flat_index = anp.add(anp.multiply(flat_index, n), arr)
    out = ix.take(merged, flat_index, 0)
    if adjacent and array_axes[0] != 0:
        k = get_aval(flat_index).ndim
        perm = list(range(k, k + array_axes[0])) + list(range(k)) + list(
            range(k + array_axes[0], get_aval(out).ndim))
        out = st.transpose(out, perm)
    return out


class IndexUpdateHelper:
    """``x.at[idx].set(v)`` and friends: functional updates that return a new array."""

    def __init__(self, x):
        self.x = x

    def __getitem__(self, idx):
        return IndexUpdate(self.x, idx)


class IndexUpdate:
    """``x.at[idx]``: ``set``, ``add``, ``multiply``, ``get`` return new arrays."""

    def __init__(self, x, idx):
        self.x = x
        self.idx = idx

    def get(self):
        return getitem(self.x, self.idx)

    def _scatter(self, values):
        """Add ``values`` (the shape of x[idx]) into zeros shaped like x: the transpose of
        indexing, so repeated indices accumulate."""
        x_aval = get_aval(self.x)
        graph, consts = trace_to_graph(lambda x: [getitem(x, self.idx)], [x_aval])
        target = graph.outvars[0].aval
        values = anp.broadcast_to(anp.astype(values, x_aval.dtype), target.shape)
        _, backward = vjp_eval(graph, consts, [self.x], [True])
        (scattered,) = backward([values])
        return st.instantiate(scattered)

    def add(self, values):
        return anp.add(self.x, self._scatter(values))

    def set(self, values):
        count = self._scatter(anp.ones_like(getitem(self.x, self.idx)))
        written = anp.greater(count, 0)
        # Where an index repeats, the written values are averaged (JAX leaves this unspecified).
        update = anp.divide(self._scatter(values), anp.where(written, count, 1.0))
        return anp.where(written, update, self.x)

    def multiply(self, values):
        # Unwritten positions get factor 1: (x * v at idx) without touching the rest.
        factor = anp.add(self._scatter(anp.subtract(values, 1.0)), 1.0)
        return anp.multiply(self.x, factor)
