"""NumPy's shape functions, built from existing primitives (slice, pad, concatenate, take,
transpose, reshape, broadcasting, select) so their derivatives and batching come from those
primitives' rules: splitting, triangles and diagonals, rolling, repeating, tiling, flipping,
products (tensordot, inner, kron, cross), ``r_``/``c_``, ``select``, ``pad`` and the angle
conversions. Index arrays and lengths are concrete here (read from shapes), as in NumPy.
"""

from __future__ import annotations

import builtins
import math
import operator

import numpy as np

from adjit.errors import AdjitTypeError, AdjitValueError
from adjit.numpy import core as anp
from adjit.numpy.indexing import getitem
from adjit.primitives import indexing as ix
from adjit.primitives import structural as st
from adjit.trace import Tracer, get_aval

# --------------------------------------------------------------------------- helpers


def _axis(axis, ndim, what):
    axis = operator.index(axis)
    if not -ndim <= axis < ndim:
        raise AdjitValueError(f"adjit.numpy.{what}: axis {axis} is out of bounds for an array "
                              f"of rank {ndim}")
    return axis % ndim


def _along(axis, ndim, index):
    """An index tuple applying ``index`` on ``axis`` and taking every other axis whole."""
    return (slice(None),) * axis + (index,) + (slice(None),) * (ndim - axis - 1)


def _length(x, axis) -> int:
    return int(anp.shape(x)[axis])


def _concrete_ints(value, what):
    if isinstance(value, Tracer):
        raise AdjitTypeError(f"adjit.numpy.{what} needs concrete integers here (they decide "
                             "the result's shape), got a traced array")
    return np.asarray(value)


def atleast_2d(a):
    x = anp.asarray(a)
    return anp.reshape(x, (1,) * (2 - anp.ndim(x)) + anp.shape(x)) if anp.ndim(x) < 2 else x


def atleast_3d(a):
    # NumPy's rule: a vector (n,) becomes (1, n, 1) and a matrix (m, n) becomes (m, n, 1).
    x = anp.asarray(a)
    shape = anp.shape(x)
    if len(shape) >= 3:
        return x
    return anp.reshape(x, {0: (1, 1, 1), 1: (1, *shape, 1), 2: (*shape, 1)}[len(shape)])


def dstack(tup):
    return anp.concatenate([atleast_3d(a) for a in tup], axis=2)


def column_stack(tup):
    return anp.concatenate([anp.reshape(a, (-1, 1)) if anp.ndim(a) < 2 else a for a in tup],
                           axis=1)


# --------------------------------------------------------------------------- splitting


def array_split(ary, indices_or_sections, axis=0):
    x = anp.asarray(ary)
    axis = _axis(axis, anp.ndim(x), "array_split")
    n = _length(x, axis)
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise AdjitValueError("adjit.numpy.array_split: number sections must be larger "
                                  "than 0")
        # NumPy's division: the first n % sections parts are one longer.
        size, extra = divmod(n, sections)
        bounds = [0]
        for i in range(sections):
            bounds.append(bounds[-1] + size + (i < extra))
    else:
        indices = [int(i) for i in _concrete_ints(indices_or_sections, "split")]
        bounds = [0, *indices, n]
    parts = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        # Python's slice rules: negative indices count from the end, out of range clamps.
        parts.append(getitem(x, _along(axis, anp.ndim(x), slice(start, stop))))
    return parts


def split(ary, indices_or_sections, axis=0):
    if isinstance(indices_or_sections, (int, np.integer)):
        x = anp.asarray(ary)
        n = _length(x, _axis(axis, anp.ndim(x), "split"))
        if indices_or_sections <= 0 or n % indices_or_sections:
            raise AdjitValueError("adjit.numpy.split: array split does not result in an equal "
                                  f"division ({n} into {indices_or_sections})")
    return array_split(ary, indices_or_sections, axis)


def hsplit(ary, indices_or_sections):
    if anp.ndim(ary) == 0:
        raise AdjitValueError("adjit.numpy.hsplit only works on arrays of 1 or more dimensions")
    return split(ary, indices_or_sections, 1 if anp.ndim(ary) > 1 else 0)


def vsplit(ary, indices_or_sections):
    if anp.ndim(ary) < 2:
        raise AdjitValueError("adjit.numpy.vsplit only works on arrays of 2 or more dimensions")
    return split(ary, indices_or_sections, 0)


def dsplit(ary, indices_or_sections):
    if anp.ndim(ary) < 3:
        raise AdjitValueError("adjit.numpy.dsplit only works on arrays of 3 or more dimensions")
    return split(ary, indices_or_sections, 2)


# --------------------------------------------------------------------------- triangles, diagonals


def tri(N, M=None, k=0, dtype=np.float64):
    M = N if M is None else M
    rows = st.iota(np.int64, (N, M), 0)
    cols = st.iota(np.int64, (N, M), 1)
    return anp.astype(anp.greater_equal(anp.add(rows, k), cols), dtype)


def _triangle(m, k, lower):
    x = anp.asarray(m)
    shape = anp.shape(x)
    if len(shape) == 0:
        raise AdjitValueError(f"adjit.numpy.{'tril' if lower else 'triu'} needs an array of "
                              "rank 1 or more")
    # NumPy's masks: tril keeps j <= i + k, triu keeps j >= i + k (a vector is one row).
    mask = tri(*shape[-2:], k=k if lower else k - 1, dtype=np.bool_)
    if not lower:
        mask = anp.logical_not(mask)
    return anp.where(mask, x, np.zeros((), get_aval(x).dtype))


def tril(m, k=0):
    return _triangle(m, operator.index(k), lower=True)


def triu(m, k=0):
    return _triangle(m, operator.index(k), lower=False)


def diagonal(a, offset=0, axis1=0, axis2=1):
    x = anp.asarray(a)
    nd = anp.ndim(x)
    if nd < 2:
        raise AdjitValueError("adjit.numpy.diagonal needs an array of rank 2 or more")
    axis1, axis2 = _axis(axis1, nd, "diagonal"), _axis(axis2, nd, "diagonal")
    if axis1 == axis2:
        raise AdjitValueError("adjit.numpy.diagonal: axis1 and axis2 cannot be the same")
    offset = operator.index(offset)
    x = anp.transpose(x, [i for i in range(nd) if i not in (axis1, axis2)] + [axis1, axis2])
    *lead, n, m = (int(d) for d in anp.shape(x))
    row, col = builtins.max(0, -offset), builtins.max(0, offset)
    count = builtins.max(0, builtins.min(n - row, m - col))
    # The diagonal of a row-major (n, m) block is every (m + 1)-th element of it, flattened.
    flat = anp.reshape(x, (*lead, n * m))
    start = row * m + col
    stop = start + (count - 1) * (m + 1) + 1 if count else start
    return getitem(flat, (Ellipsis, slice(start, stop, m + 1)))


def diag(v, k=0):
    x = anp.asarray(v)
    k = operator.index(k)
    if anp.ndim(x) == 2:
        return diagonal(x, k)
    if anp.ndim(x) != 1:
        raise AdjitValueError("adjit.numpy.diag: input must be 1- or 2-dimensional")
    n = _length(x, 0)
    size = n + builtins.abs(k)
    # Column j of the result holds v[j - k] (k >= 0) or v[j] (k < 0) on its diagonal cell.
    column_values = st.pad(x, (builtins.max(k, 0),), (builtins.max(-k, 0),), (0,))
    mask = anp.equal(anp.add(st.iota(np.int64, (size, size), 0), k),
                     st.iota(np.int64, (size, size), 1))
    return anp.where(mask, anp.reshape(column_values, (1, size)),
                     np.zeros((), get_aval(x).dtype))


def trace(a, offset=0, axis1=0, axis2=1, dtype=None):
    return anp.sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


# --------------------------------------------------------------------------- rearranging


def flip(m, axis=None):
    x = anp.asarray(m)
    nd = anp.ndim(x)
    axes = range(nd) if axis is None else anp._axes(axis, nd)
    index = [slice(None)] * nd
    for a in axes:
        index[a] = slice(None, None, -1)
    return getitem(x, tuple(index)) if nd else x


def fliplr(m):
    if anp.ndim(m) < 2:
        raise AdjitValueError("adjit.numpy.fliplr needs an array of rank 2 or more")
    return flip(m, 1)


def flipud(m):
    if anp.ndim(m) < 1:
        raise AdjitValueError("adjit.numpy.flipud needs an array of rank 1 or more")
    return flip(m, 0)


def rot90(m, k=1, axes=(0, 1)):
    x = anp.asarray(m)
    nd = anp.ndim(x)
    if len(axes) != 2:
        raise AdjitValueError("adjit.numpy.rot90: len(axes) must be 2")
    a0, a1 = (_axis(a, nd, "rot90") for a in axes)
    if a0 == a1:
        raise AdjitValueError("adjit.numpy.rot90: axes must be different")
    k = operator.index(k) % 4
    if k == 0:
        return x
    if k == 2:
        return flip(flip(x, a0), a1)
    perm = list(range(nd))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return anp.transpose(flip(x, a1), perm)
    return flip(anp.transpose(x, perm), a1)


def roll(a, shift, axis=None):
    x = anp.asarray(a)
    if axis is None:
        return anp.reshape(roll(anp.ravel(x), shift, 0), anp.shape(x))
    shifts = np.broadcast_to(np.asarray(_concrete_ints(shift, "roll"), np.int64),
                             np.broadcast_shapes(np.shape(shift), np.shape(axis)))
    axes = np.broadcast_to(np.asarray(axis, np.int64), shifts.shape)
    total: dict = {}  # NumPy adds the shifts of an axis named twice
    for s, ax in zip(shifts.ravel(), axes.ravel()):
        ax = _axis(ax, anp.ndim(x), "roll")
        total[ax] = total.get(ax, 0) + int(s)
    nd = anp.ndim(x)
    for ax, s in total.items():
        n = _length(x, ax)
        s = s % n if n else 0
        if s:
            x = anp.concatenate([getitem(x, _along(ax, nd, slice(n - s, None))),
                                 getitem(x, _along(ax, nd, slice(0, n - s)))], ax)
    return x


def repeat(a, repeats, axis=None):
    x = anp.asarray(a)
    if axis is None:
        x, axis = anp.ravel(x), 0
    axis = _axis(axis, anp.ndim(x), "repeat")
    counts = _concrete_ints(repeats, "repeat")
    if counts.dtype.kind not in "iu" or (counts < 0).any():
        raise AdjitValueError("adjit.numpy.repeat: repeats must be non-negative integers")
    shape = anp.shape(x)
    if counts.ndim == 0 or counts.size == 1:
        # Every element the same number of times: a broadcast along a new axis, merged.
        r = int(counts.reshape(()))
        expanded = anp.broadcast_to(anp.expand_dims(x, axis + 1),
                                    (*shape[:axis + 1], r, *shape[axis + 1:]))
        return anp.reshape(expanded, (*shape[:axis], int(shape[axis]) * r, *shape[axis + 1:]))
    n = int(shape[axis])
    if counts.shape != (n,):
        raise AdjitValueError(f"adjit.numpy.repeat: {counts.size} repeats for an axis of "
                              f"length {n}")
    return ix.take(x, np.repeat(np.arange(n, dtype=np.int64), counts), axis)


def tile(A, reps):
    x = anp.asarray(A)
    reps = tuple(int(r) for r in np.atleast_1d(_concrete_ints(reps, "tile")))
    if builtins.any(r < 0 for r in reps):
        raise AdjitValueError("adjit.numpy.tile: negative repetitions")
    nd = builtins.max(anp.ndim(x), len(reps))
    shape = (1,) * (nd - anp.ndim(x)) + tuple(anp.shape(x))
    reps = (1,) * (nd - len(reps)) + reps
    # One broadcast of (1, n0, 1, n1, ...) to (r0, n0, r1, n1, ...), then merge each pair.
    x = anp.reshape(x, [d for n in shape for d in (1, n)])
    x = anp.broadcast_to(x, [d for r, n in zip(reps, shape) for d in (r, n)])
    return anp.reshape(x, [r * int(n) for r, n in zip(reps, shape)])


# --------------------------------------------------------------------------- products


def tensordot(a, b, axes=2):
    a, b = anp.asarray(a), anp.asarray(b)
    na, nb = anp.ndim(a), anp.ndim(b)
    if isinstance(axes, (int, np.integer)):
        k = int(axes)
        if k < 0 or k > builtins.min(na, nb):
            raise AdjitValueError(f"adjit.numpy.tensordot: axes={k} does not fit arrays of "
                                  f"rank {na} and {nb}")
        axes_a, axes_b = list(range(na - k, na)), list(range(k))
    else:
        axes_a, axes_b = axes
        axes_a = [axes_a] if isinstance(axes_a, (int, np.integer)) else list(axes_a)
        axes_b = [axes_b] if isinstance(axes_b, (int, np.integer)) else list(axes_b)
        if len(axes_a) != len(axes_b):
            raise AdjitValueError("adjit.numpy.tensordot: the two lists of axes differ in "
                                  "length")
        axes_a = [_axis(i, na, "tensordot") for i in axes_a]
        axes_b = [_axis(i, nb, "tensordot") for i in axes_b]
    shape_a, shape_b = anp.shape(a), anp.shape(b)
    for i, j in zip(axes_a, axes_b):
        if int(shape_a[i]) != int(shape_b[j]):
            raise AdjitValueError(f"adjit.numpy.tensordot: shape mismatch for sum: axis {i} "
                                  f"of length {shape_a[i]} against axis {j} of {shape_b[j]}")
    free_a = [i for i in range(na) if i not in axes_a]
    free_b = [j for j in range(nb) if j not in axes_b]
    # As one matrix product: (free of a, contracted) @ (contracted, free of b).
    m = math.prod(int(shape_a[i]) for i in free_a)
    n = math.prod(int(shape_b[j]) for j in free_b)
    k = math.prod(int(shape_a[i]) for i in axes_a)
    a2 = anp.reshape(anp.transpose(a, free_a + axes_a), (m, k))
    b2 = anp.reshape(anp.transpose(b, axes_b + free_b), (k, n))
    out = anp.matmul(a2, b2)
    return anp.reshape(out, [shape_a[i] for i in free_a] + [shape_b[j] for j in free_b])


def inner(a, b):
    if anp.ndim(a) == 0 or anp.ndim(b) == 0:
        return anp.multiply(a, b)
    if anp.ndim(b) == 1:  # a product and a sum, which the compiler fuses
        return anp.sum(anp.multiply(a, b), axis=-1)
    return tensordot(a, b, ([-1], [-1]))


def kron(a, b):
    a, b = anp.asarray(a), anp.asarray(b)
    nd = builtins.max(anp.ndim(a), anp.ndim(b))
    sa = (1,) * (nd - anp.ndim(a)) + tuple(int(d) for d in anp.shape(a))
    sb = (1,) * (nd - anp.ndim(b)) + tuple(int(d) for d in anp.shape(b))
    # out[i*nb + j] = a[i] * b[j] on every axis: a product of interleaved axes, merged.
    product = anp.multiply(anp.reshape(a, [d for n in sa for d in (n, 1)]),
                           anp.reshape(b, [d for n in sb for d in (1, n)]))
    return anp.reshape(product, [p * q for p, q in zip(sa, sb)])


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if axis is not None:
        axisa = axisb = axisc = axis
    a = anp.moveaxis(anp.asarray(a), _axis(axisa, anp.ndim(a), "cross"), -1)
    b = anp.moveaxis(anp.asarray(b), _axis(axisb, anp.ndim(b), "cross"), -1)
    na, nb = _length(a, -1), _length(b, -1)
    if na not in (2, 3) or nb not in (2, 3):
        raise AdjitValueError("adjit.numpy.cross: incompatible dimensions for cross product "
                              "(dimension must be 2 or 3)")
    a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    z = anp.subtract(anp.multiply(a0, b1), anp.multiply(a1, b0))
    if na == 2 and nb == 2:
        return z
    # A 2-vector has a zero third component.
    a2 = a[..., 2] if na == 3 else None
    b2 = b[..., 2] if nb == 3 else None
    x = anp.subtract(anp.multiply(a1, b2) if b2 is not None else 0,
                     anp.multiply(a2, b1) if a2 is not None else 0)
    y = anp.subtract(anp.multiply(a2, b0) if a2 is not None else 0,
                     anp.multiply(a0, b2) if b2 is not None else 0)
    x, y, z = anp._prepare(x, y, z)
    out = anp.stack([x, y, z], axis=-1)
    return anp.moveaxis(out, -1, _axis(axisc, anp.ndim(out), "cross"))


# --------------------------------------------------------------------------- r_, c_


class _Concatenator:
    """``r_[...]`` and ``c_[...]``: slices as ranges (``a:b:nj`` as linspace), scalars and
    arrays, concatenated along an axis after raising each to ``ndmin`` dimensions (NumPy's
    AxisConcatenator, less the matrix directives)."""

    def __init__(self, axis, ndmin, trans1d):
        self.axis, self.ndmin, self.trans1d = axis, ndmin, trans1d

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        axis, ndmin, trans1d = self.axis, self.ndmin, self.trans1d
        items = []
        for k, item in enumerate(key):
            if isinstance(item, str):
                if k != 0:
                    raise AdjitValueError("adjit.numpy.r_: special directives must be the "
                                          "first entry")
                try:
                    numbers = [int(v) for v in item.split(",")]
                except ValueError:
                    raise AdjitValueError(f"adjit.numpy.r_: unknown special directive "
                                          f"{item!r}") from None
                axis, ndmin, trans1d = (numbers + [ndmin, trans1d][len(numbers) - 1:])[:3]
                continue
            items.append(item)
        arrays = [self._array(item) for item in items]
        # Python scalars are weak, as everywhere in adjit.numpy: r_[x32, 1.5] stays float32.
        dtype = anp._result_dtype(*[i if anp._is_weak(i) else a for i, a in zip(items, arrays)])
        objs = [self._raise(a, ndmin, trans1d) for a in arrays]
        return anp.concatenate([anp.astype(o, dtype) for o in objs], axis)

    @staticmethod
    def _array(item):
        if isinstance(item, slice):
            start = 0 if item.start is None else item.start
            step = 1 if item.step is None else item.step
            if isinstance(step, complex):
                return anp.linspace(start, item.stop, int(builtins.abs(step)))
            return anp.arange(start, item.stop, step)
        return anp.asarray(item)

    @staticmethod
    def _raise(x, ndmin, trans1d):
        nd = anp.ndim(x)
        if nd >= ndmin:
            return x
        x = anp.reshape(x, (1,) * (ndmin - nd) + tuple(anp.shape(x)))
        if trans1d == -1 or nd == 0:
            return x
        # NumPy's trans1d: the item's own axes move to start at position trans1d.
        k2, k1 = ndmin - nd, trans1d if trans1d >= 0 else trans1d + ndmin - nd + 1
        axes = list(range(ndmin))
        return anp.transpose(x, axes[:k1] + axes[k2:] + axes[k1:k2])


r_ = _Concatenator(0, 1, -1)
c_ = _Concatenator(-1, 2, 0)


# --------------------------------------------------------------------------- elementwise


def deg2rad(x):
    return anp.multiply(anp.astype(x, anp._float_dtype(x)), math.pi / 180.0)


def rad2deg(x):
    return anp.multiply(anp.astype(x, anp._float_dtype(x)), 180.0 / math.pi)


radians, degrees = deg2rad, rad2deg


def select(condlist, choicelist, default=0):
    if len(condlist) != len(choicelist):
        raise AdjitValueError("adjit.numpy.select: list of cases must be same length as list "
                              "of conditions")
    if not condlist:
        raise AdjitValueError("adjit.numpy.select with an empty condition list is not possible")
    conds = [anp.asarray(c) for c in condlist]
    for i, c in enumerate(conds):
        if get_aval(c).dtype != np.bool_:
            raise AdjitTypeError(f"adjit.numpy.select: invalid entry {i} in condlist: should "
                                 "be boolean")
    dtype = anp._result_dtype(*choicelist, default)
    result = anp.astype(default, dtype) if not anp._is_weak(default) else anp.asarray(default,
                                                                                       dtype)
    # The first true condition wins, so the choices are laid on from the last.
    for cond, choice in zip(conds[::-1], choicelist[::-1]):
        result = anp.where(cond, choice, result)
    shape = anp.broadcast_shapes(*[anp.shape(c) for c in [*conds, *choicelist, result]])
    return anp.broadcast_to(anp.astype(result, dtype), shape)


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    # ``copy`` is NumPy's signature only: adjit's arrays are never modified in place.
    x = anp.asarray(x)
    dtype = get_aval(x).dtype
    if dtype.kind != "f":
        return x
    info = np.finfo(dtype)
    x = anp.where(anp.isnan(x), nan, x)
    x = anp.where(anp.equal(x, np.inf), info.max if posinf is None else posinf, x)
    x = anp.where(anp.equal(x, -np.inf), info.min if neginf is None else neginf, x)
    return anp.astype(x, dtype)


# --------------------------------------------------------------------------- pad


def _pad_widths(pad_width, nd):
    widths = np.asarray(_concrete_ints(pad_width, "pad"))
    if widths.dtype.kind not in "iu":
        raise AdjitTypeError("adjit.numpy.pad: pad_width must be integers")
    try:
        widths = np.broadcast_to(widths, (nd, 2))
    except ValueError:
        raise AdjitValueError(f"adjit.numpy.pad: pad_width {pad_width!r} does not fit an array "
                              f"of rank {nd}") from None
    if (widths < 0).any():
        raise AdjitValueError("adjit.numpy.pad: index can't contain negative values")
    return [(int(lo), int(hi)) for lo, hi in widths]


def _per_axis(values, nd, what):
    """NumPy's ((before, after),) * ndim broadcasting of constant_values and friends."""
    if isinstance(values, Tracer):
        return [(values, values)] * nd
    values = np.asarray(values)
    try:
        return np.broadcast_to(values, (nd, 2))
    except ValueError:
        raise AdjitValueError(f"adjit.numpy.pad: {what} does not fit an array of rank "
                              f"{nd}") from None


def _source_index(mode, n, lo, hi):
    """For each position of the padded axis, the index of the original element it copies."""
    p = np.arange(-lo, n + hi)
    if mode == "edge":
        return np.clip(p, 0, n - 1)
    if mode == "wrap":
        return p % n
    if mode == "symmetric":  # mirror including the edge: period 2n
        q = p % (2 * n)
        return np.where(q < n, q, 2 * n - 1 - q)
    if n == 1:  # reflect of one element repeats it
        return np.zeros_like(p)
    q = p % (2 * n - 2)  # reflect: mirror about the edge element, period 2n - 2
    return np.where(q < n, q, 2 * n - 2 - q)


_STATS = {"maximum": anp.max, "minimum": anp.min, "mean": anp.mean}
_INDEX_MODES = ("edge", "wrap", "symmetric", "reflect")


def pad(array, pad_width, mode="constant", **kwargs):
    x = anp.asarray(array)
    nd = anp.ndim(x)
    dtype = get_aval(x).dtype
    widths = _pad_widths(pad_width, nd)
    allowed = {"constant": {"constant_values"}, "reflect": {"reflect_type"},
               "symmetric": {"reflect_type"}}.get(mode, set())
    if mode not in ("constant", *_INDEX_MODES, *_STATS):
        raise AdjitValueError(f"adjit.numpy.pad: mode {mode!r} is not supported (constant, "
                              f"edge, reflect, symmetric, wrap, maximum, minimum, mean)")
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise AdjitValueError(f"adjit.numpy.pad: unsupported keyword(s) {unknown} for mode "
                              f"{mode!r}")
    if kwargs.get("reflect_type", "even") != "even":
        raise AdjitValueError("adjit.numpy.pad: only reflect_type='even' is supported")
    constants = _per_axis(kwargs.get("constant_values", 0), nd, "constant_values")
    # Axis by axis, as NumPy does: a later axis pads the padding of the earlier ones too.
    for axis, (lo, hi) in enumerate(widths):
        if lo == hi == 0:
            continue
        n = _length(x, axis)
        shape = list(anp.shape(x))
        if mode == "constant":
            blocks = []
            for width, value in ((lo, constants[axis][0]), (hi, constants[axis][1])):
                shape[axis] = width
                blocks.append(anp.full(shape, anp.astype(value, dtype)) if width else None)
            x = anp.concatenate([b for b in (blocks[0], x, blocks[1]) if b is not None], axis)
            continue
        if n == 0:
            raise AdjitValueError(f"adjit.numpy.pad: can't extend empty axis {axis} using "
                                  f"modes other than 'constant'")
        if mode in _STATS:
            stat = _STATS[mode](x, axis=axis, keepdims=True)
            if mode == "mean" and dtype.kind in "iub":
                stat = anp.round(stat)  # NumPy rounds an integer array's mean
            stat = anp.astype(stat, dtype)
            blocks = []
            for width in (lo, hi):
                shape[axis] = width
                blocks.append(anp.broadcast_to(stat, shape) if width else None)
            x = anp.concatenate([b for b in (blocks[0], x, blocks[1]) if b is not None], axis)
            continue
        x = ix.take(x, _source_index(mode, n, lo, hi).astype(np.int64), axis)
    return x


__all__ = [
    "array_split", "atleast_2d", "atleast_3d", "c_", "column_stack", "cross", "deg2rad",
    "degrees", "diag", "diagonal", "dsplit", "dstack", "flip", "fliplr", "flipud", "hsplit",
    "inner", "kron", "nan_to_num", "pad", "r_", "rad2deg", "radians", "repeat", "roll",
    "rot90", "select", "split", "tensordot", "tile", "trace", "tri", "tril", "triu", "vsplit",
]
